package rootfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// stderrTail is how much of a failed program's stderr goes into its error.
const stderrTail = 4096

// tail keeps the last max bytes written to it.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	s := strings.TrimSpace(string(t.buf))
	if len(t.buf) >= t.max {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = "..." + s[i:]
		}
	}
	return s
}

// run is the one way this package starts a program: it logs the command
// line at debug level and, on failure, returns an error holding the tail of
// stderr. dir is the working directory ("" for the current one), env is
// added to this process's environment.
//
// The program gets its own process group, and a cancelled ctx kills the
// whole group: mmdebstrap defers SIGTERM until its build is finished, and
// its apt and dpkg children must stop with it.
func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	logrus.WithField("dir", dir).Debugf("run: %s%s %s", envPrefix(env), name, shellJoin(args))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout bytes.Buffer
	errTail := &tail{max: stderrTail}
	cmd.Stdout = &stdout
	cmd.Stderr = errTail
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w (%v)", name, ctx.Err(), err)
		}
		return nil, fmt.Errorf("%s %s: %v: %s", name, firstArgs(args), err, errTail)
	}
	return stdout.Bytes(), nil
}

func envPrefix(env []string) string {
	if len(env) == 0 {
		return ""
	}
	return shellJoin(env) + " "
}

// mmdebstrap runs mmdebstrap in dir with its temporary tree under tmp, so a
// killed build's leftovers are where the next build looks for them.
func mmdebstrap(ctx context.Context, dir, tmp string, args ...string) error {
	_, err := run(ctx, dir, []string{"TMPDIR=" + tmp}, "mmdebstrap", args...)
	return err
}

// tarExtract unpacks a tarball as it was made: numeric owners, modes,
// device nodes and extended attributes (file capabilities) kept.
func tarExtract(ctx context.Context, tarball, dir string) error {
	_, err := run(ctx, "", nil, "tar", "--numeric-owner", "--same-permissions", "--xattrs", "--xattrs-include=*", "-x", "-f", tarball, "-C", dir)
	return err
}

var versionOnce struct {
	sync.Once
	v   string
	err error
}

// mmdebstrapVersion is part of every hash: a new mmdebstrap may build a
// different tree from the same spec.
func mmdebstrapVersion() (string, error) {
	versionOnce.Do(func() {
		out, err := run(context.Background(), "", nil, "mmdebstrap", "--version")
		if err != nil {
			versionOnce.err = fmt.Errorf("finding the mmdebstrap version (is the mmdebstrap package installed?): %w", err)
			return
		}
		versionOnce.v = strings.TrimSpace(string(out))
	})
	return versionOnce.v, versionOnce.err
}

func firstArgs(args []string) string {
	if len(args) > 3 {
		return strings.Join(args[:3], " ") + " ..."
	}
	return strings.Join(args, " ")
}

// shellJoin quotes args so a logged command line can be pasted into a shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
