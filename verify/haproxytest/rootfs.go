// Package haproxytest runs the gateway's HAProxy 3.2 in tests: from the
// gateway role's "test" tree (built with mmdebstrap, cached), in a chroot
// that shares the host's network, so a test can listen on 127.0.0.1 and
// talk to it. HAProxy 3.2 cannot run on the Debian 12 build host itself.
//
// A test reads like this:
//
//	root := haproxytest.Rootfs(t)
//	port := haproxytest.FreePort(t)
//	inst := haproxytest.Start(t, root, fmt.Sprintf(`
//	global
//	    log stdout format raw local0
//	    tune.lua.bool-sample-conversion normal
//	    lua-load ja4.lua
//	defaults
//	    mode http
//	    log global
//	    timeout client 5s
//	    timeout server 5s
//	    timeout connect 2s
//	frontend web
//	    bind 127.0.0.1:%d
//	    http-request return status 200 string ok
//	`, port), map[string][]byte{"ja4.lua": lua})
//	// ... send requests to 127.0.0.1:port ...
//	inst.WaitLog(`GET /`, 5*time.Second)
//
// Files given to Start sit in the instance directory, haproxy's working
// directory, so the config names them relatively. Sockets need absolute
// paths: "${HATEST_DIR}/name.sock", reached from the host at
// inst.SocketPath("name.sock"). Every instance also has an admin stats
// socket (StatsSocket, StatsCommand) and the master CLI (MasterCommand,
// Reload).
package haproxytest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder/rootfs"
	"github.com/applbuild/applbuild/roles"
	"github.com/applbuild/applbuild/verify/testenv"
)

// Profile is the gateway role profile the harness's tree is built from.
const Profile = "test"

// buildTimeout bounds a cold build; a warm one takes milliseconds.
const buildTimeout = 8 * time.Minute

var tree struct {
	sync.Once
	root string
	err  error
}

// Rootfs returns the root of the gateway test tree, building and extracting
// it on first use (cached under $APPLBUILD_CACHE, see builder/rootfs). The
// work is done once per test binary; test binaries running at the same time
// wait on the cache's file lock instead of building twice. It skips (fails
// under APPLBUILD_REQUIRE_TOOLS=1) without root, mmdebstrap or tar.
func Rootfs(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "mmdebstrap")
	testenv.RequireTool(t, "tar")
	tree.Do(func() { tree.root, tree.err = buildTree() })
	if tree.err != nil {
		t.Fatalf("gateway test tree: %v", tree.err)
	}
	return tree.root
}

func buildTree() (string, error) {
	r, err := roles.Load("gateway")
	if err != nil {
		return "", err
	}
	spec, err := rootfs.FromRole(r, Profile)
	if err != nil {
		return "", err
	}
	mirrors, err := rootfs.MirrorsFromEnv()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	tarball, err := rootfs.Build(ctx, spec.WithMirrors(mirrors), "")
	if err != nil {
		return "", fmt.Errorf("building (allowed %s): %w", buildTimeout, err)
	}
	return rootfs.Tree(ctx, tarball)
}
