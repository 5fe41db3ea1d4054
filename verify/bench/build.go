package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/builder"
)

// BuildResult holds the gateway build times and the sizes of the image.
type BuildResult struct {
	// Cold is a build with an empty cache (mmdebstrap downloads and
	// installs every package).
	Cold Seconds `json:"cold_s"`
	// RoleChange is a build with a warm rootfs cache after a change of the
	// role's inputs: an agent built with another version string.
	RoleChange Seconds `json:"role_change_s"`
	// NoChange is a rebuild with nothing changed.
	NoChange Seconds `json:"no_change_s"`
	// Steps are the step times of the cold build and of the first role
	// change build, as the builder logged them.
	ColdSteps       map[string]float64 `json:"cold_steps_s,omitempty"`
	RoleChangeSteps map[string]float64 `json:"role_change_steps_s,omitempty"`
	Sizes           Sizes              `json:"sizes"`
	Error           string             `json:"error,omitempty"`

	// Image and Manifest are the qcow2 and manifest of the last build,
	// for the boot measurements; not reported.
	Image    string `json:"-"`
	Manifest string `json:"-"`
}

// Sizes of the gateway image.
type Sizes struct {
	VirtualBytes int64 `json:"virtual_bytes"`
	QCOW2Bytes   int64 `json:"qcow2_bytes"`
	VHDXBytes    int64 `json:"vhdx_bytes"`
	Packages     int   `json:"packages"`
}

// BuildOptions says how to measure the builds.
type BuildOptions struct {
	// Work holds the cold cache, the agents and the outputs; the caller
	// removes it.
	Work string
	// ColdRuns, RoleChangeRuns and NoChangeRuns are how many of each to
	// time; each cold build gets an empty cache of its own.
	ColdRuns, RoleChangeRuns, NoChangeRuns int
	// Repo is the module root, where the agent is built from.
	Repo string
}

// MeasureBuilds times the gateway builds: ColdRuns cold (empty cache), then
// RoleChangeRuns builds each with an agent of another version (which
// changes the role hash as editing a role file does), then NoChangeRuns
// rebuilds of the last one. Sizes come from the cold build's outputs.
func MeasureBuilds(ctx context.Context, o BuildOptions, log logrus.FieldLogger) *BuildResult {
	r := &BuildResult{}
	cache := ""
	out := filepath.Join(o.Work, "images")
	build := func(version string) (*builder.Result, float64, map[string]float64, error) {
		agent := filepath.Join(o.Work, "agents", "appliance-"+version)
		if err := buildAgent(ctx, log, o.Repo, agent, version); err != nil {
			return nil, 0, nil, err
		}
		c := &builder.Config{Role: "gateway", OutputDir: out, CacheDir: cache, AgentPath: agent}
		if err := c.Prepare(); err != nil {
			return nil, 0, nil, err
		}
		steps := &stepTimes{m: map[string]float64{}}
		l := logrus.New()
		l.SetOutput(logWriter{log})
		l.AddHook(steps)
		start := time.Now()
		res, err := builder.Run(ctx, c, l)
		return res, time.Since(start).Seconds(), steps.m, err
	}
	var res *builder.Result
	for i := 0; i < max(o.ColdRuns, 1); i++ {
		// A new empty cache each time; the previous one goes, and the
		// warm builds below use the last.
		if cache != "" {
			os.RemoveAll(cache)
		}
		cache = filepath.Join(o.Work, fmt.Sprintf("cache-%d", i+1))
		var d float64
		var steps map[string]float64
		var err error
		res, d, steps, err = build(fmt.Sprintf("bench-cold-%d", i+1))
		if err != nil {
			r.Error = fmt.Sprintf("cold build: %v", err)
			return r
		}
		r.Cold = append(r.Cold, d)
		if i == 0 {
			r.ColdSteps = steps
		}
		log.Infof("cold build %d: %.1fs", i+1, d)
	}
	if err := r.readSizes(res); err != nil {
		r.Error = err.Error()
		return r
	}
	r.Image, r.Manifest = res.Outputs[0].Path, res.Manifest
	last := ""
	for i := 0; i < o.RoleChangeRuns; i++ {
		last = fmt.Sprintf("bench-role-%d", i+1)
		res, d, steps, err := build(last)
		if err != nil {
			r.Error = fmt.Sprintf("role change build: %v", err)
			return r
		}
		if i == 0 {
			r.RoleChangeSteps = steps
		}
		r.RoleChange = append(r.RoleChange, d)
		r.Image, r.Manifest = res.Outputs[0].Path, res.Manifest
		log.Infof("role change build %d: %.1fs", i+1, d)
	}
	for i := 0; i < o.NoChangeRuns && last != ""; i++ {
		_, d, _, err := build(last)
		if err != nil {
			r.Error = fmt.Sprintf("no-change build: %v", err)
			return r
		}
		r.NoChange = append(r.NoChange, d)
		log.Infof("no-change build %d: %.1fs", i+1, d)
	}
	return r
}

func (r *BuildResult) readSizes(res *builder.Result) error {
	b, err := os.ReadFile(res.Manifest)
	if err != nil {
		return err
	}
	var m builder.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("manifest %s: %w", res.Manifest, err)
	}
	r.Sizes.VirtualBytes, r.Sizes.Packages = m.VirtualSize, len(m.Packages)
	for _, o := range m.Outputs {
		switch o.Format {
		case "qcow2":
			r.Sizes.QCOW2Bytes = o.Size
		case "vhdx":
			r.Sizes.VHDXBytes = o.Size
		}
	}
	if r.Sizes.QCOW2Bytes == 0 {
		return fmt.Errorf("manifest %s lists no qcow2 output", res.Manifest)
	}
	return nil
}

// buildAgent builds the static appliance agent with the given version
// string; a different string gives different bytes and so a different
// role hash.
func buildAgent(ctx context.Context, log logrus.FieldLogger, repo, out, version string) error {
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	_, err := run(ctx, log, repo, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+version, "-o", out, "./cmd/appliance")
	return err
}

// stepTimes collects the builder's "done" log lines: step name and elapsed.
type stepTimes struct {
	mu sync.Mutex
	m  map[string]float64
}

func (*stepTimes) Levels() []logrus.Level { return []logrus.Level{logrus.InfoLevel} }

func (s *stepTimes) Fire(e *logrus.Entry) error {
	step, ok1 := e.Data["step"].(string)
	el, ok2 := e.Data["elapsed"].(string)
	if !ok1 || !ok2 {
		return nil
	}
	if d, err := time.ParseDuration(el); err == nil {
		s.mu.Lock()
		s.m[step] = d.Seconds()
		s.mu.Unlock()
	}
	return nil
}

// logWriter sends the builder's formatted lines to the bench log at debug
// level, so a -v run shows them and a normal run stays short.
type logWriter struct{ log logrus.FieldLogger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Debug(string(p))
	return len(p), nil
}
