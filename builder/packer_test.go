package builder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder/rootfs"
	"github.com/applbuild/applbuild/roles"
	"github.com/applbuild/applbuild/verify/testenv"
)

// packerVersion is the Packer these tests drive. Debian's packer (1.6) is
// too old for the plugin protocol, so it is built from the module proxy.
const packerVersion = "v1.11.2"

// runCmd runs a program with a deadline and returns its stdout, failing the
// test with the tail of its output if it exits non-zero.
func runCmd(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := tryCmd(timeout, dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out, 4000))
	}
	return out
}

// tryCmd is runCmd for commands expected to fail: stdout and stderr
// together, and the error.
func tryCmd(timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// packerBinary returns a Packer built from the module proxy, cached under
// the applbuild cache by version (a cold build takes a few minutes).
func packerBinary(t *testing.T) string {
	t.Helper()
	goBin := testenv.RequireTool(t, "go")
	cache, err := rootfs.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(cache, "packer", "packer-"+packerVersion)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return bin
	}
	src := filepath.Join(cache, "packer", "src-"+packerVersion)
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	// Plugins and Packer both need the go-cty fork that keeps the
	// msgpack encoding of unknown values Packer relies on.
	mod := "module applbuild.local/packer\n\ngo 1.22\n\n" +
		"require github.com/hashicorp/packer " + packerVersion + "\n\n" +
		"replace github.com/zclconf/go-cty => github.com/nywilken/go-cty v1.13.3\n"
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(filepath.Dir(bin), "packer-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	tmp := f.Name()
	defer os.Remove(tmp)
	t.Logf("building Packer %s into %s", packerVersion, bin)
	runCmd(t, 15*time.Minute, src, []string{"GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0"},
		goBin, "build", "-o", tmp, "github.com/hashicorp/packer")
	// A rename, so a concurrent or killed build never leaves a half-written
	// binary under the cached name.
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// buildProgram compiles one of this module's commands into dir, statically
// as `make build` does.
func buildProgram(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	goBin := testenv.RequireTool(t, "go")
	out := filepath.Join(dir, name)
	runCmd(t, 5*time.Minute, "..", []string{"CGO_ENABLED=0"}, goBin, "build", "-o", out, pkg)
	return out
}

// packerEnv keeps Packer's plugins, configuration and home inside dir, so a
// test never reads or changes ~/.config/packer.
func packerEnv(t *testing.T, dir string) []string {
	t.Helper()
	cache, err := rootfs.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"plugins", "config", "home", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []string{
		"PACKER_PLUGIN_PATH=" + filepath.Join(dir, "plugins"),
		"PACKER_CONFIG_DIR=" + filepath.Join(dir, "config"),
		"PACKER_CACHE_DIR=" + filepath.Join(dir, "cache"),
		"HOME=" + filepath.Join(dir, "home"),
		"CHECKPOINT_DISABLE=1",
		// The root file system cache is the user's, so a warm cache
		// makes this build as fast as `applbuild image`.
		rootfs.CacheEnv + "=" + cache,
	}
}

// installPlugin builds the plugin and installs it the way `make plugin`
// does, returning Packer's environment for the test.
func installPlugin(t *testing.T, packer string) []string {
	t.Helper()
	dir := t.TempDir()
	plugin := buildProgram(t, dir, "./cmd/packer-plugin-applbuild", "packer-plugin-applbuild")
	env := packerEnv(t, dir)
	runCmd(t, time.Minute, dir, env, packer, "plugins", "install", "--path", plugin, "github.com/applbuild/applbuild")
	out := runCmd(t, time.Minute, dir, env, packer, "plugins", "installed")
	if !strings.Contains(out, filepath.Join("github.com", "applbuild", "applbuild", "packer-plugin-applbuild_v")) {
		t.Fatalf("packer plugins installed does not list the plugin:\n%s", out)
	}
	return env
}

func TestPluginDescribeListsImageBuilder(t *testing.T) {
	plugin := buildProgram(t, t.TempDir(), "./cmd/packer-plugin-applbuild", "packer-plugin-applbuild")
	out := runCmd(t, time.Minute, "", nil, plugin, "describe")
	var d struct {
		Version    string   `json:"version"`
		APIVersion string   `json:"api_version"`
		Builders   []string `json:"builders"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("describe printed %q: %v", out, err)
	}
	if len(d.Builders) != 1 || d.Builders[0] != "image" {
		t.Errorf("builders = %v, want [image] (source type applbuild-image)", d.Builders)
	}
	if d.Version == "" || !strings.HasPrefix(d.APIVersion, "x5.") {
		t.Errorf("version %q api_version %q; Packer 1.11 installs plugins by version and speaks API x5", d.Version, d.APIVersion)
	}
}

// The repository's .packer.pkr.hcl must stay valid for the roles that
// exist, and a bad source must reach the user as Config.Prepare's message.
func TestPackerValidate(t *testing.T) {
	testenv.Short(t, "builds Packer from the module proxy when not cached")
	packer := packerBinary(t)
	env := installPlugin(t, packer)
	agent := buildProgram(t, t.TempDir(), "./cmd/appliance", "appliance")
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	// The default (the gateway), and the selection docs/packer.md shows.
	for _, args := range [][]string{nil, {"-var", `roles=["gateway","node"]`, "-only=applbuild-image.gateway"}} {
		args = append(append([]string{"validate", "-var", "agent_path=" + agent}, args...), ".packer.pkr.hcl")
		out := runCmd(t, time.Minute, repo, env, packer, args...)
		if !strings.Contains(out, "The configuration is valid") {
			t.Errorf("packer %s: %s", strings.Join(args, " "), out)
		}
	}

	dir := t.TempDir()
	hcl := `source "applbuild-image" "bad" {
  role       = "router"
  formats    = ["qcow2", "vmdk"]
  agent_path = "` + agent + `"
}
build {
  sources = ["source.applbuild-image.bad"]
}
`
	if err := os.WriteFile(filepath.Join(dir, "bad.pkr.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := tryCmd(time.Minute, dir, env, packer, "validate", "bad.pkr.hcl")
	if err == nil {
		t.Fatalf("packer validate accepted role router and format vmdk:\n%s", out)
	}
	for _, want := range []string{`unknown role "router"; valid roles: ` + strings.Join(roles.Names(), ", "), `"vmdk" is not a format; use raw, qcow2 or vhdx`} {
		if !strings.Contains(out, want) {
			t.Errorf("packer validate output lacks %q:\n%s", want, out)
		}
	}
}

// A real `packer build` through the installed plugin bakes a gateway image.
func TestPackerBuildGateway(t *testing.T) {
	testenv.Short(t, "bakes a gateway image (1-3 minutes) and may build Packer")
	testenv.RequireRoot(t)
	for _, p := range []string{"mmdebstrap", "tar", "qemu-img", "sgdisk", "mkfs.ext4", "mkfs.vfat", "mmd", "mcopy"} {
		testenv.RequireTool(t, p)
	}
	packer := packerBinary(t)
	env := installPlugin(t, packer)
	dir := t.TempDir()
	agent := buildProgram(t, dir, "./cmd/appliance", "appliance")
	outDir := filepath.Join(dir, "images")
	hcl := `source "applbuild-image" "gw" {
  role             = "gateway"
  formats          = ["qcow2"]
  output_directory = "` + outDir + `"
  version          = "packertest"
  agent_path       = "` + agent + `"
}
build {
  sources = ["source.applbuild-image.gw"]
}
`
	if err := os.WriteFile(filepath.Join(dir, "gw.pkr.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := runCmd(t, 15*time.Minute, dir, env, packer, "build", "-color=false", "gw.pkr.hcl")
	t.Logf("packer build took %s", time.Since(start).Round(time.Second))

	qcow := filepath.Join(outDir, "gateway-packertest.qcow2")
	manifest := filepath.Join(outDir, "gateway-packertest.manifest.json")
	for _, want := range []string{"applbuild-image.gw: rootfs: started", "export: done", "appliance image gateway-packertest:", qcow} {
		if !strings.Contains(out, want) {
			t.Errorf("packer build output lacks %q:\n%s", want, tail(out, 4000))
		}
	}
	info := runCmd(t, time.Minute, "", nil, "qemu-img", "info", "--output=json", qcow)
	var img struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
	}
	if err := json.Unmarshal([]byte(info), &img); err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, info)
	}
	if img.Format != "qcow2" || img.VirtualSize != 8<<30 {
		t.Errorf("qemu-img says format %q, virtual size %d; want qcow2 of 8 GiB (the default disk_size)", img.Format, img.VirtualSize)
	}
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatalf("no manifest beside the image: %v", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.Role != "gateway" || len(m.Outputs) != 1 || m.Outputs[0].Path != qcow || m.Outputs[0].Format != "qcow2" {
		t.Errorf("manifest role %q outputs %+v; want gateway and just %s", m.Role, m.Outputs, qcow)
	}
	if len(m.Packages) == 0 {
		t.Errorf("manifest lists no packages")
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 2 {
		t.Errorf("%s holds %d entries, want the image and the manifest only", outDir, len(entries))
	}
}

// Ctrl-C (or SIGTERM) during `packer build` must stop the bake and leave no
// image, not a truncated one that looks finished.
func TestPackerBuildCancelLeavesNoOutput(t *testing.T) {
	testenv.Short(t, "starts baking a gateway image and may build Packer")
	testenv.RequireRoot(t)
	for _, p := range []string{"mmdebstrap", "tar", "qemu-img", "sgdisk", "mkfs.ext4", "mkfs.vfat", "mmd", "mcopy"} {
		testenv.RequireTool(t, p)
	}
	packer := packerBinary(t)
	env := installPlugin(t, packer)
	dir := t.TempDir()
	agent := buildProgram(t, dir, "./cmd/appliance", "appliance")
	outDir := filepath.Join(dir, "images")
	hcl := `source "applbuild-image" "gw" {
  role             = "gateway"
  formats          = ["raw", "qcow2"]
  output_directory = "` + outDir + `"
  agent_path       = "` + agent + `"
}
build {
  sources = ["source.applbuild-image.gw"]
}
`
	if err := os.WriteFile(filepath.Join(dir, "gw.pkr.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, packer, "build", "-color=false", "gw.pkr.hcl")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	signalled := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		// The export step writes into the output folder, so stopping
		// there is the case that could leave a partial image behind.
		if !signalled && strings.Contains(sc.Text(), "export: started") {
			signalled = true
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if !signalled {
		t.Fatalf("the build never reached the export step:\n%s", tail(out.String(), 4000))
	}
	if err == nil && !strings.Contains(out.String(), "Cleanly cancelled") {
		t.Fatalf("packer build finished although it was cancelled during export:\n%s", tail(out.String(), 4000))
	}
	if !strings.Contains(out.String(), "export: failed") {
		t.Errorf("the UI does not show the export step failing:\n%s", tail(out.String(), 4000))
	}
	entries, _ := os.ReadDir(outDir)
	for _, e := range entries {
		t.Errorf("a cancelled build left %s in the output folder", e.Name())
	}
}
