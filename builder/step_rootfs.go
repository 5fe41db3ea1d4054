package builder

import (
	"context"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/applbuild/applbuild/builder/rootfs"
)

// stepRootfs builds the role's root file system with mmdebstrap, or takes
// it from the cache when its inputs (sources, pins, packages, mmdebstrap
// version) are unchanged.
//
// Uses: config. Puts: tarball, spec_hash.
type stepRootfs struct{}

func (stepRootfs) Run(ctx context.Context, st multistep.StateBag) multistep.StepAction {
	c := st.Get(stateConfig).(*Config)
	spec, err := rootfs.FromRole(c.role, "")
	if err != nil {
		return halt(st, "rootfs: %v", err)
	}
	ms, err := rootfs.ParseMirrors(c.Mirror)
	if err != nil {
		return halt(st, "mirror: %v", err)
	}
	if len(ms) == 0 {
		if ms, err = rootfs.MirrorsFromEnv(); err != nil {
			return halt(st, "%v", err)
		}
	}
	spec = spec.WithMirrors(ms)
	hash, err := spec.Hash()
	if err != nil {
		return halt(st, "rootfs: %v", err)
	}
	tar, err := rootfs.Build(ctx, spec, c.CacheDir)
	if err != nil {
		return halt(st, "rootfs: %v", err)
	}
	st.Put(stateTarball, tar)
	st.Put(stateSpecHash, hash)
	return multistep.ActionContinue
}

func (stepRootfs) Cleanup(multistep.StateBag) {}
