package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// Watcher follows a serial console log as QEMU writes it and turns it into
// events, failures and hangs.
type Watcher struct {
	path      string
	det       *Detector
	start     time.Time
	hangAfter time.Duration

	f          *os.File
	partial    []byte
	lastGrowth time.Time
	lastLine   string
}

// NewWatcher watches the console log at path for a boot that started at
// start. marker is the readiness string (may be empty). hangAfter is how
// long the console may stay silent before the boot counts as hung; zero
// disables hang detection.
func NewWatcher(path, marker string, hangAfter time.Duration, start time.Time) *Watcher {
	return &Watcher{path: path, det: NewDetector(marker), start: start, hangAfter: hangAfter, lastGrowth: start}
}

// SetHangAfter changes the hang limit; zero disables hang detection (an
// idle login prompt is silent forever and that is fine).
func (w *Watcher) SetHangAfter(d time.Duration) {
	w.hangAfter = d
}

// Poll reads what the console gained since the last call. It returns the
// events that appeared and a failure if the console shows one or has been
// silent for longer than the hang limit.
func (w *Watcher) Poll(now time.Time) ([]Event, *BootError) {
	at := now.Sub(w.start)
	if w.f == nil {
		f, err := os.Open(w.path)
		if err != nil {
			// QEMU creates the file when it starts; until then the
			// console is just silent.
			return nil, w.checkHang(now)
		}
		w.f = f
	}
	buf := make([]byte, 64*1024)
	var events []Event
	grew := false
	for {
		n, err := w.f.Read(buf)
		if n > 0 {
			grew = true
			w.partial = append(w.partial, buf[:n]...)
			for {
				i := bytes.IndexByte(w.partial, '\n')
				if i < 0 {
					break
				}
				line := string(w.partial[:i])
				w.partial = w.partial[i+1:]
				if c := CleanLine(line); c != "" {
					w.lastLine = c
				}
				ev, fail := w.det.Line(line, at)
				events = append(events, ev...)
				if fail != nil {
					return events, fail
				}
			}
		}
		if err == io.EOF || n == 0 {
			break
		}
		if err != nil {
			return events, &BootError{Kind: FailExit, At: at, Line: fmt.Sprintf("reading console %s: %v", w.path, err)}
		}
	}
	if grew {
		w.lastGrowth = now
		events = append(events, w.det.Partial(string(w.partial), at)...)
	}
	return events, w.checkHang(now)
}

func (w *Watcher) checkHang(now time.Time) *BootError {
	if w.hangAfter <= 0 || now.Sub(w.lastGrowth) < w.hangAfter {
		return nil
	}
	line := w.lastLine
	if line == "" {
		line = "(no console output at all)"
	}
	return &BootError{Kind: FailHang, At: now.Sub(w.start),
		Line: fmt.Sprintf("no console output for %s; last line: %s", now.Sub(w.lastGrowth).Round(time.Second), line)}
}

// QemuLine feeds a line QEMU itself printed; KVM failures show up there
// and never on the guest console.
func (w *Watcher) QemuLine(line string, now time.Time) *BootError {
	for _, f := range failures {
		if f.kind == FailKVM && f.re.MatchString(line) {
			return &BootError{Kind: FailKVM, Line: line, At: now.Sub(w.start)}
		}
	}
	return nil
}

// Events returns every event seen so far.
func (w *Watcher) Events() []Event { return w.det.Events() }

// Seen reports whether the named event has been seen.
func (w *Watcher) Seen(name string) bool { return w.det.Seen(name) }

// Close releases the log file.
func (w *Watcher) Close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// pollInterval is how often the console is read: fast enough that a
// failure ends the boot within a fraction of a second.
const pollInterval = 100 * time.Millisecond

// WatchLog follows the console log at path until the event named until
// appears (returning all events so far), the log shows a failure or a hang
// (a *BootError), or ctx ends. It is what Boot does minus QEMU, for logs
// written by something else.
func WatchLog(ctx context.Context, path, marker, until string, hangAfter time.Duration) ([]Event, error) {
	w := NewWatcher(path, marker, hangAfter, time.Now())
	defer w.Close()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		_, fail := w.Poll(time.Now())
		if fail != nil {
			fail.SerialLog = path
			return w.Events(), fail
		}
		if w.Seen(until) {
			return w.Events(), nil
		}
		select {
		case <-ctx.Done():
			return w.Events(), fmt.Errorf("watching %s for %q: %w", path, until, ctx.Err())
		case <-t.C:
		}
	}
}
