package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/roles"
)

func imageCommand() *command {
	c := &builder.Config{}
	var formats string
	return &command{
		name:    "image",
		summary: "Bake a sealed appliance image (gateway or node)",
		usage:   "ROLE [--formats qcow2,vhdx,raw] [--out DIR] [--disk-size 8G] [--version V]",
		long: `Builds the role's root file system from the Debian archive (cached by its
inputs), installs the appliance agent and the role's files, seals the tree
(no machine id, host keys, cloud-init state, apt lists or passwords), writes a
UEFI GPT disk without loop devices or mounts, and exports it with a manifest.
Run as root. Outputs are written atomically: an interrupted build leaves none.

Examples:
  applbuild image gateway
  applbuild image gateway --formats raw,qcow2 --out /srv/images`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&formats, "formats", "qcow2,vhdx", "comma-separated output formats: raw, qcow2, vhdx")
			fs.StringVar(&c.OutputDir, "out", "dist/images", "output folder")
			fs.StringVar(&c.DiskSize, "disk-size", "8G", "virtual disk size; the root grows to it at first boot")
			fs.StringVar(&c.Version, "version", "", "version in the output names (default: date and input hash)")
			fs.StringVar(&c.CacheDir, "cache", "", "cache folder (default $APPLBUILD_CACHE or ~/.cache/applbuild)")
			fs.StringVar(&c.Mirror, "mirror", "", "Debian mirror replacing the role file's URIs (URI or FROM=TO,...)")
			fs.StringVar(&c.AgentPath, "agent", "", "the appliance agent binary (default: appliance beside applbuild)")
			fs.StringVar(&c.Bundle, "bundle", "", "offline artifact bundle for roles that need one (node): applbuild fetch node --bundle FILE")
			fs.StringVar(&c.ArtifactsLock, "artifacts-lock", "", "artifacts lock replacing the role's own (roles/ROLE/artifacts.lock); the bundle must match it")
			fs.BoolVar(&c.KeepWorkDir, "keep-work-dir", false, "keep the tree and raw disk for debugging (until the next build)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Sprintf("give one role: %s", strings.Join(roles.Names(), ", "))}
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("baking an image needs root: mmdebstrap installs packages with their owners, and the image keeps them (run with sudo)")
			}
			c.Role = args[0]
			c.Formats = strings.Split(formats, ",")
			if err := c.Prepare(); err != nil {
				return err
			}
			res, err := builder.Run(ctx, c, e.log)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			for _, o := range res.Outputs {
				fmt.Fprintf(tw, "%s\t%s\t%.1f MB\tsha256:%s\n", o.Format, o.Path, float64(o.Size)/1e6, o.SHA256)
			}
			fmt.Fprintf(tw, "manifest\t%s\t\t\n", res.Manifest)
			tw.Flush()
			fmt.Fprintf(e.stdout, "\n%s", builder.ImportInstructions(c.Role, res.Outputs))
			return nil
		},
	}
}
