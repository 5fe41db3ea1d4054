package builder

import (
	"context"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/applbuild/applbuild/builder/rootfs"
)

// stepTree unpacks the cached root file system into this build's work
// folder, where the role and sealing steps change it. The cache stays
// untouched, so a rebuild after a role change starts from the same tree.
//
// Uses: work_dir, tarball. Puts: tree.
type stepTree struct{}

func (stepTree) Run(ctx context.Context, st multistep.StateBag) multistep.StepAction {
	dir := filepath.Join(st.Get(stateWorkDir).(string), "tree")
	if err := rootfs.Extract(ctx, st.Get(stateTarball).(string), dir); err != nil {
		return halt(st, "unpacking the root file system: %v", err)
	}
	st.Put(stateTree, dir)
	return multistep.ActionContinue
}

func (stepTree) Cleanup(st multistep.StateBag) {
	c := st.Get(stateConfig).(*Config)
	if dir, ok := st.GetOk(stateTree); ok && !c.KeepWorkDir {
		os.RemoveAll(dir.(string))
	}
}
