package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	log "github.com/sirupsen/logrus"
)

// stderrTail is how much of a failing program's stderr goes into the error:
// enough for mke2fs or qemu-img to say what was wrong, not a whole log.
const stderrTail = 2048

// runProgram runs one external program. Every program below has its own thin
// wrapper around it so a reader can find each call site by program name.
// Environment entries in env are added to the inherited environment.
func runProgram(ctx context.Context, name string, env []string, args ...string) ([]byte, error) {
	log.WithField("program", name).Debugf("run: %s %s", name, strings.Join(quoteArgs(args), " "))
	cmd := exec.CommandContext(ctx, name, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// A killed program may leave children holding the pipes; do not wait
	// for them forever once the context is gone.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return stdout.Bytes(), fmt.Errorf("%s stopped: %w", name, ctxErr)
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, firstArgs(args), err, tail(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > stderrTail {
		b = append([]byte("..."), b[len(b)-stderrTail:]...)
	}
	if len(b) == 0 {
		return "(no stderr output)"
	}
	return string(b)
}

// firstArgs keeps error messages readable when a program was given many
// arguments; the full command line is in the debug log.
func firstArgs(args []string) string {
	const n = 6
	if len(args) <= n {
		return strings.Join(quoteArgs(args), " ")
	}
	return strings.Join(quoteArgs(args[:n]), " ") + " ..."
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$") {
			out[i] = fmt.Sprintf("%q", a)
		} else {
			out[i] = a
		}
	}
	return out
}

// mkfsExt4 runs mkfs.ext4 (e2fsprogs).
func mkfsExt4(ctx context.Context, args ...string) error {
	_, err := runProgram(ctx, "mkfs.ext4", nil, args...)
	return err
}

// mkfsVfat runs mkfs.vfat (dosfstools).
func mkfsVfat(ctx context.Context, args ...string) error {
	_, err := runProgram(ctx, "mkfs.vfat", nil, args...)
	return err
}

// mtoolsEnv stops mtools from refusing a FAT whose geometry fields do not
// match a floppy's; an ESP inside a disk image never does.
var mtoolsEnv = []string{"MTOOLS_SKIP_CHECK=1"}

// mmd runs mtools' mmd.
func mmd(ctx context.Context, args ...string) error {
	_, err := runProgram(ctx, "mmd", mtoolsEnv, args...)
	return err
}

// mcopy runs mtools' mcopy.
func mcopy(ctx context.Context, args ...string) error {
	_, err := runProgram(ctx, "mcopy", mtoolsEnv, args...)
	return err
}

// sgdisk runs sgdisk (gdisk).
func sgdisk(ctx context.Context, args ...string) error {
	_, err := runProgram(ctx, "sgdisk", nil, args...)
	return err
}

// qemuImg runs qemu-img (qemu-utils).
func qemuImg(ctx context.Context, args ...string) ([]byte, error) {
	return runProgram(ctx, "qemu-img", nil, args...)
}
