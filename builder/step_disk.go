package builder

import (
	"context"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/applbuild/applbuild/images"
)

// stepDisk writes the tree as a bootable UEFI GPT disk (ESP with shim and
// GRUB, ext4 root) without loop devices or mounts.
//
// Uses: config, work_dir, tree. Puts: disk.
type stepDisk struct{}

func (stepDisk) Run(ctx context.Context, st multistep.StateBag) multistep.StepAction {
	c := st.Get(stateConfig).(*Config)
	out := filepath.Join(st.Get(stateWorkDir).(string), "disk.raw")
	if _, err := images.Assemble(ctx, images.AssembleOptions{RootTree: st.Get(stateTree).(string), Out: out, Size: c.diskSize}); err != nil {
		return halt(st, "disk: %v", err)
	}
	st.Put(stateDisk, out)
	return multistep.ActionContinue
}

func (stepDisk) Cleanup(st multistep.StateBag) {
	c := st.Get(stateConfig).(*Config)
	if d, ok := st.GetOk(stateDisk); ok && !c.KeepWorkDir {
		os.Remove(d.(string))
	}
}
