package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// exampleCopy copies examples/ into a temp dir and makes it the working
// directory, so commands run exactly as a user runs them from a checkout.
func exampleCopy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "..", "examples", "sites")
	dst := filepath.Join(dir, "examples", "sites")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		if e.IsDir() { // generated secrets of a local run are not part of the example
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
	t.Chdir(dir)
	return dir
}

// quickstartCommands returns the applbuild command lines the README's
// quickstart says `make quickstart` runs.
func quickstartCommands(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "## Quickstart")
	if !ok {
		t.Fatal("README has no Quickstart section")
	}
	section, _, _ := strings.Cut(after, "\n## ")
	var cmds [][]string
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "applbuild ") {
			cmds = append(cmds, strings.Fields(l))
		}
	}
	if len(cmds) < 2 {
		t.Fatalf("README quickstart lists %d applbuild commands, want keygen and seed", len(cmds))
	}
	return cmds
}

func TestQuickstartFromREADME(t *testing.T) {
	cmds := quickstartCommands(t)
	// The Makefile target must run the same commands the README shows.
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var recipe []string
	_, target, _ := strings.Cut(string(mk), "\nquickstart:")
	for _, l := range strings.Split(target, "\n")[1:] {
		if !strings.HasPrefix(l, "\t") {
			break
		}
		l = strings.NewReplacer("./bin/applbuild", "applbuild", "$(SITE)", "bank1", "$(SITES_DIR)", "examples/sites").Replace(strings.TrimSpace(l))
		recipe = append(recipe, l)
	}
	for _, c := range cmds {
		found := false
		for _, r := range recipe {
			if r == strings.Join(c, " ") {
				found = true
			}
		}
		if !found {
			t.Errorf("README quickstart command %q is not in the Makefile's quickstart target %q", strings.Join(c, " "), recipe)
		}
	}

	dir := exampleCopy(t)
	var seedOut string
	for _, c := range cmds {
		if c[1] == "image" {
			continue // baking is tested in verify; here the site commands run
		}
		code, out, errOut := runCLI(t, c[1:]...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", strings.Join(c, " "), code, out, errOut)
		}
		if c[1] == "seed" {
			seedOut = out
		}
	}
	lines := strings.Split(strings.TrimSpace(seedOut), "\n")
	if len(lines) != 3 {
		t.Fatalf("seed printed %d lines, want one per VM (3):\n%s", len(lines), seedOut)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 5 {
			t.Fatalf("line %q: want name, role, ip, path, sha256", l)
		}
		b, err := os.ReadFile(filepath.Join(dir, f[3]))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if f[4] != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Errorf("%s: printed %s, file has sha256 %x", f[3], f[4], sum)
		}
		if want := filepath.Join("dist", "seeds", "bank1", f[0]+".iso"); f[3] != want {
			t.Errorf("ISO path %s, want %s", f[3], want)
		}
	}
	// Running keygen again must not touch the secrets it made.
	before, _ := os.ReadFile(filepath.Join(dir, "examples/sites/bank1/secrets.yaml"))
	if code, out, _ := runCLI(t, cmds[0][1:]...); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("second keygen: exit %d, %q", code, out)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "examples/sites/bank1/secrets.yaml"))
	if !bytes.Equal(before, after) {
		t.Error("keygen overwrote an existing secrets file")
	}
}

func TestSeedBadSiteWritesNothing(t *testing.T) {
	dir := exampleCopy(t)
	if code, _, e := runCLI(t, "keygen", "--site", "bank1", "--sites-dir", "examples/sites"); code != 0 {
		t.Fatal(e)
	}
	site := filepath.Join(dir, "examples/sites/bank1.yaml")
	b, _ := os.ReadFile(site)
	broken := strings.Replace(string(b), "ip: 10.20.0.22", "ip: 10.20.9.22", 1)
	broken = strings.Replace(broken, "name: node1", "name: Node1", 1)
	os.WriteFile(site, []byte(broken), 0o644)
	code, out, errOut := runCLI(t, "seed", "--site", "bank1", "--sites-dir", "examples/sites", "--out", "out")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"examples/sites/bank1.yaml:", "vms[2].ip: 10.20.9.22 is outside network 10.20.0.0/24", `vms[1].name: "Node1" is not a valid lowercase DNS label`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Error("a rejected site still created the output folder")
	}
}

func TestSeedCheckAndOneVM(t *testing.T) {
	dir := exampleCopy(t)
	runCLI(t, "keygen", "--site", "bank1", "--sites-dir", "examples/sites")
	code, out, e := runCLI(t, "seed", "--site", "bank1", "--sites-dir", "examples/sites", "--out", "out", "--check")
	if code != 0 || strings.Count(out, "sha256:") != 3 {
		t.Fatalf("--check: exit %d\n%s%s", code, out, e)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Error("--check wrote output")
	}
	code, out, _ = runCLI(t, "seed", "--site", "bank1", "--sites-dir", "examples/sites", "--out", "out", "--vm", "node2")
	if code != 0 || !strings.HasPrefix(out, "node2 ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("--vm node2: exit %d, output %q", code, out)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "out", "bank1"))
	if len(entries) != 1 || entries[0].Name() != "node2.iso" {
		t.Errorf("--vm node2 wrote %v, want only node2.iso", entries)
	}
	code, _, e = runCLI(t, "seed", "--site", "bank1", "--sites-dir", "examples/sites", "--vm", "node9")
	if code != 2 || !strings.Contains(e, "its VMs are: gw1, node1, node2") {
		t.Errorf("unknown --vm: exit %d, %q", code, e)
	}
	code, _, e = runCLI(t, "seed", "--site", "nosuch", "--sites-dir", "examples/sites")
	if code != 1 || !strings.Contains(e, "examples/sites/nosuch.yaml: no such file") {
		t.Errorf("missing site: exit %d, %q", code, e)
	}
}

func TestHelpAndUsageErrors(t *testing.T) {
	for _, c := range commands() {
		code, out, _ := runCLI(t, c.name, "--help")
		if code != 0 || !strings.Contains(out, "Usage:\n  applbuild "+c.name) || !strings.Contains(out, "--log-format") {
			t.Errorf("%s --help: exit %d\n%s", c.name, code, out)
		}
	}
	if code, out, _ := runCLI(t, "--help"); code != 0 || !strings.Contains(out, "seed") {
		t.Errorf("--help: exit %d", code)
	}
	if code, _, e := runCLI(t, "sede"); code != 2 || !strings.Contains(e, `unknown command "sede"`) {
		t.Errorf("unknown command: exit %d %q", code, e)
	}
	if code, _, e := runCLI(t, "seed", "--site", "b", "--log-format", "xml"); code != 2 || !strings.Contains(e, "use text or json") {
		t.Errorf("bad log format: exit %d %q", code, e)
	}
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "applbuild ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestJSONLogs(t *testing.T) {
	exampleCopy(t)
	runCLI(t, "keygen", "--site", "bank1", "--sites-dir", "examples/sites")
	code, _, e := runCLI(t, "seed", "--site", "bank1", "--sites-dir", "examples/sites", "--check", "--log-level", "debug", "--log-format", "json")
	if code != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(e), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["level"] == "debug" {
			n++
		}
	}
	if n == 0 {
		t.Error("--log-level debug produced no debug lines")
	}
}

func TestCompletionScriptsParse(t *testing.T) {
	exampleCopy(t)
	_, script, _ := runCLI(t, "completion", "bash")
	cmd := exec.Command("bash", "-c", script+`
COMP_WORDS=(applbuild seed --sites-dir examples/sites --site b); COMP_CWORD=5; _applbuild; echo "sites:${COMPREPLY[*]}"
COMP_WORDS=(applbuild se); COMP_CWORD=1; _applbuild; echo "cmds:${COMPREPLY[*]}"`)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sites:bank1\n") || !strings.Contains(string(out), "cmds:seed\n") {
		t.Errorf("bash completion does not complete site and command names: %v\n%s", err, out)
	}
	for _, sh := range []string{"bash", "zsh"} {
		code, out, _ := runCLI(t, "completion", sh)
		if code != 0 || !strings.Contains(out, "complete -F _applbuild applbuild") || !strings.Contains(out, "--sites-dir") {
			t.Fatalf("completion %s: exit %d", sh, code)
		}
		if sh == "bash" {
			cmd := exec.Command("bash", "-n")
			cmd.Stdin = strings.NewReader(out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("bash -n rejects the completion script: %v\n%s", err, b)
			}
		}
	}
}
