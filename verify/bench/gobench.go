package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
)

// GoBenchResult is a Go benchmark run -count times: each metric's samples
// (one per count) by unit, e.g. "ns/op", "on/off".
type GoBenchResult struct {
	Command string             `json:"command"`
	Metrics map[string]Seconds `json:"metrics"`
	Error   string             `json:"error,omitempty"`
}

// RunGoBench runs one Go benchmark of pkg count times in repo and collects
// its metrics. env is added to the environment (APPLBUILD_REQUIRE_TOOLS=1
// makes a missing tool a failure instead of a skip).
func RunGoBench(ctx context.Context, log logrus.FieldLogger, repo, pkg, name, benchtime string, count int, env []string) *GoBenchResult {
	args := []string{"test", "-run", "^$", "-bench", "^" + name + "$", "-benchtime", benchtime, "-count", strconv.Itoa(count), pkg}
	r := &GoBenchResult{Command: strings.Join(append(env, append([]string{"go"}, args...)...), " ")}
	out, err := run(ctx, log, repo, env, "go", args...)
	r.Metrics = ParseGoBench(string(out), name)
	if err != nil {
		r.Error = err.Error()
	} else if len(r.Metrics) == 0 {
		r.Error = fmt.Sprintf("no %s result in the output: %s", name, tail(string(out), 500))
	}
	return r
}

// ParseGoBench reads the result lines of benchmark name ("BenchmarkX-2  N
// value unit value unit ...") and returns every metric's values by unit.
func ParseGoBench(out, name string) map[string]Seconds {
	m := map[string]Seconds{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			m[f[i+1]] = append(m[f[i+1]], v)
		}
	}
	return m
}
