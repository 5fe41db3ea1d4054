package bench

import (
	"bytes"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/applbuild/applbuild/verify/qemu"
)

// ConsoleLine is one console line and when it appeared, in seconds since
// the recording started (QEMU starts within milliseconds of it).
type ConsoleLine struct {
	At   float64
	Text string
}

// Timeline is where a boot spent its time, as far as the console shows it:
// systemd's "Starting X..." / "[ OK ] Started X." pairs (the console form
// of systemd-analyze blame, which needs a login) and the longest silences.
type Timeline struct {
	Units []UnitSpan `json:"units"`
	Gaps  []Gap      `json:"gaps"`
	// Phases are the first-seen times of landmark lines.
	Phases []Phase `json:"phases"`
	// Guest is systemd-analyze and cloud-init analyze, run in the guest
	// over SSH after it served; GuestError says why it is missing.
	Guest      []GuestReport `json:"guest,omitempty"`
	GuestError string        `json:"guest_error,omitempty"`
}

// UnitSpan is how long a unit took from "Starting" to its "OK" line.
type UnitSpan struct {
	Unit    string  `json:"unit"`
	Start   float64 `json:"start_s"`
	Seconds float64 `json:"seconds"`
}

// Gap is a silence on the console between two lines.
type Gap struct {
	Seconds float64 `json:"seconds"`
	At      float64 `json:"at_s"`
	Before  string  `json:"before"`
	After   string  `json:"after"`
}

// Phase is a landmark of the boot.
type Phase struct {
	Name string  `json:"name"`
	At   float64 `json:"at_s"`
}

var (
	unitStarting = regexp.MustCompile(`^\s*(?:\[[^\]]*\]\s*)?Starting (.+?)\.\.\.\s*$`)
	unitDone     = regexp.MustCompile(`\[\s*OK\s*\]\s+(?:Started|Finished) (.+?)\.?\s*$`)
	landmarks    = []struct {
		name string
		re   *regexp.Regexp
	}{
		{"firmware: boot entry", regexp.MustCompile(`BdsDxe: (loading|starting) Boot`)},
		{"kernel banner", regexp.MustCompile(`Linux version \d`)},
		{"initramfs", regexp.MustCompile(`Loading, please wait|Run /init as init process`)},
		{"systemd on real root", regexp.MustCompile(`Welcome to .+!`)},
		{"cloud-init local", regexp.MustCompile(`running 'init-local'`)},
		{"cloud-init network", regexp.MustCompile(`running 'init'`)},
		{"cloud-init config", regexp.MustCompile(`running 'modules:config'`)},
		{"cloud-init final", regexp.MustCompile(`running 'modules:final'`)},
		{"appliance ready", regexp.MustCompile(`APPLIANCE-READY`)},
		{"login prompt", regexp.MustCompile(`login: `)},
	}
)

// Analyse turns console lines into the slowest units, the longest gaps and
// the landmarks.
func Analyse(lines []ConsoleLine) *Timeline {
	t := &Timeline{}
	started := map[string]float64{}
	seen := map[string]bool{}
	for i, l := range lines {
		if m := unitStarting.FindStringSubmatch(l.Text); m != nil {
			if _, ok := started[m[1]]; !ok {
				started[m[1]] = l.At
			}
		} else if m := unitDone.FindStringSubmatch(l.Text); m != nil {
			if s, ok := started[m[1]]; ok {
				t.Units = append(t.Units, UnitSpan{Unit: m[1], Start: s, Seconds: round1(l.At - s)})
				delete(started, m[1])
			}
		}
		for _, lm := range landmarks {
			if !seen[lm.name] && lm.re.MatchString(l.Text) {
				seen[lm.name] = true
				t.Phases = append(t.Phases, Phase{lm.name, round1(l.At)})
			}
		}
		if i > 0 {
			if d := l.At - lines[i-1].At; d >= 1 {
				t.Gaps = append(t.Gaps, Gap{Seconds: round1(d), At: round1(lines[i-1].At), Before: short(lines[i-1].Text), After: short(l.Text)})
			}
		}
	}
	sort.SliceStable(t.Units, func(i, j int) bool { return t.Units[i].Seconds > t.Units[j].Seconds })
	sort.SliceStable(t.Gaps, func(i, j int) bool { return t.Gaps[i].Seconds > t.Gaps[j].Seconds })
	if len(t.Units) > 12 {
		t.Units = t.Units[:12]
	}
	if len(t.Gaps) > 8 {
		t.Gaps = t.Gaps[:8]
	}
	return t
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

func short(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// consoleRecorder timestamps the lines of a console log as they are
// written. The log's own lines carry no wall-clock time, and the kernel's
// timestamps stop at userspace, so polling is the way to time what
// systemd and cloud-init print.
type consoleRecorder struct {
	path  string
	start time.Time
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	lines []ConsoleLine
}

func recordConsole(path string) *consoleRecorder {
	r := &consoleRecorder{path: path, start: time.Now(), done: make(chan struct{})}
	r.wg.Add(1)
	go r.loop()
	return r
}

func (r *consoleRecorder) loop() {
	defer r.wg.Done()
	var off int
	var partial string
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-tick.C:
		}
		b, err := os.ReadFile(r.path)
		if err != nil {
			continue
		}
		if len(b) < off {
			// A retried attempt starts a new console: start over.
			off, partial = 0, ""
			r.mu.Lock()
			r.lines = nil
			r.start = time.Now()
			r.mu.Unlock()
		}
		chunk := partial + string(b[off:])
		off = len(b)
		parts := strings.Split(chunk, "\n")
		partial = parts[len(parts)-1]
		at := time.Since(r.start).Seconds()
		r.mu.Lock()
		for _, p := range parts[:len(parts)-1] {
			if c := qemu.CleanLine(p); len(bytes.TrimSpace([]byte(c))) > 0 {
				r.lines = append(r.lines, ConsoleLine{At: at, Text: c})
			}
		}
		r.mu.Unlock()
	}
}

func (r *consoleRecorder) stop() []ConsoleLine {
	close(r.done)
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ConsoleLine(nil), r.lines...)
}
