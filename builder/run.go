package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/builder/rootfs"
)

// Result is what a finished build produced.
type Result struct {
	Outputs  []Output
	Manifest string
}

// Steps returns the build's steps in order, each timed in the log.
func Steps() []multistep.Step {
	return []multistep.Step{
		timed{"rootfs", stepRootfs{}},
		timed{"tree", stepTree{}},
		timed{"role", stepRole{}},
		timed{"seal", stepSeal{}},
		timed{"disk", stepDisk{}},
		timed{"export", stepExport{}},
	}
}

// Run bakes the image described by c (already Prepared).
func Run(ctx context.Context, c *Config, log logrus.FieldLogger) (*Result, error) {
	cache := c.CacheDir
	if cache == "" {
		var err error
		if cache, err = rootfs.DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(cache, "work"), 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Join(cache, "work"), c.Role+"-")
	if err != nil {
		return nil, err
	}
	if !c.KeepWorkDir {
		defer os.RemoveAll(work)
	} else {
		log.WithField("work_dir", work).Info("keeping the work folder")
	}
	st := new(multistep.BasicStateBag)
	st.Put(stateConfig, c)
	st.Put(stateLog, log)
	st.Put(stateWorkDir, work)
	runner := &multistep.BasicRunner{Steps: Steps()}
	runner.Run(ctx, st)
	if err, ok := st.GetOk(stateError); ok {
		return nil, err.(error)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	outs, ok := st.GetOk(stateOutputs)
	if !ok {
		return nil, errors.New("the build stopped before exporting")
	}
	return &Result{Outputs: outs.([]Output), Manifest: st.Get(stateManifest).(string)}, nil
}
