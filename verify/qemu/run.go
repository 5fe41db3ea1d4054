package qemu

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	log "github.com/sirupsen/logrus"
)

const stderrTail = 2048

func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$") {
			out[i] = fmt.Sprintf("%q", a)
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
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

// qemuImg runs qemu-img (qemu-utils) to completion.
func qemuImg(ctx context.Context, args ...string) ([]byte, error) {
	log.WithField("program", "qemu-img").Debugf("run: qemu-img %s", quoteArgs(args))
	cmd := exec.CommandContext(ctx, "qemu-img", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("qemu-img stopped: %w", ctx.Err())
		}
		return nil, fmt.Errorf("qemu-img %s: %w: %s", args[0], err, tail(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// qemuSystemBinary is the emulator the harness runs.
const qemuSystemBinary = "qemu-system-x86_64"

// qemuProcess is a running qemu-system-x86_64. Its stdout and stderr are
// merged and delivered line by line on lines, because QEMU reports KVM
// failures there, not on the guest console; the last stderrTail bytes are
// kept for the error when it exits.
type qemuProcess struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{} // closed when the process has exited
	err   error         // exit status, valid after done

	mu   sync.Mutex
	tail []byte
}

// startQemuSystem starts qemu-system-x86_64 with args. It is the one place
// the emulator is started, and it logs the command line.
func startQemuSystem(args []string) (*qemuProcess, error) {
	log.WithField("program", qemuSystemBinary).Debugf("run: %s %s", qemuSystemBinary, quoteArgs(args))
	cmd := exec.Command(qemuSystemBinary, args...)
	// Its own process group, so stopping the VM never signals us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start %s: %w", qemuSystemBinary, err)
	}
	w.Close()
	p := &qemuProcess{cmd: cmd, lines: make(chan string, 256), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.tail = append(p.tail, line+"\n"...)
			if len(p.tail) > 4*stderrTail {
				p.tail = p.tail[len(p.tail)-stderrTail:]
			}
			p.mu.Unlock()
			select {
			case p.lines <- line:
			default: // nobody is reading fast enough; the tail keeps it
			}
		}
		io.Copy(io.Discard, r)
		r.Close()
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// output is the tail of what QEMU printed.
func (p *qemuProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return tail(p.tail)
}

// stop ends QEMU: SIGTERM lets it close its image files cleanly, SIGKILL
// follows if it does not exit within a few seconds.
func (p *qemuProcess) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
