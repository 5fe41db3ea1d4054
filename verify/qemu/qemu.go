// Package qemu boots an appliance image under QEMU for verification: UEFI
// firmware (OVMF) or a direct kernel, the seed ISO as a CD, host ports
// forwarded on 127.0.0.1, and the serial console watched for boot
// milestones, kernel crashes and hangs.
//
// Where /dev/kvm exists but cannot run an ordinary guest (a paravirtual
// KVM, or a broken nested setup), Accel "auto" notices the KVM failure from
// QEMU's output within a second or two and boots again under TCG. Under
// TCG, guests sometimes crash in emulation, so crashes and hangs are
// retried a bounded number of times.
package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	log "github.com/sirupsen/logrus"
)

// Accelerators for BootOptions.Accel.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// TCGCPUModel is the CPU model used under TCG unless set. It keeps cx16
// (CMPXCHG16B): HAProxy 3.2 executes it and dies with SIGILL on a CPU
// without it. QEMU 7.2's TCG (Debian 12) corrupts EFLAGS on a gs-prefixed
// CMPXCHG16B, which the kernel's SLUB allocator uses when the CPU has cx16:
// measured on the build host, "max" booting the Debian 13 cloud kernel died
// in __kmalloc_noprof with a double fault or an oops in 5 of 10 boots. So
// boots under TCG need QEMU 8 or newer (Debian 12's bookworm-backports has
// 10.0; .ci/deps installs it), where that emulation is correct.
const TCGCPUModel = "max"

// Defaults for BootOptions.
const (
	DefaultMemory         = 1024
	DefaultAttempts       = 3
	DefaultTCGHangTimeout = 180 * time.Second
	DefaultKVMHangTimeout = 60 * time.Second
	DefaultTCGTimeout     = 15 * time.Minute
	DefaultKVMTimeout     = 5 * time.Minute
	// kvmProbeSilence is how long auto mode waits for the first console
	// output under KVM before deciding KVM does not work here.
	kvmProbeSilence = 30 * time.Second
)

// Forward forwards a TCP port on the host's 127.0.0.1 to a guest port.
type Forward struct {
	HostPort  int
	GuestPort int
}

// Firmware is a pair of OVMF flash images. Code is used read-only; Vars is
// copied for every boot, so boots never share or change UEFI variables.
type Firmware struct {
	Code string
	Vars string
	// SecureBoot says Code is a Secure Boot build (needs SMM) and Vars
	// holds the keys to check the boot chain against.
	SecureBoot bool
}

// Debian's ovmf package paths. The 4M builds are the current ones; the
// .ms variables have Microsoft's keys enrolled, which is what Debian's
// shim is signed with.
var firmwareCandidates = []Firmware{
	{Code: "/usr/share/OVMF/OVMF_CODE_4M.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{Code: "/usr/share/OVMF/OVMF_CODE.fd", Vars: "/usr/share/OVMF/OVMF_VARS.fd"},
	{Code: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd", SecureBoot: true},
	{Code: "/usr/share/OVMF/OVMF_CODE.secboot.fd", Vars: "/usr/share/OVMF/OVMF_VARS.ms.fd", SecureBoot: true},
}

// FindFirmware returns the installed OVMF images, with or without Secure
// Boot.
func FindFirmware(secureBoot bool) (Firmware, error) {
	var tried []string
	for _, f := range firmwareCandidates {
		if f.SecureBoot != secureBoot {
			continue
		}
		tried = append(tried, f.Code)
		if fileExists(f.Code) && fileExists(f.Vars) {
			return f, nil
		}
	}
	return Firmware{}, fmt.Errorf("no OVMF firmware found (looked for %s): install Debian's ovmf package", strings.Join(tried, ", "))
}

// BootOptions describes one VM boot.
type BootOptions struct {
	// Disk is the image to boot (raw, qcow2, vhdx; detected).
	Disk string
	// SeedISO, when set, is attached as a CD-ROM, as Proxmox and
	// Hyper-V attach it.
	SeedISO string
	// Kernel, Initrd and Append boot a kernel directly instead of the
	// disk's boot loader; Firmware is then optional.
	Kernel, Initrd, Append string
	// Firmware is the UEFI firmware; zero means FindFirmware(false)
	// unless a Kernel is given.
	Firmware Firmware
	// Memory in MiB (DefaultMemory when zero).
	Memory int
	// CPUs is the vCPU count; zero means 2 under KVM, 1 under TCG.
	CPUs int
	// Accel is auto, kvm or tcg (auto when empty).
	Accel string
	// CPUModel overrides the -cpu model (host under KVM, TCGCPUModel
	// under TCG).
	CPUModel string
	// HostForwards are TCP ports forwarded from 127.0.0.1.
	HostForwards []Forward
	// Network shapes the user-mode network like the seed's site network;
	// nil keeps QEMU's 10.0.2.0/24.
	Network *UserNetwork
	// SerialLog is where the console is written (in WorkDir when empty).
	// Failed attempts keep theirs as SerialLog.attemptN.
	SerialLog string
	// Snapshot boots a throwaway overlay so Disk stays unchanged.
	Snapshot bool
	// ReadyMarker is the console string that means the guest is ready;
	// empty means a login prompt does.
	ReadyMarker string
	// HangTimeout is how long the console may be silent before the boot
	// is given up as hung (per accelerator default when zero).
	HangTimeout time.Duration
	// Timeout bounds one attempt (per accelerator default when zero).
	Timeout time.Duration
	// Attempts bounds the TCG attempts after crashes or hangs
	// (DefaultAttempts when zero).
	Attempts int
	// WorkDir holds the overlay, firmware variables and logs; when
	// empty, a temporary directory that Stop removes. After a failed
	// Boot only the consoles are left in it.
	WorkDir string
}

// Attempt records one QEMU run.
type Attempt struct {
	Accel     string
	CPUModel  string
	CPUs      int
	Duration  time.Duration
	SerialLog string
	// Err is why the attempt failed; nil for the attempt that booted.
	Err error
}

// VM is a booted guest. It keeps running, with its console watched, until
// Stop.
type VM struct {
	// Accel, CPUModel and CPUs are what the successful attempt used.
	Accel    string
	CPUModel string
	CPUs     int
	// Args is the QEMU command line of the successful attempt.
	Args []string
	// Attempts lists every attempt, failed ones first.
	Attempts []Attempt
	// SerialLog is the console of the running guest.
	SerialLog string
	// Started is when the running QEMU started; event times count from it.
	Started time.Time

	proc    *qemuProcess
	work    string
	ownWork bool
	cancel  context.CancelFunc
	loop    sync.WaitGroup

	mu      sync.Mutex
	events  []Event
	failure *BootError
	changed chan struct{} // closed and replaced on every update
	failCh  chan struct{} // closed when failure is set
}

// Boot starts the VM and returns once it is ready: the ReadyMarker or, if
// none, a login prompt appeared on the console. A crash, hang or KVM failure
// ends an attempt early; see BootOptions.Accel and Attempts for what is
// retried. ctx bounds the whole boot; once Boot has returned, the VM runs
// until Stop.
func Boot(ctx context.Context, opts BootOptions) (*VM, error) {
	o, err := normalize(opts)
	if err != nil {
		return nil, err
	}
	vm := &VM{work: o.WorkDir}
	if vm.work == "" {
		if vm.work, err = os.MkdirTemp("", "applbuild-vm-"); err != nil {
			return nil, err
		}
		vm.ownWork = true
	}
	if o.SerialLog == "" {
		o.SerialLog = filepath.Join(vm.work, "serial.log")
	}
	vm.SerialLog = o.SerialLog
	fail := func(err error) (*VM, error) {
		// The consoles explain the failure; keep them, drop the rest.
		vm.removeScratch()
		return nil, err
	}

	disk, err := vm.prepareDisk(ctx, o)
	if err != nil {
		return fail(err)
	}

	accels := []string{o.Accel}
	if o.Accel == AccelAuto {
		accels = []string{AccelTCG}
		if err := kvmOpens(); err == nil {
			accels = []string{AccelKVM, AccelTCG}
		} else {
			log.Debugf("qemu: not trying KVM: %v", err)
		}
	}
	n := 0
	for ai, accel := range accels {
		tries := 1
		if accel == AccelTCG {
			tries = o.Attempts
		}
		for try := 1; try <= tries; try++ {
			n++
			probing := o.Accel == AccelAuto && accel == AccelKVM
			berr := vm.attempt(ctx, o, disk, accel, n, probing)
			if berr == nil {
				return vm, nil
			}
			var be *BootError
			if !errors.As(berr, &be) {
				return fail(berr)
			}
			if ctx.Err() != nil {
				return fail(berr)
			}
			if probing && ai+1 < len(accels) && !vm.reachedKernel() {
				vm.keepFailedLog(o.SerialLog, n)
				// Failing before the kernel banner is what a KVM
				// that cannot run ordinary guests looks like.
				log.Infof("qemu: the guest did not start under KVM (%v); falling back to TCG", be)
				break
			}
			if accel != AccelTCG || !be.Kind.retryable() || try == tries {
				return fail(fmt.Errorf("%w (attempts: %s)", berr, vm.attemptSummary()))
			}
			vm.keepFailedLog(o.SerialLog, n)
			log.Warnf("qemu: attempt %d failed (%v); retrying", n, berr)
		}
	}
	return fail(fmt.Errorf("no accelerator could boot the guest (attempts: %s)", vm.attemptSummary()))
}

// keepFailedLog moves attempt n's console aside so the next attempt starts
// a fresh one, and points the attempt's record and error at the new name.
func (vm *VM) keepFailedLog(serial string, n int) {
	prev := fmt.Sprintf("%s.attempt%d", serial, n)
	if err := os.Rename(serial, prev); err != nil {
		return
	}
	a := &vm.Attempts[len(vm.Attempts)-1]
	a.SerialLog = prev
	var be *BootError
	if errors.As(a.Err, &be) {
		be.SerialLog = prev
	}
}

func (vm *VM) attemptSummary() string {
	var parts []string
	for i, a := range vm.Attempts {
		s := fmt.Sprintf("#%d %s -cpu %s -smp %d", i+1, a.Accel, a.CPUModel, a.CPUs)
		var be *BootError
		switch {
		case errors.As(a.Err, &be):
			s += fmt.Sprintf(": %s after %s", be.Kind, be.At.Round(100*time.Millisecond))
		case a.Err != nil:
			s += ": " + a.Err.Error()
		default:
			s += ": booted"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func (vm *VM) reachedKernel() bool {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for _, e := range vm.events {
		if e.Name == EventKernel {
			return true
		}
	}
	return false
}

type normalized struct {
	BootOptions
}

func normalize(o BootOptions) (normalized, error) {
	if o.Disk == "" && o.Kernel == "" {
		return normalized{}, fmt.Errorf("nothing to boot: want a Disk, a Kernel, or both")
	}
	for _, p := range []struct{ what, path string }{{"disk", o.Disk}, {"seed ISO", o.SeedISO}, {"kernel", o.Kernel}, {"initrd", o.Initrd}} {
		if p.path != "" && !fileExists(p.path) {
			return normalized{}, fmt.Errorf("%s %s does not exist", p.what, p.path)
		}
	}
	switch o.Accel {
	case "":
		o.Accel = AccelAuto
	case AccelAuto, AccelKVM, AccelTCG:
	default:
		return normalized{}, fmt.Errorf("accelerator %q is not valid: want auto, kvm or tcg", o.Accel)
	}
	if o.Memory == 0 {
		o.Memory = DefaultMemory
	}
	if o.Memory < 128 || o.CPUs < 0 || o.Attempts < 0 {
		return normalized{}, fmt.Errorf("memory %d MiB, CPUs %d, attempts %d: want memory of at least 128 MiB and no negative counts", o.Memory, o.CPUs, o.Attempts)
	}
	if o.Attempts == 0 {
		o.Attempts = DefaultAttempts
	}
	for _, f := range o.HostForwards {
		if f.HostPort < 1 || f.HostPort > 65535 || f.GuestPort < 1 || f.GuestPort > 65535 {
			return normalized{}, fmt.Errorf("port forward %d->%d is not valid: want ports between 1 and 65535", f.HostPort, f.GuestPort)
		}
	}
	if o.Firmware.Code == "" && o.Kernel == "" {
		fw, err := FindFirmware(false)
		if err != nil {
			return normalized{}, err
		}
		o.Firmware = fw
	}
	if o.Firmware.Code != "" && (!fileExists(o.Firmware.Code) || !fileExists(o.Firmware.Vars)) {
		return normalized{}, fmt.Errorf("firmware %s / %s: both files must exist (Debian's ovmf package installs them under /usr/share/OVMF)", o.Firmware.Code, o.Firmware.Vars)
	}
	return normalized{o}, nil
}

// kvmOpens checks that /dev/kvm can be opened read-write. It says nothing
// about whether a guest can run; the first attempt tells that.
func kvmOpens() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// Scratch files in the work directory.
const (
	overlayName = "overlay.qcow2"
	varsName    = "OVMF_VARS.fd"
)

type diskSpec struct {
	path, format string
}

// prepareDisk detects the image format and, for a snapshot boot, puts a
// qcow2 overlay in front of it so the guest's writes go to the work dir.
func (vm *VM) prepareDisk(ctx context.Context, o normalized) (diskSpec, error) {
	if o.Disk == "" {
		return diskSpec{}, nil
	}
	abs, err := filepath.Abs(o.Disk)
	if err != nil {
		return diskSpec{}, err
	}
	out, err := qemuImg(ctx, "info", "--output=json", abs)
	if err != nil {
		return diskSpec{}, err
	}
	var info struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.Format == "" {
		return diskSpec{}, fmt.Errorf("qemu-img info %s: cannot read the image format: %v", abs, err)
	}
	if !o.Snapshot {
		return diskSpec{abs, info.Format}, nil
	}
	overlay := filepath.Join(vm.work, overlayName)
	if _, err := qemuImg(ctx, "create", "-q", "-f", "qcow2", "-F", info.Format, "-b", abs, overlay); err != nil {
		return diskSpec{}, err
	}
	return diskSpec{overlay, "qcow2"}, nil
}

func (vm *VM) args(o normalized, disk diskSpec, accel, cpu string, cpus int, vars string) []string {
	machine := "q35"
	if o.Firmware.SecureBoot {
		machine += ",smm=on"
	}
	a := []string{
		"-machine", machine, "-accel", accel, "-cpu", cpu,
		"-smp", strconv.Itoa(cpus), "-m", strconv.Itoa(o.Memory),
		"-nodefaults", "-display", "none", "-no-reboot",
		"-chardev", "file,id=console0,path=" + optValue(o.SerialLog), "-serial", "chardev:console0",
		"-device", "virtio-rng-pci",
	}
	if o.Firmware.Code != "" {
		if o.Firmware.SecureBoot {
			a = append(a, "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+optValue(o.Firmware.Code),
			"-drive", "if=pflash,format=raw,unit=1,file="+optValue(vars))
	}
	if o.Kernel != "" {
		a = append(a, "-kernel", o.Kernel)
		if o.Initrd != "" {
			a = append(a, "-initrd", o.Initrd)
		}
		if o.Append != "" {
			a = append(a, "-append", o.Append)
		}
	}
	if disk.path != "" {
		cache := "writeback"
		if o.Snapshot {
			// The overlay is thrown away; no need to flush it.
			cache = "unsafe"
		}
		dev := "virtio-blk-pci,drive=disk0"
		if o.Kernel == "" {
			// The disk before the seed CD in the firmware's boot
			// order, as in a hypervisor template. (A direct kernel
			// boot takes boot index 0 itself.)
			dev += ",bootindex=0"
		}
		a = append(a,
			"-drive", fmt.Sprintf("file=%s,if=none,id=disk0,format=%s,cache=%s,discard=unmap", optValue(disk.path), disk.format, cache),
			"-device", dev)
	}
	if o.SeedISO != "" {
		a = append(a,
			"-drive", "file="+optValue(o.SeedISO)+",if=none,id=seed0,media=cdrom,readonly=on,format=raw",
			"-device", "ide-cd,drive=seed0,bus=ide.1")
	}
	net := "user,id=net0" + o.Network.netdev()
	for _, f := range o.HostForwards {
		net += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:%d", f.HostPort, o.Network.guest(), f.GuestPort)
	}
	a = append(a, "-netdev", net, "-device", "virtio-net-pci,netdev=net0"+o.Network.nicMAC())
	return a
}

// attempt runs QEMU once and returns nil when the guest is ready, leaving
// it running and watched.
func (vm *VM) attempt(ctx context.Context, o normalized, disk diskSpec, accel string, n int, probing bool) error {
	cpu, cpus := o.CPUModel, o.CPUs
	hang, timeout := o.HangTimeout, o.Timeout
	if accel == AccelKVM {
		cpu = firstNonEmpty(cpu, "host")
		if cpus == 0 {
			cpus = 2
		}
		hang = durOr(hang, DefaultKVMHangTimeout)
		timeout = durOr(timeout, DefaultKVMTimeout)
	} else {
		cpu = firstNonEmpty(cpu, TCGCPUModel)
		if cpus == 0 {
			cpus = 1
		}
		hang = durOr(hang, DefaultTCGHangTimeout)
		timeout = durOr(timeout, DefaultTCGTimeout)
	}
	if probing && hang > kvmProbeSilence {
		hang = kvmProbeSilence
	}
	rec := Attempt{Accel: accel, CPUModel: cpu, CPUs: cpus, SerialLog: o.SerialLog}

	vars := ""
	if o.Firmware.Code != "" {
		vars = filepath.Join(vm.work, varsName)
		if err := copyFile(o.Firmware.Vars, vars); err != nil {
			return err
		}
	}
	// Start from an empty console so a previous attempt's lines are not
	// read again.
	if err := os.WriteFile(o.SerialLog, nil, 0o644); err != nil {
		return fmt.Errorf("create console log: %w", err)
	}
	args := vm.args(o, disk, accel, cpu, cpus, vars)
	vm.mu.Lock()
	vm.events, vm.failure, vm.changed, vm.failCh = nil, nil, make(chan struct{}), make(chan struct{})
	vm.mu.Unlock()

	started := time.Now()
	proc, err := startQemuSystem(args)
	if err != nil {
		return err
	}
	vm.proc, vm.Started = proc, started
	vm.Accel, vm.CPUModel, vm.CPUs, vm.Args = accel, cpu, cpus, args

	loopCtx, cancel := context.WithCancel(context.Background())
	vm.cancel = cancel
	w := NewWatcher(o.SerialLog, o.ReadyMarker, hang, started)
	readyEvent := EventLogin
	if o.ReadyMarker != "" {
		readyEvent = EventReady
	}
	ready := make(chan struct{})
	vm.loop.Add(1)
	go vm.watch(loopCtx, w, proc, readyEvent, ready)

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var res error
	select {
	case <-ready:
		rec.Duration = time.Since(started)
		vm.Attempts = append(vm.Attempts, rec)
		log.Infof("qemu: guest ready after %s (%s, -cpu %s, -smp %d)", rec.Duration.Round(time.Second), accel, cpu, cpus)
		return nil
	case <-vm.failCh:
		vm.mu.Lock()
		be := *vm.failure
		vm.mu.Unlock()
		res = &be
	case <-deadline.C:
		res = &BootError{Kind: FailTimeout, At: time.Since(started), Line: fmt.Sprintf("not ready within %s", timeout)}
	case <-ctx.Done():
		res = fmt.Errorf("boot stopped: %w", ctx.Err())
	}
	vm.stopProcess()
	var be *BootError
	if errors.As(res, &be) {
		be.Accel, be.Attempt, be.SerialLog = accel, n, o.SerialLog
		if be.Kind == FailExit && be.Line == "" {
			be.Line = proc.output()
		}
	}
	rec.Duration, rec.Err = time.Since(started), res
	vm.Attempts = append(vm.Attempts, rec)
	return res
}

// watch polls the console and QEMU's output for the life of one QEMU
// process. After the guest is ready it keeps recording events but stops
// counting silence as a hang: an idle guest prints nothing.
func (vm *VM) watch(ctx context.Context, w *Watcher, proc *qemuProcess, readyEvent string, ready chan struct{}) {
	defer vm.loop.Done()
	defer w.Close()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	isReady := false
	for {
		var fail *BootError
		select {
		case <-ctx.Done():
			return
		case line := <-proc.lines:
			log.WithField("program", qemuSystemBinary).Debug(line)
			fail = w.QemuLine(line, time.Now())
		case <-proc.done:
			// Read what the guest printed last; it explains the exit.
			evs, f := w.Poll(time.Now())
			vm.publish(evs, nil)
			fail = f
			// QEMU may exit before its last lines reach proc.lines: a
			// KVM that refuses the vCPU at start is still a KVM failure.
			for _, l := range strings.Split(proc.output(), "\n") {
				if fail == nil {
					fail = w.QemuLine(l, time.Now())
				}
			}
			if fail == nil {
				fail = &BootError{Kind: FailExit, At: time.Since(vm.Started), Line: proc.output()}
			}
			vm.publish(nil, fail)
			return
		case <-t.C:
			var evs []Event
			evs, fail = w.Poll(time.Now())
			vm.publish(evs, nil)
		}
		if fail != nil {
			vm.publish(nil, fail)
			return
		}
		if !isReady && w.Seen(readyEvent) {
			isReady = true
			w.SetHangAfter(0)
			close(ready)
		}
	}
}

func (vm *VM) publish(evs []Event, fail *BootError) {
	if len(evs) == 0 && fail == nil {
		return
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for _, e := range evs {
		log.WithField("at", e.At.Round(100*time.Millisecond)).Infof("qemu: %s", e.Name)
	}
	vm.events = append(vm.events, evs...)
	if fail != nil && vm.failure == nil {
		vm.failure = fail
		close(vm.failCh)
	}
	close(vm.changed)
	vm.changed = make(chan struct{})
}

// Events returns the console events of the running guest so far.
func (vm *VM) Events() []Event {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]Event(nil), vm.events...)
}

// WaitEvent waits until the named event has been seen on the console, the
// guest fails or exits, or ctx ends.
func (vm *VM) WaitEvent(ctx context.Context, name string) (Event, error) {
	for {
		vm.mu.Lock()
		for _, e := range vm.events {
			if e.Name == name {
				vm.mu.Unlock()
				return e, nil
			}
		}
		f, changed := vm.failure, vm.changed
		vm.mu.Unlock()
		if f != nil {
			return Event{}, f
		}
		select {
		case <-ctx.Done():
			return Event{}, fmt.Errorf("waiting for %q on the console: %w", name, ctx.Err())
		case <-changed:
		}
	}
}

func (vm *VM) stopProcess() {
	if vm.cancel != nil {
		vm.cancel()
	}
	if vm.proc != nil {
		vm.proc.stop()
	}
	vm.loop.Wait()
}

// Stop ends QEMU and removes the work directory if Boot made it. The
// console log survives if it was given in BootOptions.SerialLog.
func (vm *VM) Stop() error {
	vm.stopProcess()
	vm.cleanup()
	return nil
}

func (vm *VM) cleanup() {
	if vm.ownWork {
		os.RemoveAll(vm.work)
	}
}

// removeScratch removes the overlay and firmware variables, which can be
// large and say nothing about a failure.
func (vm *VM) removeScratch() {
	os.Remove(filepath.Join(vm.work, overlayName))
	os.Remove(filepath.Join(vm.work, varsName))
}

// optValue escapes a value inside a QEMU option list, where a comma would
// start the next option.
func optValue(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func durOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// FreeLocalPort returns a TCP port on 127.0.0.1 that nothing listens on
// right now, for a HostForward. Another program may take it before QEMU
// does; QEMU then fails to start and Boot says so.
func FreeLocalPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
