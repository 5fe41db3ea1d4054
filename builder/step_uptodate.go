package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/builder/rootfs"
)

// stepUptodate ends the build early when the output folder already holds
// the image these inputs make: a manifest of the same role and version whose
// inputs (the root file system spec hash and the role hash) are the ones
// this build would record, for the same virtual disk size, with every
// requested format listed and every listed output present at its recorded
// size. It computes both hashes without unpacking the tree, so a rebuild
// with nothing changed costs seconds instead of the whole pipeline. Any
// difference, or anything it cannot read, lets the build run as usual.
//
// Uses: config, log. Puts: outputs, manifest (only when up to date, and
// then halts without an error).
type stepUptodate struct{}

func (stepUptodate) Run(ctx context.Context, st multistep.StateBag) multistep.StepAction {
	c := st.Get(stateConfig).(*Config)
	log := st.Get(stateLog).(logrus.FieldLogger).WithField("step", "uptodate")
	start := time.Now()
	m, mpath, why := existingBuild(c)
	if m == nil {
		log.WithField("reason", why).Debug("building")
		return multistep.ActionContinue
	}
	st.Put(stateOutputs, m.Outputs)
	st.Put(stateManifest, mpath)
	log.WithFields(logrus.Fields{"manifest": mpath, "elapsed": time.Since(start).Round(10 * time.Millisecond).String()}).
		Info("up to date: the outputs of these inputs exist; nothing to build")
	return multistep.ActionHalt
}

func (stepUptodate) Cleanup(multistep.StateBag) {}

// existingBuild returns the manifest of an existing build of exactly c's
// inputs and its path, or nil and why there is none.
func existingBuild(c *Config) (*Manifest, string, string) {
	specHash, err := rootfsSpecHash(c)
	if err != nil {
		return nil, "", fmt.Sprintf("rootfs inputs: %v", err)
	}
	roleHash, err := roleInputsHash(c)
	if err != nil {
		return nil, "", fmt.Sprintf("role inputs: %v", err)
	}
	version := c.Version
	if version == "" {
		// The same default stepExport gives, so an unnamed rebuild the
		// same day finds the manifest of the previous one.
		version = time.Now().UTC().Format("20060102") + "-" + shortHash(specHash+roleHash)
	}
	mpath := filepath.Join(c.OutputDir, fmt.Sprintf("%s-%s.manifest.json", c.Role, version))
	b, err := os.ReadFile(mpath)
	if err != nil {
		return nil, "", fmt.Sprintf("no manifest %s", mpath)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, "", fmt.Sprintf("manifest %s: %v", mpath, err)
	}
	switch {
	case m.Role != c.Role || m.Version != version:
		return nil, "", fmt.Sprintf("manifest %s is for %s %s", mpath, m.Role, m.Version)
	case m.Inputs["rootfs"] != specHash:
		return nil, "", "the root file system inputs changed"
	case m.Inputs["role"] != roleHash:
		return nil, "", "the role inputs changed"
	case m.VirtualSize != c.diskSize:
		return nil, "", fmt.Sprintf("the disk size changed from %d to %d bytes", m.VirtualSize, c.diskSize)
	}
	listed := map[string]bool{}
	for _, o := range m.Outputs {
		fi, err := os.Stat(o.Path)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != o.Size {
			return nil, "", fmt.Sprintf("output %s is missing or not %d bytes", o.Path, o.Size)
		}
		listed[o.Format] = true
	}
	for _, f := range c.formats {
		if !listed[f] {
			return nil, "", fmt.Sprintf("format %s was not built", f)
		}
	}
	return &m, mpath, ""
}

// rootfsSpecHash is the spec hash stepRootfs computes, without building.
func rootfsSpecHash(c *Config) (string, error) {
	spec, err := rootfs.FromRole(c.role, "")
	if err != nil {
		return "", err
	}
	ms, err := rootfs.ParseMirrors(c.Mirror)
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		if ms, err = rootfs.MirrorsFromEnv(); err != nil {
			return "", err
		}
	}
	return spec.WithMirrors(ms).Hash()
}

// roleInputsHash is the role hash stepRole records, computed from the same
// inputs in the same order without writing a tree. TestRoleInputsHashMatchesStepRole
// keeps the two in step.
func roleInputsHash(c *Config) (string, error) {
	img, err := roleImage(c.Role)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	// The builder itself is an input: a new applbuild may seal or lay out
	// the disk differently from the one that made an existing image.
	if exe, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(exe); err == nil {
			sum := sha256.Sum256(b)
			fmt.Fprintf(h, "builder %x\n", sum)
		}
	}
	agent, err := os.ReadFile(c.AgentPath)
	if err != nil {
		return "", fmt.Errorf("reading the agent: %w", err)
	}
	fmt.Fprintf(h, "agent %d\n", len(agent))
	h.Write(agent)
	err = fs.WalkDir(img.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(img.Files, p)
		if err != nil {
			return err
		}
		if "/"+p != AgentPath {
			fmt.Fprintf(h, "file %s %o %d\n", "/"+p, fs.FileMode(0o644), len(b))
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("role files: %w", err)
	}
	for _, f := range img.Extra {
		if f.Path != AgentPath {
			fmt.Fprintf(h, "file %s %o %d\n", f.Path, f.Mode, len(f.Data))
			h.Write(f.Data)
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
		fmt.Fprintf(h, "link %s %s\n", l, target)
	}
	fmt.Fprintf(h, "enable %v disable %v\n", img.Enable, img.Disable)
	if c.artifacts != nil {
		lock, _ := c.artifacts.Marshal()
		fmt.Fprintf(h, "artifacts %d\n", len(lock))
		h.Write(lock)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
