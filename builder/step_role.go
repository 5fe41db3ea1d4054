package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/builder/artifacts"
	"github.com/applbuild/applbuild/roles"
	"github.com/applbuild/applbuild/roles/gateway"
	"github.com/applbuild/applbuild/roles/node"
)

// AgentPath is where the agent lives in every image; hainfo links to it.
const AgentPath = "/usr/bin/appliance"

// roleImage returns what a role adds to its tree.
func roleImage(name string) (roles.Image, error) {
	switch name {
	case "gateway":
		return gateway.Image(), nil
	case "node":
		return node.Image(), nil
	}
	return roles.Image{}, fmt.Errorf("role %q has no image definition", name)
}

// stepRole installs the static appliance agent and the role's files,
// links and units into the tree, so the first boot runs: cloud-init writes
// /etc/appliance, the agent renders and validates, the services start.
//
// Uses: config, tree. Puts: role_hash (roleInputsHash: everything it
// installs, and the builder itself).
type stepRole struct{}

func (stepRole) Run(ctx context.Context, st multistep.StateBag) multistep.StepAction {
	c := st.Get(stateConfig).(*Config)
	tree := st.Get(stateTree).(string)
	img, err := roleImage(c.Role)
	if err != nil {
		return halt(st, "%v", err)
	}
	agent, err := os.ReadFile(c.AgentPath)
	if err != nil {
		return halt(st, "reading the agent: %v", err)
	}
	files := []roles.File{{Path: AgentPath, Mode: 0o755, Data: agent}}
	base := roles.BaseImage()
	// The base first, so that a role's file of the same path wins.
	for _, tree := range []fs.FS{base.Files, img.Files} {
		fsFiles, err := treeFiles(tree)
		if err != nil {
			return halt(st, "role files: %v", err)
		}
		files = append(files, fsFiles...)
	}
	files = append(files, img.Extra...)
	for _, f := range files {
		if err := writeInTree(tree, f); err != nil {
			return halt(st, "installing %s: %v", f.Path, err)
		}
	}
	links := make([]string, 0, len(img.Symlinks))
	for l := range img.Symlinks {
		links = append(links, l)
	}
	sort.Strings(links)
	links = append(links, "/usr/bin/hainfo")
	for _, l := range links {
		target := img.Symlinks[l]
		if l == "/usr/bin/hainfo" {
			target = "appliance"
		}
		p := filepath.Join(tree, l)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			return halt(st, "linking %s: %v", l, err)
		}
	}
	if c.artifacts != nil {
		// Snaps, assertions and container images, verified by digest.
		if err := artifacts.Install(c.artCache, c.artifacts, tree); err != nil {
			return halt(st, "installing the role's artifacts: %v", err)
		}
	}
	log := st.Get(stateLog).(logrus.FieldLogger)
	if len(img.Enable) > 0 {
		if err := systemctlRoot(ctx, log, tree, append([]string{"enable"}, img.Enable...)...); err != nil {
			return halt(st, "%v", err)
		}
	}
	if len(img.Disable) > 0 {
		if err := systemctlRoot(ctx, log, tree, append([]string{"disable"}, img.Disable...)...); err != nil {
			return halt(st, "%v", err)
		}
	}
	if mask := append(append([]string(nil), base.Mask...), img.Mask...); len(mask) > 0 {
		if err := systemctlRoot(ctx, log, tree, append([]string{"mask"}, mask...)...); err != nil {
			return halt(st, "%v", err)
		}
	}
	// One definition of the role's inputs, shared with the up-to-date
	// check, so the two cannot disagree.
	hash, err := roleInputsHash(c)
	if err != nil {
		return halt(st, "%v", err)
	}
	st.Put(stateRoleHash, hash)
	return multistep.ActionContinue
}

func (stepRole) Cleanup(multistep.StateBag) {}

// treeFiles lists the regular files of an image tree as files to install
// (mode 0644; Image.Extra carries other modes).
func treeFiles(tree fs.FS) ([]roles.File, error) {
	var files []roles.File
	err := fs.WalkDir(tree, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(tree, p)
		if err != nil {
			return err
		}
		files = append(files, roles.File{Path: "/" + p, Mode: 0o644, Data: b})
		return nil
	})
	return files, err
}

// writeInTree writes f under tree, refusing paths that leave it.
func writeInTree(tree string, f roles.File) error {
	clean := filepath.Clean("/" + f.Path)
	if clean != "/"+strings.TrimPrefix(f.Path, "/") {
		return fmt.Errorf("path %q is not clean", f.Path)
	}
	p := filepath.Join(tree, clean)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	os.Remove(p)
	return os.WriteFile(p, f.Data, f.Mode)
}

// systemctlRoot runs `systemctl --root=tree ...`, which enables and
// disables units by editing links, without a running systemd.
func systemctlRoot(ctx context.Context, log logrus.FieldLogger, tree string, args ...string) error {
	argv := append([]string{"--root=" + tree, "--quiet"}, args...)
	log.Debugf("run: systemctl %s", strings.Join(argv, " "))
	cmd := exec.CommandContext(ctx, "systemctl", argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("systemctl %s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
