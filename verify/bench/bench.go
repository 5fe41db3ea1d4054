// Package bench measures the figures docs/benchmarks.md reports: image
// build times (cold, after a role change, with nothing changed), image
// sizes, boot-to-serving under QEMU against the no-seed floor and the
// install-at-first-boot approach, seed ISO time and the JA4 cost. Each
// measurement records its raw samples; the document shows medians and
// ratios taken within one run, because the machines are shared and noisy.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Results is everything one `make bench` run measured. A section that could
// not be measured keeps its Error and no figures.
type Results struct {
	Generated string `json:"generated"`
	Command   string `json:"command"`
	// Notes are what the person running the benchmarks saw that the
	// figures do not show (e.g. other jobs on the machine).
	Notes   []string       `json:"notes,omitempty"`
	Machine Machine        `json:"machine"`
	Build   *BuildResult   `json:"build,omitempty"`
	Boot    *BootResult    `json:"boot,omitempty"`
	Seed    *GoBenchResult `json:"seed,omitempty"`
	JA4     *GoBenchResult `json:"ja4,omitempty"`
}

// Machine describes where the figures were measured.
type Machine struct {
	Date     string `json:"date"`
	Cores    int    `json:"cores"`
	MemoryMB int64  `json:"memory_mb"`
	CPU      string `json:"cpu"`
	Kernel   string `json:"kernel"`
	QEMU     string `json:"qemu"`
	Go       string `json:"go"`
	// Accel is what the boots used (kvm or tcg), filled by the boot
	// section; KVMNote says why KVM was not used, when it was not.
	Accel   string `json:"accel,omitempty"`
	KVMNote string `json:"kvm_note,omitempty"`
}

// Seconds is a list of samples in seconds.
type Seconds []float64

// Median is the middle sample (the mean of the two middle ones for an even
// count); 0 for no samples.
func (s Seconds) Median() float64 {
	if len(s) == 0 {
		return 0
	}
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	n := len(c)
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

// DescribeMachine reads the core count, memory, CPU model, kernel and QEMU
// version of this host.
func DescribeMachine(ctx context.Context, log logrus.FieldLogger) Machine {
	m := Machine{Date: time.Now().UTC().Format(time.RFC3339), Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, l := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(l, "MemTotal: %d kB", &kb); err == nil {
				m.MemoryMB = kb / 1024
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := run(ctx, log, "", nil, "uname", "-sr"); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	if out, err := run(ctx, log, "", nil, "qemu-system-x86_64", "--version"); err == nil {
		m.QEMU = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	} else {
		m.QEMU = "not installed"
	}
	return m
}

// run is the one wrapper through which this package starts programs: it
// logs the command line at debug level and puts the tail of stderr in its
// error. dir is the working directory ("" for the current one); env is
// added to the environment.
func run(ctx context.Context, log logrus.FieldLogger, dir string, env []string, name string, args ...string) ([]byte, error) {
	log.Debugf("run: %s %s", strings.Join(env, " "), strings.Join(append([]string{name}, args...), " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, tail(stderr.String()+stdout.String(), 1500))
	}
	return stdout.Bytes(), nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
