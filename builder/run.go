package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/builder/rootfs"
)

// Result is what a finished build produced.
type Result struct {
	Outputs  []Output
	Manifest string
}

// removeStaleWork deletes work folders left by builds that were killed:
// those whose lock nobody holds.
func removeStaleWork(dir string, log logrus.FieldLogger) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(filepath.Join(p, ".lock"))
		if err != nil {
			if os.IsNotExist(err) {
				// Created but not locked yet, or from an older build:
				// only remove it when it is clearly old.
				if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > time.Hour {
					os.RemoveAll(p)
				}
			}
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			log.WithField("work_dir", p).Info("removing the work folder of an interrupted build")
			os.RemoveAll(p)
		}
		f.Close()
	}
}

// Steps returns the build's steps in order, each timed in the log.
func Steps() []multistep.Step {
	return []multistep.Step{
		stepUptodate{},
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
	removeStaleWork(filepath.Join(cache, "work"), log)
	work, err := os.MkdirTemp(filepath.Join(cache, "work"), c.Role+"-")
	if err != nil {
		return nil, err
	}
	// The lock marks the folder as in use; a build that finds a work
	// folder it can lock knows its builder died and removes it.
	lock, err := os.OpenFile(filepath.Join(work, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
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
