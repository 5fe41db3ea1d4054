package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// GuestReport is one command's output from inside a booted guest.
type GuestReport struct {
	Command string `json:"command"`
	Output  string `json:"output"`
}

// guestCommands are what the boot analysis runs in the seeded guest once
// it serves: systemd's own account of the boot and cloud-init's per-stage
// and per-module times.
var guestCommands = []string{
	"systemd-analyze time",
	"systemd-analyze critical-chain --no-pager",
	"systemd-analyze blame --no-pager",
	"cloud-init analyze show",
}

// benchKey makes the SSH key the boot analysis logs in with; its public
// half goes into the bench site's authorized keys. The key lives in the
// work folder and never leaves this machine.
func benchKey(ctx context.Context, dir string, log logrus.FieldLogger) (private, public string, err error) {
	private = filepath.Join(dir, "bench_ed25519")
	os.Remove(private)
	os.Remove(private + ".pub")
	if _, err := runTool(ctx, log, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench@applbuild", "-f", private); err != nil {
		return "", "", err
	}
	pub, err := os.ReadFile(private + ".pub")
	if err != nil {
		return "", "", err
	}
	return private, strings.TrimSpace(string(pub)), nil
}

// analyseGuest logs in to the guest over the forwarded SSH port and runs
// guestCommands. systemd-analyze answers only once the boot has finished,
// so the first command is retried for up to wait.
func analyseGuest(ctx context.Context, addr, user, key string, wait time.Duration, log logrus.FieldLogger) ([]GuestReport, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ssh := func(cmd string) (string, error) {
		c, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return runTool(c, log, "ssh", "-i", key, "-p", port,
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", user+"@"+host, cmd)
	}
	deadline := time.Now().Add(wait)
	var out []GuestReport
	for i, cmd := range guestCommands {
		for {
			text, err := ssh(cmd)
			if err == nil {
				out = append(out, GuestReport{Command: cmd, Output: text})
				break
			}
			if i > 0 || time.Now().After(deadline) || ctx.Err() != nil {
				return out, fmt.Errorf("in the guest: %w", err)
			}
			time.Sleep(5 * time.Second)
		}
	}
	return out, nil
}

// runTool runs one external program, logging its command line, and
// returns its standard output; the error carries the tail of its
// standard error.
func runTool(ctx context.Context, log logrus.FieldLogger, name string, args ...string) (string, error) {
	log.Debugf("run: %s %s", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 400 {
			msg = msg[len(msg)-400:]
		}
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}
