package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/applbuild/applbuild/seeds"
)

type siteFlags struct {
	site     string
	sitesDir string
}

func (f *siteFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.site, "site", "", "site name; reads <sites-dir>/<site>.yaml (required)")
	fs.StringVar(&f.sitesDir, "sites-dir", "sites", "folder holding the site files")
}

func (f *siteFlags) path() (string, error) {
	if f.site == "" {
		return "", usageError{"--site is required, e.g. --site bank1"}
	}
	if strings.ContainsAny(f.site, `/\`) || strings.HasSuffix(f.site, ".yaml") {
		return "", usageError{fmt.Sprintf("--site takes a site name such as bank1, not a path (%q); use --sites-dir for the folder", f.site)}
	}
	return filepath.Join(f.sitesDir, f.site+".yaml"), nil
}

func seedCommand() *command {
	var sf siteFlags
	var out, vm string
	var check bool
	return &command{
		name:    "seed",
		summary: "Write one cloud-init seed ISO per VM of a site",
		usage:   "--site NAME [--sites-dir DIR] [--out DIR] [--vm NAME] [--check]",
		long: `Reads <sites-dir>/<site>.yaml (see docs/site-file.md), validates it and the
certificate, key and secrets files it names, and writes <out>/<site>/<vm>.iso
for each VM: a NoCloud seed labelled cidata, mode 0600, in a 0700 folder.
Nothing is written unless the whole site is valid.

Examples:
  applbuild seed --site bank1
  applbuild seed --site bank1 --sites-dir examples/sites --out /tmp/seeds
  applbuild seed --site bank1 --vm gw1
  applbuild seed --site bank1 --check`,
		flags: func(fs *pflag.FlagSet) {
			sf.register(fs)
			fs.StringVar(&out, "out", "dist/seeds", "output folder; ISOs go to <out>/<site>/<vm>.iso")
			fs.StringVar(&vm, "vm", "", "write only this VM's seed")
			fs.BoolVar(&check, "check", false, "validate the site and render the seeds, but write nothing")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Sprintf("unexpected argument %q", args[0])}
			}
			path, err := sf.path()
			if err != nil {
				return err
			}
			e.log.WithField("file", path).Debug("loading site")
			site, err := seeds.Load(path, seeds.LoadOptions{})
			if err != nil {
				return err
			}
			vms := site.VMs
			if vm != "" {
				one, ok := site.VM(vm)
				if !ok {
					var names []string
					for _, v := range site.VMs {
						names = append(names, v.Name)
					}
					return usageError{fmt.Sprintf("--vm %q is not a VM of site %s; its VMs are: %s", vm, site.Name, strings.Join(names, ", "))}
				}
				vms = []seeds.VM{one}
			}
			// Render every seed before writing any, so a failure leaves nothing.
			var rendered []*seeds.Seed
			for _, v := range vms {
				sd, err := seeds.Render(site, v)
				if err != nil {
					return fmt.Errorf("%s: rendering %s: %w", path, v.Name, err)
				}
				rendered = append(rendered, sd)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			for _, sd := range rendered {
				dest := filepath.Join(out, site.Name, sd.VM.Name+".iso")
				var img []byte
				if check {
					img, err = sd.ISO()
					dest = "(not written: --check)"
				} else {
					img, err = sd.WriteISO(dest)
				}
				if err != nil {
					return fmt.Errorf("writing %s: %w", dest, err)
				}
				sum := sha256.Sum256(img)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\tsha256:%s\n", sd.VM.Name, sd.VM.Role, sd.VM.IP, dest, hex.EncodeToString(sum[:]))
				e.log.WithFields(map[string]any{"vm": sd.VM.Name, "instance_id": sd.InstanceID, "bytes": len(img)}).Debug("seed rendered")
			}
			return tw.Flush()
		},
	}
}
