package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/applbuild/applbuild/verify"
)

func verifyCommand() *command {
	var o verify.Options
	var keep bool
	return &command{
		name:    "verify",
		summary: "Boot an image with a seed ISO under QEMU and probe that it serves",
		usage:   "IMAGE --seed ISO [--accel auto|kvm|tcg] [--work-dir DIR]",
		long: `Boots IMAGE (qcow2, raw or vhdx; never modified) with OVMF and the seed ISO
as a CD-ROM, as a hypervisor would. QEMU's user network takes the shape of the
seed's site network, so the VM keeps its site address, and the VM's service
port is forwarded to 127.0.0.1 only. KVM is used when a guest really boots
with it, otherwise TCG. A kernel panic or hang is detected and retried a
bounded number of times. Then it probes: the agent's ready marker, the
hostname and failed units on the console, and
  gateway: the site's certificate on HTTPS and the first 200 through a
           backend (the seed's backends must be reachable from the VM: the
           site's gateway address is this host);
  node:    the first 200 of the health path through Traefik on the ingress
           port (the node's firewall must admit the site router's address,
           e.g. through a management network).

Examples:
  applbuild verify dist/images/gateway-*.qcow2 --seed dist/seeds/bank1/gw1.iso
  applbuild verify dist/images/node-*.qcow2 --seed dist/seeds/bank1/node1.iso --serve-timeout 10m`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&o.Seed, "seed", "", "the VM's seed ISO (required)")
			fs.StringVar(&o.Accel, "accel", "auto", "auto, kvm or tcg")
			fs.StringVar(&o.WorkDir, "work-dir", "", "keep the console log and overlay here")
			fs.DurationVar(&o.ServeTimeout, "serve-timeout", 0, "how long to wait for the first 200 (default 90s)")
			fs.BoolVar(&keep, "keep-running", false, "leave the VM running after the probes (stop with Ctrl-C)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 || o.Seed == "" {
				return usageError{"give one IMAGE and --seed ISO"}
			}
			o.Image = args[0]
			r, err := verify.Boot(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprint(e.stdout, r.String())
			if keep {
				fmt.Fprintf(e.stdout, "VM running; HTTPS on %s. Ctrl-C stops it.\n", r.HTTPS)
				<-ctx.Done()
			}
			r.VM.Stop()
			if !r.OK() {
				return errors.New("verification failed")
			}
			return nil
		},
	}
}
