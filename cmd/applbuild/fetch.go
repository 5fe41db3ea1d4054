package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/applbuild/applbuild/builder/artifacts"
	"github.com/applbuild/applbuild/builder/rootfs"
	"github.com/applbuild/applbuild/seeds"
)

func fetchCommand() *command {
	var cacheDir, bundle, lockOut string
	var update bool
	return &command{
		name:    "fetch",
		summary: "Fetch a role's snaps, container images and charts by digest, or write an offline bundle",
		usage:   "ROLE [--bundle FILE] [--update [--lock FILE]] [--cache DIR]",
		long: `Resolves roles/ROLE/artifacts.lock into the content-addressed cache
(CACHE/artifacts/sha256/<digest>): snaps with their assertions via
'snap download', container images from their registries as OCI archives for
sideloading, chart archives over HTTPS. Every artifact is checked against the
digest the lock pins; nothing unpinned is fetched.

--bundle writes the cached artifacts and the lock into one tar for a build
host without network access: 'applbuild image ROLE --bundle FILE' reads it
and verifies every digest.

--update resolves each entry's source anew (snap channel, image tag, chart
URL), fetches it and writes the newly pinned lock to --lock for review.

Examples:
  applbuild fetch node
  applbuild fetch node --bundle node-artifacts.tar
  applbuild fetch node --update --lock roles/node/artifacts.lock`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&cacheDir, "cache", "", "cache folder (default $APPLBUILD_CACHE or ~/.cache/applbuild)")
			fs.StringVar(&bundle, "bundle", "", "also write an offline bundle to this file")
			fs.BoolVar(&update, "update", false, "resolve the sources anew and write the pinned lock")
			fs.StringVar(&lockOut, "lock", "", "with --update: where to write the lock (default roles/ROLE/artifacts.lock)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usageError{"give one role; roles with artifacts: node"}
			}
			role := args[0]
			l, err := artifacts.ForRole(role)
			if err != nil {
				return err
			}
			if cacheDir == "" {
				if cacheDir, err = rootfs.DefaultCacheDir(); err != nil {
					return err
				}
			}
			c := &artifacts.Cache{Dir: cacheDir}
			if err := os.MkdirAll(cacheDir, 0o755); err != nil {
				return err
			}
			f := &artifacts.Fetcher{Cache: c, Log: e.log}
			if update {
				if lockOut == "" {
					lockOut = artifacts.LockPath(role)
				}
				nl, err := f.Update(ctx, l)
				if err != nil {
					return err
				}
				data, err := nl.Marshal()
				if err != nil {
					return err
				}
				if err := seeds.WriteFileAtomic(lockOut, data, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "pinned %d artifacts in %s; review and commit it\n", len(nl.Artifacts), lockOut)
				l = nl
			} else if err := f.Fetch(ctx, l); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%d artifacts of %s verified in %s\n", len(l.Artifacts), role, filepath.Join(cacheDir, "artifacts"))
			if bundle != "" {
				if err := artifacts.WriteBundle(bundle, c, l); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "bundle %s\n", bundle)
			}
			return nil
		},
	}
}
