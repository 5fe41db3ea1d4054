package qemu

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Boot milestones reported from the serial console, in the order a normal
// UEFI boot passes them.
const (
	EventFirmware   = "firmware"   // OVMF's boot manager picked a boot entry
	EventBootloader = "bootloader" // GRUB is running
	EventKernel     = "kernel"     // the Linux banner
	EventInit       = "init"       // the kernel started the first userspace program (initramfs or /sbin/init)
	EventSystemd    = "systemd"    // systemd runs as PID 1 on the real root
	EventCloudInit  = "cloud-init" // prefix; the stage follows, e.g. "cloud-init:init-local"
	EventCloudDone  = "cloud-init:finished"
	EventLogin      = "login" // a getty shows a login prompt
	EventReady      = "ready" // the caller's readiness marker appeared
)

// Event is one milestone seen on the serial console.
type Event struct {
	Name string
	// At is the time since QEMU started.
	At time.Duration
	// Line is the console line that showed it.
	Line string
}

// Failure is why a boot attempt was given up.
type Failure string

// The failures the harness tells apart. Panics, oopses, double faults and
// hangs are what an unstable emulated CPU produces, so they are retried;
// the others are not.
const (
	FailPanic       Failure = "kernel panic"
	FailOops        Failure = "kernel oops"
	FailDoubleFault Failure = "double fault"
	FailKVM         Failure = "KVM internal error"
	FailHang        Failure = "hang"
	FailExit        Failure = "QEMU exited"
	FailTimeout     Failure = "timeout"
)

// BootError is a boot attempt that failed. errors.Is matches it against the
// Err* values by Kind.
type BootError struct {
	Kind Failure
	// Line is the console or QEMU line that showed the failure.
	Line string
	// At is the time since QEMU started.
	At time.Duration
	// Accel and Attempt say which run failed; SerialLog is its console.
	Accel     string
	Attempt   int
	SerialLog string
}

// Error says what failed, when, under which accelerator, and where the
// console is.
func (e *BootError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "guest boot failed: %s after %s", e.Kind, e.At.Round(100*time.Millisecond))
	if e.Accel != "" {
		fmt.Fprintf(&b, " (accel %s, attempt %d)", e.Accel, e.Attempt)
	}
	if e.Line != "" {
		fmt.Fprintf(&b, ": %q", e.Line)
	}
	if e.SerialLog != "" {
		fmt.Fprintf(&b, "; console in %s", e.SerialLog)
	}
	return b.String()
}

// Is makes errors.Is(err, qemu.ErrPanic) and friends work.
func (e *BootError) Is(target error) bool {
	var t *BootError
	return errors.As(target, &t) && t.Kind == e.Kind && t.Line == "" && t.At == 0
}

// Sentinels for errors.Is.
var (
	ErrPanic       = &BootError{Kind: FailPanic}
	ErrOops        = &BootError{Kind: FailOops}
	ErrDoubleFault = &BootError{Kind: FailDoubleFault}
	ErrKVM         = &BootError{Kind: FailKVM}
	ErrHang        = &BootError{Kind: FailHang}
	ErrExit        = &BootError{Kind: FailExit}
	ErrTimeout     = &BootError{Kind: FailTimeout}
)

// retryable says whether another attempt may succeed: emulation faults
// are intermittent, a guest that exits or runs out of time is not.
func (f Failure) retryable() bool {
	switch f {
	case FailPanic, FailOops, FailDoubleFault, FailHang:
		return true
	}
	return false
}

type pattern struct {
	name string
	re   *regexp.Regexp
}

// milestones are matched once each, first occurrence wins.
var milestones = []pattern{
	{EventFirmware, regexp.MustCompile(`BdsDxe: (loading|starting) Boot|SeaBIOS \(version`)},
	{EventBootloader, regexp.MustCompile(`GNU GRUB +version|Welcome to GRUB|Booting .Debian|EFI stub: `)},
	{EventKernel, regexp.MustCompile(`Linux version \d+\.\d+`)},
	{EventInit, regexp.MustCompile(`Run /\S+ as init process|Loading, please wait\.\.\.`)},
	{EventSystemd, regexp.MustCompile(`systemd\[1\]: |Welcome to .+!`)},
	{EventCloudDone, regexp.MustCompile(`Cloud-init v\. \S+ finished at`)},
	{EventLogin, loginPrompt},
}

// loginPrompt is agetty's "<hostname> login: "; kernel messages may follow
// on the same line because the prompt has no newline.
var loginPrompt = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]* login: `)

var cloudInitStage = regexp.MustCompile(`Cloud-init v\. \S+ running '([^']+)'`)

// failures are checked on every console line and QEMU output line. Double
// faults and oopses come before the panic they cause, so the first
// matching line names the real cause.
var failures = []struct {
	kind Failure
	re   *regexp.Regexp
}{
	// PVM's emulation failure, and QEMU refused by a KVM that cannot
	// take the vCPU's MSRs (seen on another host of the same kind).
	{FailKVM, regexp.MustCompile(`KVM internal error|kvm_buf_set_msrs|failed to set MSR`)},
	{FailDoubleFault, regexp.MustCompile(`(?i)double fault`)},
	{FailOops, regexp.MustCompile(`\bOops: |BUG: unable to handle|BUG: kernel NULL pointer|general protection fault`)},
	{FailPanic, regexp.MustCompile(`Kernel panic - not syncing`)},
}

// ansi strips terminal escapes: GRUB and systemd colour and position their
// output, which would otherwise split the words the patterns look for.
var ansi = regexp.MustCompile(`\x1b(\[[0-9;?=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-B]|[=>78])`)

// CleanLine removes terminal escapes and carriage returns from a console
// line.
func CleanLine(s string) string {
	return strings.TrimRight(strings.ReplaceAll(ansi.ReplaceAllString(s, ""), "\r", ""), " ")
}

// Detector turns console lines into events and failures. It is not safe for
// concurrent use.
type Detector struct {
	// Marker is the caller's readiness string; empty means none.
	Marker string
	seen   map[string]bool
	events []Event
}

// NewDetector returns a detector for a boot whose readiness marker is
// marker (may be empty).
func NewDetector(marker string) *Detector {
	return &Detector{Marker: marker, seen: map[string]bool{}}
}

// Line feeds one console line seen at time at. It returns the events the
// line completed and, if the line shows a failure, the failure.
func (d *Detector) Line(line string, at time.Duration) ([]Event, *BootError) {
	line = CleanLine(line)
	if line == "" {
		return nil, nil
	}
	var out []Event
	add := func(name string) {
		if d.seen[name] {
			return
		}
		d.seen[name] = true
		e := Event{Name: name, At: at, Line: line}
		d.events = append(d.events, e)
		out = append(out, e)
	}
	for _, p := range milestones {
		if p.re.MatchString(line) {
			add(p.name)
		}
	}
	if m := cloudInitStage.FindStringSubmatch(line); m != nil {
		add(EventCloudInit + ":" + m[1])
	}
	if d.Marker != "" && strings.Contains(line, d.Marker) {
		add(EventReady)
	}
	for _, f := range failures {
		if f.re.MatchString(line) {
			return out, &BootError{Kind: f.kind, Line: line, At: at}
		}
	}
	return out, nil
}

// Partial feeds the unterminated last piece of the console: a login prompt
// (and often a marker) is printed without a newline. Only the login and
// ready events are taken from it, since the rest of the line may follow.
func (d *Detector) Partial(s string, at time.Duration) []Event {
	s = CleanLine(s)
	var out []Event
	if !d.seen[EventLogin] && loginPrompt.MatchString(s+" ") {
		d.seen[EventLogin] = true
		out = append(out, Event{Name: EventLogin, At: at, Line: s})
	}
	if d.Marker != "" && !d.seen[EventReady] && strings.Contains(s, d.Marker) {
		d.seen[EventReady] = true
		out = append(out, Event{Name: EventReady, At: at, Line: s})
	}
	d.events = append(d.events, out...)
	return out
}

// Events returns every event seen so far, in order.
func (d *Detector) Events() []Event { return append([]Event(nil), d.events...) }

// Seen reports whether the named event has been seen.
func (d *Detector) Seen(name string) bool { return d.seen[name] }
