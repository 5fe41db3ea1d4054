// Command packer-plugin-applbuild serves applbuild's image builder to Packer,
// so `packer build` bakes the same images as `applbuild image`. In HCL the
// builder is the source type "applbuild-image". Install it with
// `make plugin`; docs/packer.md explains its use.
package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/hashicorp/packer-plugin-sdk/plugin"
	"github.com/hashicorp/packer-plugin-sdk/version"

	"github.com/applbuild/applbuild/builder"
)

// Packer installs a plugin under its semantic version, so these must form
// one; `make plugin` may override them with -X.
var (
	pluginVersion    = "0.1.0"
	pluginPrerelease = "dev"
)

func main() {
	closeInheritedFDs()
	pps := plugin.NewSet()
	pps.RegisterBuilder("image", new(builder.Builder))
	pps.SetVersion(version.NewPluginVersion(pluginVersion, pluginPrerelease, ""))
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// closeInheritedFDs marks the descriptors Packer handed this process (beyond
// stdin, stdout and stderr) close-on-exec. Go sets that flag on descriptors
// it opens itself, not on inherited ones, so without this every program the
// build runs would inherit them. mmdebstrap then gets descriptor numbers of
// 10 and more for its apt hooks, which /bin/sh (dash) cannot redirect to.
func closeInheritedFDs() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		syscall.CloseOnExec(fd)
	}
}
