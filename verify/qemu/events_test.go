package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWatchLogRecordedUEFIBootFixture replays the console of a real OVMF +
// shim + GRUB + Debian 13 boot under TCG (recorded on the build host, with
// GRUB's and systemd's terminal escapes) and checks the milestones come out
// in boot order.
func TestWatchLogRecordedUEFIBootFixture(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events, err := WatchLog(ctx, "testdata/uefi-tcg-debian13.serial.log", "", EventLogin, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{EventFirmware, EventBootloader, EventKernel, EventInit, EventSystemd, EventLogin}
	var got []string
	for _, e := range events {
		got = append(got, e.Name)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got, want)
	}
	lines := map[string]string{}
	for _, e := range events {
		lines[e.Name] = e.Line
	}
	for name, want := range map[string]string{
		EventFirmware:   `BdsDxe: loading Boot0001 "UEFI Misc Device"`,
		EventBootloader: "GNU GRUB  version 2.12",
		EventKernel:     "Linux version 6.12.",
		EventSystemd:    "systemd[1]: ",
		EventLogin:      "vm login:",
	} {
		if !strings.Contains(lines[name], want) {
			t.Errorf("%s event line %q, want it to contain %q", name, lines[name], want)
		}
		if strings.Contains(lines[name], "\x1b") {
			t.Errorf("%s event line %q still holds terminal escapes", name, lines[name])
		}
	}
}

// writeSlowly appends lines to a console log file with a pause between
// them, as a booting guest would.
func writeSlowly(t *testing.T, path string, lines []string, pause time.Duration) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer f.Close()
		for _, l := range lines {
			f.WriteString(l)
			time.Sleep(pause)
		}
	}()
}

// TestWatchLogHandwrittenCloudInitFixture checks cloud-init's stages and
// the caller's marker on a handwritten console that arrives a line at a
// time, the marker without a trailing newline.
func TestWatchLogHandwrittenCloudInitFixture(t *testing.T) {
	log := filepath.Join(t.TempDir(), "console.log")
	writeSlowly(t, log, []string{
		"[    0.000000] Linux version 6.12.57+deb13-cloud-amd64 (debian-kernel@lists.debian.org)\r\n",
		"[   60.1] cloud-init[412]: Cloud-init v. 25.1.4 running 'init-local' at Sun, 22 Nov 2026 04:00:00 +0000. Up 60.00 seconds.\r\n",
		"[   70.2] cloud-init[501]: Cloud-init v. 25.1.4 running 'init' at Sun, 22 Nov 2026 04:00:10 +0000. Up 70.00 seconds.\r\n",
		"[   80.3] cloud-init[601]: Cloud-init v. 25.1.4 running 'modules:config' at Sun, 22 Nov 2026 04:00:20 +0000. Up 80.00 seconds.\r\n",
		"[   90.4] cloud-init[701]: Cloud-init v. 25.1.4 running 'modules:final' at Sun, 22 Nov 2026 04:00:30 +0000. Up 90.00 seconds.\r\n",
		"[   95.5] cloud-init[701]: Cloud-init v. 25.1.4 finished at Sun, 22 Nov 2026 04:00:35 +0000. Datasource DataSourceNoCloud [seed=/dev/sr0].  Up 95.00 seconds\r\n",
		"APPLIANCE-READY gateway",
	}, 20*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events, err := WatchLog(ctx, log, "APPLIANCE-READY", EventReady, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Name)
	}
	want := "kernel,cloud-init:init-local,cloud-init:init,cloud-init:modules:config,cloud-init:modules:final,cloud-init:finished,ready"
	if strings.Join(got, ",") != want {
		t.Errorf("events %v, want %s", got, want)
	}
	for i := 1; i < len(events); i++ {
		if events[i].At < events[i-1].At {
			t.Errorf("event %s at %s is before %s at %s", events[i].Name, events[i].At, events[i-1].Name, events[i-1].At)
		}
	}
}

// TestWatchLogHandwrittenCrashFixtures feeds consoles ending in the crashes
// seen under TCG on the build host and checks each is reported as its kind
// at once, long before the watch's deadline.
func TestWatchLogHandwrittenCrashFixtures(t *testing.T) {
	boot := "[    0.000000] Linux version 6.12.57+deb13-cloud-amd64\n[    1.0] Run /init as init process\n"
	for _, c := range []struct {
		name, log string
		want      error
		line      string
	}{
		{"panic", boot + "[   3.2] VFS: Cannot open root device \"vdz\" or unknown-block(0,0): error -6\n" +
			"[   3.3] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n" +
			"[   3.4] CPU: 0 UID: 0 PID: 1 Comm: swapper/0 Not tainted 6.12.57+deb13-cloud-amd64 #1\n",
			ErrPanic, "Kernel panic - not syncing: VFS"},
		{"oops", boot + "[  44.1] BUG: kernel NULL pointer dereference, address: 0000000000000008\n" +
			"[  44.1] #PF: supervisor read access in kernel mode\n[  44.2] Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI\n",
			ErrOops, "BUG: kernel NULL pointer dereference"},
		{"double fault", boot + "[   2.5] traps: PANIC: double fault, error_code: 0x0\n" +
			"[   2.5] Kernel panic - not syncing: Machine halted.\n",
			ErrDoubleFault, "traps: PANIC: double fault"},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "console.log")
			if err := os.WriteFile(log, []byte(c.log), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err := WatchLog(ctx, log, "", EventLogin, time.Minute)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			var be *BootError
			if !errors.As(err, &be) || !strings.Contains(be.Line, c.line) {
				t.Errorf("failure line %q, want the line with %q", be.Line, c.line)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s to report the crash", d)
			}
		})
	}
}

// TestWatchLogHandwrittenHangFixture writes a console that stops mid-boot
// and checks the silence is reported as a hang after the configured time,
// not at the deadline.
func TestWatchLogHandwrittenHangFixture(t *testing.T) {
	log := filepath.Join(t.TempDir(), "console.log")
	writeSlowly(t, log, []string{
		"[    0.000000] Linux version 6.12.57+deb13-cloud-amd64\n",
		"[   65.0] cloud-init[412]: Cloud-init v. 25.1.4 running 'init-local' at Sun, 22 Nov 2026. Up 65.00 seconds.\n",
		"         Starting networking.service - Raise network interfaces...\n",
	}, 50*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	events, err := WatchLog(ctx, log, "", EventLogin, 700*time.Millisecond)
	if !errors.Is(err, ErrHang) {
		t.Fatalf("got %v, want a hang", err)
	}
	if d := time.Since(start); d < 700*time.Millisecond || d > 5*time.Second {
		t.Errorf("hang reported after %s, want shortly after 700ms of silence", d)
	}
	var be *BootError
	errors.As(err, &be)
	if !strings.Contains(be.Line, "networking.service") {
		t.Errorf("hang report %q does not name the last console line", be.Line)
	}
	if len(events) != 2 || events[1].Name != "cloud-init:init-local" {
		t.Errorf("events before the hang: %+v", events)
	}
}

// TestWatcherHandwrittenKVMFailureFixture feeds what QEMU prints when a
// paravirtual KVM cannot emulate an ordinary guest.
func TestWatcherHandwrittenKVMFailureFixture(t *testing.T) {
	w := NewWatcher(filepath.Join(t.TempDir(), "absent.log"), "", 0, time.Now())
	defer w.Close()
	if f := w.QemuLine("qemu-system-x86_64: warning: host doesn't support requested feature", time.Now()); f != nil {
		t.Fatalf("a warning counted as failure: %v", f)
	}
	f := w.QemuLine("KVM internal error. Suberror: 1", time.Now())
	if !errors.Is(f, ErrKVM) {
		t.Fatalf("got %v, want ErrKVM", f)
	}
	if errors.Is(f, ErrPanic) {
		t.Error("a KVM failure also matched ErrPanic")
	}
}

func TestCleanLineRemovesTerminalEscapes(t *testing.T) {
	in := "\x1b[!p\x1b]104\x07\x1b[?7h[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mssh.service\x1b[0m.\r\r"
	if got := CleanLine(in); got != "[  OK  ] Started ssh.service." {
		t.Errorf("CleanLine = %q", got)
	}
}
