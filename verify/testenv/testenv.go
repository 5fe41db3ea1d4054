// Package testenv holds the small helpers tests use to find the real programs
// they exercise. A test that needs a program calls RequireTool; on a developer
// machine without it the test is skipped with the reason, but when
// APPLBUILD_REQUIRE_TOOLS=1 (set by `make test` in CI) a missing program fails
// the test instead, so CI can never pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether missing tools must fail tests rather than skip them.
func Strict() bool { return os.Getenv("APPLBUILD_REQUIRE_TOOLS") == "1" }

// RequireTool returns the path of the named program, or skips (fails when
// Strict) the test if it is not installed.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "program "+name+" is not installed (see .ci/deps)")
	}
	return p
}

// RequireRoot skips (fails when Strict) the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "this test needs root (chroot, network namespaces)")
	}
}

// Short skips slow tests under `go test -short`; it never fails.
func Short(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode: " + why)
	}
}

func missing(t testing.TB, why string) {
	t.Helper()
	if Strict() {
		t.Fatalf("required by APPLBUILD_REQUIRE_TOOLS=1: %s", why)
	}
	t.Skip(why)
}
