package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/applbuild/applbuild/builder/rootfs"
	"github.com/applbuild/applbuild/images"
	"github.com/applbuild/applbuild/seeds"
)

// Output is one exported image file.
type Output struct {
	Format string `json:"format"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes a built image: what went in and what came out.
type Manifest struct {
	Role        string            `json:"role"`
	Version     string            `json:"version"`
	BaseSuite   string            `json:"base_suite"`
	Built       string            `json:"built"`
	Builder     string            `json:"builder"`
	VirtualSize int64             `json:"virtual_size"`
	Inputs      map[string]string `json:"inputs"`
	Packages    []rootfs.Package  `json:"packages"`
	Outputs     []Output          `json:"outputs"`
}

// stepExport converts the raw disk to each requested format in the output
// folder, each written to a temporary sibling and renamed, then writes the
// manifest the same way. A build stopped at any point leaves no partial
// file under an output name.
//
// Uses: config, disk, tarball, spec_hash, role_hash. Puts: outputs, manifest.
type stepExport struct{}

func (stepExport) Run(ctx context.Context, st multistep.StateBag) multistep.StepAction {
	c := st.Get(stateConfig).(*Config)
	raw := st.Get(stateDisk).(string)
	if err := os.MkdirAll(c.OutputDir, 0o755); err != nil {
		return halt(st, "%v", err)
	}
	specHash, roleHash := st.Get(stateSpecHash).(string), st.Get(stateRoleHash).(string)
	version := c.Version
	if version == "" {
		version = time.Now().UTC().Format("20060102") + "-" + shortHash(specHash+roleHash)
	}
	var outs []Output
	for _, f := range c.formats {
		dest := filepath.Join(c.OutputDir, fmt.Sprintf("%s-%s.%s", c.Role, version, f))
		var err error
		if f == "raw" {
			err = copySparse(ctx, raw, dest)
		} else {
			err = images.Convert(ctx, raw, images.Format(f), dest)
		}
		if err != nil {
			return halt(st, "export %s: %v", f, err)
		}
		sum, err := images.Sum(dest)
		if err != nil {
			return halt(st, "%v", err)
		}
		outs = append(outs, Output{Format: f, Path: dest, Size: sum.Size, SHA256: sum.SHA256})
	}
	pkgs, err := rootfs.ReadPackages(st.Get(stateTarball).(string))
	if err != nil {
		return halt(st, "package list: %v", err)
	}
	m := Manifest{
		Role: c.Role, Version: version, BaseSuite: c.role.Base.Suite,
		Built: time.Now().UTC().Format(time.RFC3339), Builder: "applbuild " + runtime.Version(),
		VirtualSize: c.diskSize,
		Inputs:      map[string]string{"rootfs": specHash, "role": roleHash},
		Packages:    pkgs, Outputs: outs,
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	mpath := filepath.Join(c.OutputDir, fmt.Sprintf("%s-%s.manifest.json", c.Role, version))
	if err := seeds.WriteFileAtomic(mpath, append(b, '\n'), 0o644); err != nil {
		return halt(st, "manifest: %v", err)
	}
	st.Put(stateOutputs, outs)
	st.Put(stateManifest, mpath)
	return multistep.ActionContinue
}

func (stepExport) Cleanup(multistep.StateBag) {}

// shortHash names a build by all its inputs (the root file system's and
// the role's hashes), so any input change gives a new name.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:10]
}

// copySparse copies a raw image keeping its holes, via a temporary sibling.
func copySparse(ctx context.Context, src, dest string) error {
	tmp := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp")
	out, err := exec.CommandContext(ctx, "cp", "--sparse=always", src, tmp).CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cp: %v: %s", err, strings.TrimSpace(string(out)))
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
