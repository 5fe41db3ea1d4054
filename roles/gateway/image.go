package gateway

import (
	"embed"
	"io/fs"

	"github.com/applbuild/applbuild/roles"
	"github.com/applbuild/applbuild/roles/gateway/lua"
)

//go:embed all:image
var imageFiles embed.FS

// Image returns what the image builder adds to the gateway's root file
// system after the packages: the agent's units and drop-ins, hardening,
// the JA4 Lua module and default blocklist, and links from the services'
// configuration paths into the agent's current generation.
func Image() roles.Image {
	tree, _ := fs.Sub(imageFiles, "image")
	luaSrc, _ := lua.Files.ReadFile("ja4.lua")
	return roles.Image{
		Files: tree,
		Extra: []roles.File{
			{Path: "/usr/share/appliance/lua/ja4.lua", Mode: 0o644, Data: luaSrc},
			{Path: "/usr/share/appliance/ja4-blocklist.default", Mode: 0o644, Data: DefaultBlocklist()},
		},
		Symlinks: map[string]string{
			"/etc/haproxy/haproxy.cfg":        GenerationsDir + "/current/haproxy.cfg",
			"/etc/keepalived/keepalived.conf": GenerationsDir + "/current/keepalived.conf",
			"/etc/nftables.conf":              GenerationsDir + "/current/nftables.conf",
		},
		Enable: []string{"appliance-apply.service"},
		// The agent starts these once it has a configuration.
		Disable: []string{"haproxy.service", "keepalived.service", "nftables.service"},
	}
}
