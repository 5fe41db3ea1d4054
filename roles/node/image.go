package node

import (
	"embed"
	"io/fs"

	"github.com/applbuild/applbuild/roles"
)

//go:embed all:image
var imageFiles embed.FS

//go:embed artifacts.lock
var lockFile []byte

// GenerationsDir holds the node's rendered configurations; the image links
// /etc/nftables.conf and /etc/microk8s.yaml into <dir>/current/.
const GenerationsDir = "/var/lib/appliance/node"

// LockFile returns roles/node/artifacts.lock as embedded in the binary.
func LockFile() []byte { return append([]byte(nil), lockFile...) }

// Image returns what the image builder adds to the node's root file
// system after the packages: the agent's unit, sysctl tuning, hardening
// and the links from the launch configuration's and the firewall's paths
// into the agent's current generation. The snaps, images, the Traefik
// chart and the lock are installed beside it from the artifact cache
// (builder/artifacts.Install); MicroK8s itself is not installed in the
// image.
func Image() roles.Image {
	tree, _ := fs.Sub(imageFiles, "image")
	return roles.Image{
		Files: tree,
		Symlinks: map[string]string{
			"/etc/microk8s.yaml": GenerationsDir + "/current/" + LaunchConfigFile,
			"/etc/nftables.conf": GenerationsDir + "/current/" + NftablesFile,
		},
		Enable: []string{"appliance-apply.service"},
		// The agent loads the firewall once it has rendered one.
		Disable: []string{"nftables.service"},
	}
}
