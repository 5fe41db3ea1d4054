package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/verify/testenv"
)

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func preparedGateway(t *testing.T, agent, out string) *Config {
	t.Helper()
	c := &Config{Role: "gateway", AgentPath: agent, OutputDir: out, Formats: []string{"qcow2", "vhdx"}}
	if err := c.Prepare(); err != nil {
		t.Fatal(err)
	}
	return c
}

// writePriorBuild writes what an earlier build of c would have left: a
// manifest with c's inputs and output files of the recorded sizes. The
// image bytes are stand-ins (the step only compares names and sizes); a
// real bake is measured by `make bench`.
func writePriorBuild(t *testing.T, c *Config) string {
	t.Helper()
	spec, err := rootfsSpecHash(c)
	if err != nil {
		t.Fatal(err)
	}
	role, err := roleInputsHash(c)
	if err != nil {
		t.Fatal(err)
	}
	version := time.Now().UTC().Format("20060102") + "-" + shortHash(spec+role)
	var outs []Output
	for i, f := range c.formats {
		p := filepath.Join(c.OutputDir, fmt.Sprintf("%s-%s.%s", c.Role, version, f))
		data := make([]byte, 1000+i)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, Output{Format: f, Path: p, Size: int64(len(data))})
	}
	m := Manifest{Role: c.Role, Version: version, VirtualSize: c.diskSize,
		Inputs: map[string]string{"rootfs": spec, "role": role}, Outputs: outs}
	b, _ := json.Marshal(m)
	mpath := filepath.Join(c.OutputDir, fmt.Sprintf("%s-%s.manifest.json", c.Role, version))
	if err := os.WriteFile(mpath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return mpath
}

// With the outputs of the same inputs present, Run returns them at once
// (no rootfs, tree or disk work: the cache folder stays without a rootfs).
func TestRunStopsEarlyWhenOutputsAreUpToDateStandInImages(t *testing.T) {
	testenv.RequireTool(t, "mmdebstrap") // its version is a rootfs input
	out, cache := t.TempDir(), t.TempDir()
	c := preparedGateway(t, fakeAgent(t), out)
	c.CacheDir = cache
	mpath := writePriorBuild(t, c)
	start := time.Now()
	res, err := Run(context.Background(), c, quietLog())
	if err != nil {
		t.Fatalf("Run with up-to-date outputs: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("an up-to-date build took %s", d)
	}
	if res.Manifest != mpath || len(res.Outputs) != 2 || res.Outputs[0].Format != "qcow2" {
		t.Errorf("result %+v, want the existing manifest %s and its two outputs", res, mpath)
	}
	if _, err := os.Stat(filepath.Join(cache, "rootfs")); err == nil {
		t.Error("an up-to-date build built a root file system")
	}
}

// Every change of input, and every missing or altered output, must rebuild.
func TestUptodateRebuildsOnAnyChange(t *testing.T) {
	testenv.RequireTool(t, "mmdebstrap")
	cases := []struct {
		name   string
		change func(t *testing.T, c *Config, mpath string)
	}{
		{"nothing", func(*testing.T, *Config, string) {}},
		{"agent", func(t *testing.T, c *Config, _ string) {
			os.WriteFile(c.AgentPath, []byte("#!/bin/sh\n# another version\n"), 0o755)
		}},
		{"mirror", func(t *testing.T, c *Config, _ string) { c.Mirror = "http://mirror.invalid/debian" }},
		{"disk size", func(t *testing.T, c *Config, _ string) { c.diskSize *= 2 }},
		{"explicit version", func(t *testing.T, c *Config, _ string) { c.Version = "other" }},
		{"another format", func(t *testing.T, c *Config, _ string) { c.formats = append(c.formats, "raw") }},
		{"output deleted", func(t *testing.T, c *Config, mpath string) { os.Remove(outputsOf(t, mpath)[0].Path) }},
		{"output truncated", func(t *testing.T, c *Config, mpath string) { os.Truncate(outputsOf(t, mpath)[1].Path, 10) }},
		{"manifest corrupt", func(t *testing.T, c *Config, mpath string) { os.WriteFile(mpath, []byte("{"), 0o644) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := preparedGateway(t, fakeAgent(t), t.TempDir())
			mpath := writePriorBuild(t, c)
			tc.change(t, c, mpath)
			st := new(multistep.BasicStateBag)
			st.Put(stateConfig, c)
			st.Put(stateLog, quietLog())
			action := (stepUptodate{}).Run(context.Background(), st)
			_, hasOutputs := st.GetOk(stateOutputs)
			if tc.name == "nothing" {
				if action != multistep.ActionHalt || !hasOutputs {
					t.Fatalf("unchanged inputs: action %v, outputs %v; want an early stop with the outputs", action, hasOutputs)
				}
				return
			}
			if action != multistep.ActionContinue || hasOutputs {
				_, _, why := existingBuild(c)
				t.Errorf("after a %s change the build stopped early (action %v, reason %q); it must rebuild", tc.name, action, why)
			}
		})
	}
}

func outputsOf(t *testing.T, mpath string) []Output {
	t.Helper()
	b, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.Outputs
}
