package main

import (
	"context"
	"fmt"
	"runtime"
)

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "Print the version of applbuild",
		run: func(ctx context.Context, e *env, args []string) error {
			fmt.Fprintf(e.stdout, "applbuild %s (commit %s, %s, %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
