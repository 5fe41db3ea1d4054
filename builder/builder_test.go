package builder

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/verify/testenv"
)

// The HCL2 spec must be regenerated whenever Config changes, or Packer
// silently ignores (or rejects) the new arguments. This regenerates it
// beside a scratch copy and compares it with the committed file.
func TestHCL2SpecMatchesConfig(t *testing.T) {
	goBin := testenv.RequireTool(t, "go")
	tmp := t.TempDir()
	cmd := exec.Command(goBin, "run", "github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc",
		"mapstructure-to-hcl2", "-type", "Config")
	// packer-sdc reads the package in its working directory and writes
	// <GOFILE minus .go>.hcl2spec.go, so pointing GOFILE into tmp keeps
	// the committed file untouched.
	cmd.Env = append(os.Environ(), "GOFILE="+filepath.Join(tmp, "config.go"), "GOPACKAGE=builder")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("packer-sdc: %v\n%s", err, stderr.String())
	}
	fresh, err := os.ReadFile(filepath.Join(tmp, "config.hcl2spec.go"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("config.hcl2spec.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Errorf("config.hcl2spec.go is stale; run `go generate ./builder/` and commit it.\nfresh:\n%s", fresh)
	}
}

func TestConfigSpecHasEveryArgument(t *testing.T) {
	spec := new(Builder).ConfigSpec()
	for _, name := range []string{"role", "output_directory", "formats", "disk_size", "cache_dir", "mirror", "version", "agent_path", "keep_work_dir"} {
		if _, ok := spec[name]; !ok {
			t.Errorf("the HCL2 spec has no %q argument", name)
		}
	}
}

// fakeAgent stands in for the static appliance binary: Prepare only checks
// that the file exists, and these tests never build an image.
func fakeAgent(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "appliance")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrepareFillsDefaults(t *testing.T) {
	var b Builder
	_, warns, err := b.Prepare(map[string]interface{}{
		"role":       "gateway",
		"agent_path": fakeAgent(t),
		"formats":    []string{"qcow2", "QCOW2", "raw"},
	})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if b.config.OutputDir != filepath.Join("dist", "images") || b.config.DiskSize != "8G" {
		t.Errorf("defaults: output_directory %q disk_size %q", b.config.OutputDir, b.config.DiskSize)
	}
	if got := strings.Join(b.config.formats, ","); got != "qcow2,raw" {
		t.Errorf("formats = %s, want qcow2,raw (lower-cased, duplicates dropped)", got)
	}
}

func TestPrepareReportsEveryProblem(t *testing.T) {
	var b Builder
	_, _, err := b.Prepare(map[string]interface{}{
		"role":       "node-x",
		"formats":    []string{"vmdk"},
		"disk_size":  "1G",
		"agent_path": filepath.Join(t.TempDir(), "missing"),
	})
	if err == nil {
		t.Fatal("Prepare accepted an unknown role, format, size and agent")
	}
	if _, ok := err.(*packer.MultiError); !ok {
		t.Errorf("error is %T, want *packer.MultiError so Packer lists each problem", err)
	}
	for _, want := range []string{`unknown role "node-x"`, "gateway", `"vmdk" is not a format`, "outside 2G..2T", "agent_path"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestPrepareRejectsUnknownArgument(t *testing.T) {
	var b Builder
	_, _, err := b.Prepare(map[string]interface{}{"role": "gateway", "agent_path": fakeAgent(t), "format": "qcow2"})
	if err == nil || !strings.Contains(err.Error(), "format") {
		t.Fatalf("a misspelt argument was accepted: %v", err)
	}
}

func TestUILoggerShowsInfoButNotDebug(t *testing.T) {
	var out, errOut bytes.Buffer
	ui := &packer.BasicUi{Reader: strings.NewReader(""), Writer: &out, ErrorWriter: &errOut}
	log := uiLogger(ui)
	log.WithFields(logrus.Fields{"work_dir": "/w", "step": "rootfs", "elapsed": "1s"}).Info("done")
	log.Debug("mmdebstrap --variant=apt")
	log.WithField("step", "disk").Error("failed")
	if got := out.String(); got != "rootfs: done elapsed=1s work_dir=/w\n" {
		t.Errorf("UI output = %q", got)
	}
	if got := errOut.String(); got != "disk: failed\n" {
		t.Errorf("UI errors = %q", got)
	}
}

func TestArtifact(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := &Artifact{
		Outputs: []Output{
			{Format: "qcow2", Path: write("gateway-v1.qcow2"), Size: 2_500_000, SHA256: "ab"},
			{Format: "vhdx", Path: write("gateway-v1.vhdx"), Size: 3_000_000, SHA256: "cd"},
		},
		Manifest: write("gateway-v1.manifest.json"),
	}
	other := write("unrelated.txt")
	if a.BuilderId() != "applbuild.image" || a.Id() != "gateway-v1" {
		t.Errorf("BuilderId %q Id %q", a.BuilderId(), a.Id())
	}
	if got := a.Files(); len(got) != 3 || got[2] != a.Manifest {
		t.Errorf("Files = %v", got)
	}
	if a.State("manifest") != a.Manifest || a.State("other") != nil {
		t.Errorf("State(manifest) = %v", a.State("manifest"))
	}
	for _, want := range []string{"gateway-v1.qcow2", "2.5 MB", "gateway-v1.vhdx", "manifest"} {
		if !strings.Contains(a.String(), want) {
			t.Errorf("String lacks %q:\n%s", want, a.String())
		}
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 1 || left[0] != other {
		t.Errorf("after Destroy the folder holds %v, want only %s", left, other)
	}
	if err := a.Destroy(); err != nil {
		t.Errorf("a second Destroy: %v", err)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	var b Builder
	if _, _, err := b.Prepare(map[string]interface{}{"role": "gateway", "agent_path": fakeAgent(t), "cache_dir": t.TempDir(), "output_directory": t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	ui := &packer.BasicUi{Reader: strings.NewReader(""), Writer: &out, ErrorWriter: &out}
	art, err := b.Run(ctx, ui, nil)
	if err == nil || art != nil {
		t.Fatalf("Run with a cancelled context returned %v, %v", art, err)
	}
}

// docs/packer.md is where users look up the arguments; a new Config field
// must be documented there too.
func TestPackerDocsListEveryArgument(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "packer.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range new(Builder).ConfigSpec() {
		if strings.HasPrefix(name, "packer_") {
			continue // set by Packer itself, not by users
		}
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("docs/packer.md has no table row for the argument %q", name)
		}
	}
}
