// Package builder bakes an appliance image: one multistep step per file,
// run in order by Run (the applbuild CLI) or by the Packer builder in
// builder.go. Steps share values through the state bag under the keys
// below; each step's doc comment says what it reads and writes.
package builder

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/sirupsen/logrus"
)

// State bag keys.
const (
	stateConfig   = "config"    // *Config
	stateLog      = "log"       // logrus.FieldLogger
	stateWorkDir  = "work_dir"  // string: scratch folder of this build
	stateTarball  = "tarball"   // string: cached rootfs tarball
	stateSpecHash = "spec_hash" // string: hash of the rootfs inputs
	stateTree     = "tree"      // string: the root file system being prepared
	stateRoleHash = "role_hash" // string: hash of the role's files and agent
	stateDisk     = "disk"      // string: raw disk image in the work dir
	stateOutputs  = "outputs"   // []Output
	stateManifest = "manifest"  // string: manifest path
	stateError    = "error"     // error: why the build stopped
)

// timed wraps a step so the log shows each step's name and elapsed time.
type timed struct {
	name string
	step multistep.Step
}

func (t timed) Run(ctx context.Context, st multistep.StateBag) multistep.StepAction {
	log := st.Get(stateLog).(logrus.FieldLogger)
	start := time.Now()
	log.WithField("step", t.name).Info("started")
	action := t.step.Run(ctx, st)
	f := log.WithFields(logrus.Fields{"step": t.name, "elapsed": time.Since(start).Round(10 * time.Millisecond).String()})
	if action == multistep.ActionHalt {
		if err, ok := st.GetOk(stateError); ok {
			f.WithError(err.(error)).Error("failed")
		} else {
			f.Error("halted")
		}
	} else {
		f.Info("done")
	}
	return action
}

func (t timed) Cleanup(st multistep.StateBag) { t.step.Cleanup(st) }

// halt records err and stops the build.
func halt(st multistep.StateBag, format string, args ...any) multistep.StepAction {
	st.Put(stateError, fmt.Errorf(format, args...))
	return multistep.ActionHalt
}
