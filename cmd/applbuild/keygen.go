package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/applbuild/applbuild/seeds"
)

func keygenCommand() *command {
	var sf siteFlags
	return &command{
		name:    "keygen",
		summary: "Create a site's missing secrets file and a self-signed gateway certificate",
		usage:   "--site NAME [--sites-dir DIR]",
		long: `Creates the files the site file names that do not exist yet, never
overwriting one: the secrets file with fresh random values (mode 0600), and a
self-signed certificate and key (mode 0600) for gateway.server_names. Use it to
start a new site or to try the shipped example; give production gateways a
certificate from your CA.

Example:
  applbuild keygen --site bank1 --sites-dir examples/sites`,
		flags: func(fs *pflag.FlagSet) { sf.register(fs) },
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Sprintf("unexpected argument %q", args[0])}
			}
			path, err := sf.path()
			if err != nil {
				return err
			}
			created, err := seeds.Keygen(path, time.Now())
			if err != nil {
				return err
			}
			if len(created) == 0 {
				fmt.Fprintf(e.stdout, "nothing to do: every file %s names exists\n", path)
			}
			for _, c := range created {
				fmt.Fprintf(e.stdout, "created %s: %s\n", c.Path, c.What)
			}
			return nil
		},
	}
}
