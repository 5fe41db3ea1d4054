// Command packer-plugin-applbuild serves applbuild's image builder to Packer,
// so `packer build` bakes the same images as `applbuild image`. In HCL the
// builder is the source type "applbuild-image". Install it with
// `make plugin`; docs/packer.md explains its use.
package main

import (
	"fmt"
	"os"

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
	pps := plugin.NewSet()
	pps.RegisterBuilder("image", new(builder.Builder))
	pps.SetVersion(version.NewPluginVersion(pluginVersion, pluginPrerelease, ""))
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
