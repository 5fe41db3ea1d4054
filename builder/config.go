//go:generate go run github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc mapstructure-to-hcl2 -type Config

package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"

	"github.com/applbuild/applbuild/builder/artifacts"
	"github.com/applbuild/applbuild/builder/rootfs"
	"github.com/applbuild/applbuild/images"
	"github.com/applbuild/applbuild/roles"
)

// Config is one image build. The CLI fills it from flags, Packer from HCL.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Role to bake: gateway or node.
	Role string `mapstructure:"role" required:"true"`
	// OutputDir receives <role>-<version>.<format> and the manifest.
	// Default dist/images.
	OutputDir string `mapstructure:"output_directory"`
	// Formats to write: raw, qcow2, vhdx. Default qcow2 and vhdx.
	Formats []string `mapstructure:"formats"`
	// DiskSize is the virtual disk size, e.g. 8G; the root file system
	// grows to it at first boot. Default 8G.
	DiskSize string `mapstructure:"disk_size"`
	// CacheDir holds the root file system cache. Default
	// $APPLBUILD_CACHE or ~/.cache/applbuild.
	CacheDir string `mapstructure:"cache_dir"`
	// Mirror replaces the Debian archive URIs of the role file
	// (APPLBUILD_MIRROR syntax: a URI, or FROM=TO pairs).
	Mirror string `mapstructure:"mirror"`
	// Version names the outputs; default: the date and a hash of the
	// inputs, so the same inputs give the same name on the same day.
	Version string `mapstructure:"version"`
	// AgentPath is the static appliance agent to install. Default:
	// "appliance" beside the running executable.
	AgentPath string `mapstructure:"agent_path"`
	// KeepWorkDir keeps the scratch folder (tree, raw disk) for debugging.
	KeepWorkDir bool `mapstructure:"keep_work_dir"`
	// Bundle is an offline artifact bundle (`applbuild fetch ROLE --bundle`)
	// for roles that need artifacts from outside Debian (node).
	Bundle string `mapstructure:"bundle"`
	// ArtifactsLock is a lock file that replaces the role's own
	// (roles/ROLE/artifacts.lock, embedded in the binary): for a site that
	// pins its own artifacts, and for builds from test artifacts.
	ArtifactsLock string `mapstructure:"artifacts_lock"`

	formats   []string
	diskSize  int64
	role      *roles.Role
	artifacts *artifacts.Lock
	artCache  *artifacts.Cache
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// Prepare fills defaults and validates, returning every problem at once.
func (c *Config) Prepare() error {
	var errs []string
	if c.Role == "" {
		errs = append(errs, fmt.Sprintf("role is required; one of %s", strings.Join(roles.Names(), ", ")))
	} else if r, err := roles.Load(c.Role); err != nil {
		errs = append(errs, err.Error())
	} else {
		c.role = r
	}
	if c.OutputDir == "" {
		c.OutputDir = filepath.Join("dist", "images")
	}
	if len(c.Formats) == 0 {
		c.Formats = []string{"qcow2", "vhdx"}
	}
	c.formats = nil
	seen := map[string]bool{}
	for _, f := range c.Formats {
		f = strings.ToLower(strings.TrimSpace(f))
		if f != "raw" {
			if _, err := images.ParseFormat(f); err != nil {
				errs = append(errs, fmt.Sprintf("formats: %q is not a format; use raw, qcow2 or vhdx", f))
				continue
			}
		}
		if !seen[f] {
			seen[f] = true
			c.formats = append(c.formats, f)
		}
	}
	if c.DiskSize == "" {
		c.DiskSize = "8G"
	}
	if n, err := parseDiskSize(c.DiskSize); err != nil {
		errs = append(errs, fmt.Sprintf("disk_size: %v", err))
	} else {
		c.diskSize = n
	}
	if c.Version != "" && !versionRE.MatchString(c.Version) {
		errs = append(errs, fmt.Sprintf("version %q: use letters, digits, '.', '_', '+' or '-' (at most 64)", c.Version))
	}
	if c.AgentPath == "" {
		if exe, err := os.Executable(); err == nil {
			c.AgentPath = filepath.Join(filepath.Dir(exe), "appliance")
		}
	}
	if fi, err := os.Stat(c.AgentPath); err != nil || fi.IsDir() {
		errs = append(errs, fmt.Sprintf("agent_path: the appliance agent %q is missing; build it with `make build` (bin/appliance) or pass its path", c.AgentPath))
	}
	// A role that needs artifacts from outside Debian fails here, before
	// any work, when they are not in the cache or the bundle.
	if c.role != nil && (artifacts.HasLock(c.Role) || c.ArtifactsLock != "") {
		cache := c.CacheDir
		if cache == "" {
			cache, _ = rootfs.DefaultCacheDir()
		}
		var (
			l   *artifacts.Lock
			ac  *artifacts.Cache
			err error
		)
		if c.ArtifactsLock != "" {
			l, ac, err = artifacts.PrepareLock(c.Role, c.ArtifactsLock, cache, c.Bundle)
		} else {
			l, ac, err = artifacts.Prepare(c.Role, cache, c.Bundle)
		}
		if err != nil && c.ArtifactsLock != "" {
			errs = append(errs, fmt.Sprintf("artifacts_lock %s: %v", c.ArtifactsLock, err))
		} else if err != nil {
			errs = append(errs, fmt.Sprintf("role %s needs its pinned artifacts (snaps, container images): %v; get them with `applbuild fetch %s` on a machine that reaches the snap store and registries, or pass --bundle FILE", c.Role, err, c.Role))
		} else {
			c.artifacts, c.artCache = l, ac
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("image configuration:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// parseDiskSize reads sizes like 8G, 512M, 20G (powers of 1024).
func parseDiskSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size; write it like 8G or 4096M", s)
	}
	if n*mult < 2<<30 || n*mult > 2<<40 {
		return 0, fmt.Errorf("%s is outside 2G..2T", s)
	}
	return n * mult, nil
}
