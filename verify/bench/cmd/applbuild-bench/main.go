// Command applbuild-bench measures the figures of docs/benchmarks.md (build
// times, image sizes, boot to serving, seed ISO time, JA4 cost) and writes
// that file and the raw results. `make bench` runs it as root from the
// module root.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/applbuild/applbuild/seeds"
	"github.com/applbuild/applbuild/verify/bench"
)

func main() {
	var (
		doc         = pflag.String("doc", "docs/benchmarks.md", "the document to (re)write")
		data        = pflag.String("data", "dist/bench/results.json", "the raw results; sections not run this time are kept from it")
		work        = pflag.String("work", "", "scratch folder for the cold cache, images and boots (default: a temporary folder, removed at the end)")
		only        = pflag.String("only", "build,boot,seed,ja4", "sections to measure: build, boot, seed, ja4")
		coldRuns    = pflag.Int("cold-runs", 3, "cold-cache builds to time (each downloads every package again)")
		roleRuns    = pflag.Int("role-change-runs", 3, "role-change builds to time")
		noRuns      = pflag.Int("no-change-runs", 3, "no-change builds to time")
		bootRuns    = pflag.Int("boot-runs", 3, "rounds of the three boots (floor, seeded, install at first boot)")
		installRuns = pflag.Int("install-runs", 3, "rounds (the first ones) that also boot the install-at-first-boot image, the slowest boot")
		bootTO      = pflag.Duration("boot-timeout", 15*time.Minute, "bound on each boot")
		accel       = pflag.String("accel", "auto", "QEMU accelerator: auto, kvm or tcg")
		image       = pflag.String("image", "", "gateway qcow2 to boot when the build section is not run")
		seedCount   = pflag.Int("seed-count", 5, "runs of the seed ISO benchmark")
		ja4Count    = pflag.Int("ja4-count", 3, "runs of the JA4 handshake benchmark")
		total       = pflag.Duration("timeout", 2*time.Hour, "bound on the whole run")
		verbose     = pflag.BoolP("verbose", "v", false, "log the builder's lines and every command")
		notes       = pflag.StringArray("note", nil, "a note for the document (repeatable), e.g. other load on the machine")
		renderOnly  = pflag.Bool("render-only", false, "only rewrite the document from the raw results")
	)
	pflag.Parse()
	log := logrus.New()
	if *verbose {
		log.SetLevel(logrus.DebugLevel)
	}
	if err := runBench(log, options{*doc, *data, *work, *only, *coldRuns, *roleRuns, *noRuns, *bootRuns, *installRuns, *bootTO, *accel, *image, *seedCount, *ja4Count, *total, *renderOnly, *notes}); err != nil {
		log.Error(err)
		os.Exit(1)
	}
}

type options struct {
	doc, data, work, only      string
	coldRuns, roleRuns, noRuns int
	bootRuns, installRuns      int
	bootTimeout                time.Duration
	accel, image               string
	seedCount, ja4Count        int
	timeout                    time.Duration
	renderOnly                 bool
	notes                      []string
}

func runBench(log *logrus.Logger, o options) error {
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		return fmt.Errorf("run from the module root (where go.mod is): %v", err)
	}
	res := &bench.Results{}
	if b, err := os.ReadFile(o.data); err == nil {
		if err := json.Unmarshal(b, res); err != nil {
			return fmt.Errorf("%s: %v; delete it to start afresh", o.data, err)
		}
	}
	if len(o.notes) > 0 {
		res.Notes = o.notes
	}
	if o.renderOnly {
		return write(o, res)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(o.only, ",") {
		s = strings.TrimSpace(s)
		switch s {
		case "build", "boot", "seed", "ja4":
			want[s] = true
		default:
			return fmt.Errorf("--only: %q is not a section; use build, boot, seed and ja4, comma-separated", s)
		}
	}
	if want["boot"] && !want["build"] && o.image == "" {
		return fmt.Errorf("--only boot needs --image, the gateway qcow2 to boot (or run the build section too)")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, o.timeout)
	defer cancel2()

	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "applbuild-bench-"); err != nil {
			return err
		}
		// The cold cache and the images take gigabytes.
		defer os.RemoveAll(o.work)
	}
	res.Generated = time.Now().UTC().Format(time.RFC3339)
	res.Command = "applbuild-bench " + strings.Join(os.Args[1:], " ")
	res.Machine = bench.DescribeMachine(ctx, log)
	if r := res.Boot; r != nil {
		setAccel(res, r)
	}
	// A section cut short by a signal or the timeout is not written: the
	// document keeps that section's earlier figures rather than a
	// half-measured one, and the sections after it are not started. (The
	// boot section writes each round as it completes; a stop keeps the
	// rounds written before it.)
	stopped := func(section string) error {
		if ctx.Err() == nil {
			return nil
		}
		return fmt.Errorf("stopped during the %s section (%v): %s and %s keep the figures measured before it", section, ctx.Err(), o.doc, o.data)
	}
	imagePath := o.image
	if want["build"] {
		log.Info("measuring gateway build times (cold, role change, no change)")
		b := bench.MeasureBuilds(ctx, bench.BuildOptions{Work: filepath.Join(o.work, "build"), Repo: repo, ColdRuns: o.coldRuns, RoleChangeRuns: o.roleRuns, NoChangeRuns: o.noRuns}, log)
		if err := stopped("build"); err != nil {
			return err
		}
		res.Build = b
		imagePath = res.Build.Image
		if err := write(o, res); err != nil {
			return err
		}
	}
	if want["seed"] {
		log.Info("measuring seed ISO time")
		s := bench.RunGoBench(ctx, log, repo, "./seeds/", "BenchmarkSeedISO", "100x", o.seedCount, nil)
		if err := stopped("seed"); err != nil {
			return err
		}
		res.Seed = s
		if err := write(o, res); err != nil {
			return err
		}
	}
	if want["ja4"] {
		log.Info("measuring the JA4 handshake cost")
		j := bench.RunGoBench(ctx, log, repo, "./roles/gateway/", "BenchmarkJA4HandshakeCost", "1x", o.ja4Count, []string{"APPLBUILD_REQUIRE_TOOLS=1"})
		if err := stopped("ja4"); err != nil {
			return err
		}
		res.JA4 = j
		if err := write(o, res); err != nil {
			return err
		}
	}
	if want["boot"] {
		if imagePath == "" {
			res.Boot = &bench.BootResult{Error: "no gateway image: the build section failed"}
		} else {
			log.Info("measuring boot to serving (floor, seeded, install at first boot)")
			res.Boot = bench.MeasureBoots(ctx, bench.BootOptions{Image: imagePath, Work: filepath.Join(o.work, "boot"),
				Cache: filepath.Join(o.work, "build", "cache"), Runs: o.bootRuns, InstallRuns: o.installRuns, Accel: o.accel, Timeout: o.bootTimeout,
				Progress: func(b *bench.BootResult) {
					if ctx.Err() != nil {
						return
					}
					res.Boot = b
					setAccel(res, b)
					if err := write(o, res); err != nil {
						log.Warn(err)
					}
				}}, log)
			if err := stopped("boot"); err != nil {
				return err
			}
			setAccel(res, res.Boot)
		}
	}
	return write(o, res)
}

// setAccel records which accelerator the boots ran under, and why not KVM.
func setAccel(res *bench.Results, r *bench.BootResult) {
	for _, runs := range [][]bench.BootRun{r.Seeded, r.Floor, r.Install} {
		for _, b := range runs {
			if b.Accel != "" {
				res.Machine.Accel = b.Accel
				if b.Accel == "tcg" {
					res.Machine.KVMNote = "The boots ran under TCG (software emulation): KVM on this machine is PVM, which does not run ordinary guest kernels. Boot times are many times what KVM gives; the ratios between boots are the comparable figures."
				}
				return
			}
		}
	}
}

func write(o options, res *bench.Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.data), 0o755); err != nil {
		return err
	}
	if err := seeds.WriteFileAtomic(o.data, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return seeds.WriteFileAtomic(o.doc, []byte(bench.Markdown(res)), 0o644)
}
