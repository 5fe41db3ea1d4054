package haproxytest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// Paths inside the tree. Each instance gets its own directory under RunDir;
// haproxy runs with it as working directory, so a config names the files
// given to Start by relative paths ("lua-load ja4.lua", "crt site.pem").
// Sockets need absolute paths (HAProxy reads "x.sock" as host:port): use
// "${HATEST_DIR}/x.sock", HATEST_DIR being set to the directory.
const (
	// HAProxy is the program run from the tree.
	HAProxy = "/usr/sbin/haproxy"
	// RunDir holds the per-instance directories in the tree.
	RunDir = "/run/hatest"
	// ConfigFile is the name Start gives the test's configuration.
	ConfigFile = "haproxy.cfg"
	// DirEnv is the environment variable holding the instance directory.
	DirEnv = "HATEST_DIR"
)

// harnessConfig is loaded before the test's configuration: it adds the
// stats socket the harness uses to see which worker is serving. HAProxy
// merges repeated global sections.
const harnessConfig = `# added by haproxytest: the harness's view of the running worker
global
    stats socket "${HATEST_DIR}/hatest-stats.sock" mode 600 level admin
`

const (
	harnessConfigFile = "hatest.cfg"
	statsSocketFile   = "hatest-stats.sock"
	masterSocketFile  = "hatest-master.sock"
	startTimeout      = 15 * time.Second
	reloadTimeout     = 15 * time.Second
	stopTimeout       = 5 * time.Second
	cliTimeout        = 5 * time.Second
	outputTail        = 60
)

// command is the one way this package starts haproxy: chrooted into root,
// in dir (a path inside the tree), with HATEST_DIR set to dir, in its own
// process group. It logs the command line at debug level.
func command(root, dir string, args ...string) *exec.Cmd {
	logrus.WithFields(logrus.Fields{"root": root, "dir": dir}).Debugf("run: chroot %s %s %s", root, HAProxy, strings.Join(args, " "))
	cmd := exec.Command(HAProxy, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", DirEnv + "=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:  root,
		Setpgid: true,
		// A test binary killed by its timeout must not leave a master
		// holding ports; its workers follow the master.
		Pdeathsig: syscall.SIGKILL,
	}
	return cmd
}

// Check runs "haproxy -c" on cfgPath, a path inside the tree at root, from
// the config's directory. The error holds haproxy's own messages.
func Check(root, cfgPath string) error {
	if !path.IsAbs(cfgPath) {
		return fmt.Errorf("config path %q must be absolute inside the tree %s", cfgPath, root)
	}
	return check(root, path.Dir(cfgPath), cfgPath)
}

func check(root, dir string, cfgs ...string) error {
	args := []string{"-c"}
	for _, c := range cfgs {
		args = append(args, "-f", c)
	}
	cmd := command(root, dir, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("haproxy -c %s: %v:\n%s", strings.Join(cfgs, " "), err, lastLines(string(out), outputTail))
	}
	return nil
}

// Instance is one haproxy master with its workers, started by Start.
type Instance struct {
	t        testing.TB
	root     string
	dir      string // inside the tree
	hostDir  string
	shortDir string // short symlinked path, for socket path limits
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error

	mu      sync.Mutex
	lines   []string
	newLine chan struct{} // closed and replaced on every line
}

// Start writes cfg (as ConfigFile) and files (relative paths, e.g.
// "lua/ja4.lua") into a fresh directory in the tree, checks the
// configuration with "haproxy -c" (failing the test with haproxy's own
// messages), and runs haproxy in master-worker mode (-W -db) with a master
// CLI socket. It returns once a worker is serving, and stops haproxy and
// removes the directory when the test ends. Output on stdout and stderr
// (e.g. "log stdout format raw local0") is kept for Logs and WaitLog.
func Start(t testing.TB, root, cfg string, files map[string][]byte) *Instance {
	t.Helper()
	i, err := start(t, root, cfg, files)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func start(t testing.TB, root, cfg string, files map[string][]byte) (*Instance, error) {
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	dir := path.Join(RunDir, hex.EncodeToString(id))
	i := &Instance{
		t:       t,
		root:    root,
		dir:     dir,
		hostDir: filepath.Join(root, dir),
		exited:  make(chan struct{}),
		newLine: make(chan struct{}),
	}
	if err := os.MkdirAll(i.hostDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the instance directory: %w", err)
	}
	t.Cleanup(i.cleanup)
	// Unix socket paths are limited to 107 bytes and the tree lives deep in
	// the cache; a symlink from a short temporary directory keeps the
	// socket paths the host sees short.
	short, err := os.MkdirTemp("", "hatest")
	if err != nil {
		return nil, err
	}
	i.shortDir = short
	if err := os.Symlink(i.hostDir, filepath.Join(short, "d")); err != nil {
		return nil, err
	}
	for name, data := range files {
		if err := i.writeFile(name, data); err != nil {
			return nil, err
		}
	}
	if err := i.writeFile(ConfigFile, []byte(cfg)); err != nil {
		return nil, err
	}
	if err := i.writeFile(harnessConfigFile, []byte(harnessConfig)); err != nil {
		return nil, err
	}
	if err := check(root, dir, harnessConfigFile, ConfigFile); err != nil {
		return nil, fmt.Errorf("the configuration is invalid: %w", err)
	}

	i.cmd = command(root, dir, "-W", "-db", "-S", path.Join(dir, masterSocketFile), "-f", harnessConfigFile, "-f", ConfigFile)
	stdout, err := i.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := i.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := i.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting haproxy in %s: %w", root, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go i.collect(stdout, &readers)
	go i.collect(stderr, &readers)
	go func() {
		// Wait closes the pipes, so the readers must be done first.
		readers.Wait()
		i.waitErr = i.cmd.Wait()
		close(i.exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		if pid, err := i.serving(); err == nil && pid > 0 {
			return i, nil
		} else if time.Now().After(deadline) {
			return nil, fmt.Errorf("haproxy did not start serving within %s (%v); its output:\n%s", startTimeout, err, i.tail())
		}
		select {
		case <-i.exited:
			return nil, fmt.Errorf("haproxy exited while starting (%v); its output:\n%s", i.waitErr, i.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// serving returns the pid of the worker answering on the harness's stats
// socket once the master lists it as its current worker.
func (i *Instance) serving() (int, error) {
	info, err := i.StatsCommand("show info")
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^Pid: (\d+)$`).FindStringSubmatch(info)
	if m == nil {
		return 0, fmt.Errorf("show info has no Pid line: %q", firstLine(info))
	}
	pid, _ := strconv.Atoi(m[1])
	cur, err := i.Worker()
	if err != nil {
		return 0, err
	}
	if cur != pid {
		return 0, fmt.Errorf("stats socket answered from worker %d, master's current worker is %d", pid, cur)
	}
	return pid, nil
}

func (i *Instance) collect(r io.Reader, done *sync.WaitGroup) {
	defer done.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		i.mu.Lock()
		i.lines = append(i.lines, sc.Text())
		close(i.newLine)
		i.newLine = make(chan struct{})
		i.mu.Unlock()
	}
}

// writeFile writes a file into the instance directory; name is relative.
func (i *Instance) writeFile(name string, data []byte) error {
	clean := path.Clean(name)
	if path.IsAbs(name) || clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
		return fmt.Errorf("file name %q must be a relative path inside the instance directory, e.g. lua/ja4.lua", name)
	}
	host := filepath.Join(i.hostDir, filepath.FromSlash(clean))
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		return err
	}
	tmp := host + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, host)
}

// WriteFile replaces or adds a file in the instance directory, e.g. a
// changed ConfigFile before Reload. It fails the test on error.
func (i *Instance) WriteFile(name string, data []byte) {
	i.t.Helper()
	if err := i.writeFile(name, data); err != nil {
		i.t.Fatal(err)
	}
}

// Dir is the instance directory as haproxy sees it (inside the tree).
func (i *Instance) Dir() string { return i.dir }

// HostPath is where a file of the instance directory is on the host. Use
// SocketPath for sockets.
func (i *Instance) HostPath(name string) string {
	return filepath.Join(i.hostDir, filepath.FromSlash(name))
}

// SocketPath is a short host path for a socket the config created in the
// instance directory ("${HATEST_DIR}/name"), usable with net.Dial("unix").
func (i *Instance) SocketPath(name string) string {
	return filepath.Join(i.shortDir, "d", filepath.FromSlash(name))
}

// StatsSocket is the host path of an admin-level stats socket the harness
// adds to every configuration.
func (i *Instance) StatsSocket() string { return i.SocketPath(statsSocketFile) }

// MasterSocket is the host path of the master CLI socket.
func (i *Instance) MasterSocket() string { return i.SocketPath(masterSocketFile) }

// StatsCommand sends one command to the stats socket and returns the answer.
func (i *Instance) StatsCommand(cmd string) (string, error) {
	return cliCommand(i.StatsSocket(), cmd)
}

// MasterCommand sends one command to the master CLI and returns the answer.
func (i *Instance) MasterCommand(cmd string) (string, error) {
	return cliCommand(i.MasterSocket(), cmd)
}

// cliCommand speaks the non-interactive CLI protocol: one line in, the
// answer until the server closes.
func cliCommand(socket, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", socket, cliTimeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(cliTimeout))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", fmt.Errorf("%s: sending %q: %w", socket, cmd, err)
	}
	// The master CLI answers only once the client has finished sending.
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		return "", fmt.Errorf("%s: sending %q: %w", socket, cmd, err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return string(out), fmt.Errorf("%s: reading the answer to %q: %w", socket, cmd, err)
	}
	return string(out), nil
}

// Process is one line of the master's "show proc".
type Process struct {
	PID  int
	Type string // "master" or "worker"
	// Reloads counts the reloads since the process started: 0 for a worker
	// started by the last reload, more for older ones (still finishing
	// connections, or kept because later reloads failed).
	Reloads int
}

// Processes lists the master and its workers from "show proc".
func (i *Instance) Processes() ([]Process, error) {
	out, err := i.MasterCommand("show proc")
	if err != nil {
		return nil, err
	}
	var ps []Process
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		reloads, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		ps = append(ps, Process{PID: pid, Type: f[1], Reloads: reloads})
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("show proc lists no process: %q", out)
	}
	return ps, nil
}

// Worker is the pid (on the host) of the current worker, the newest one.
func (i *Instance) Worker() (int, error) {
	ps, err := i.Processes()
	if err != nil {
		return 0, err
	}
	// The newest worker has the fewest reloads: 0 after a successful reload,
	// more when reloads failed and it stayed.
	cur := Process{Reloads: -1}
	for _, p := range ps {
		if p.Type == "worker" && (cur.Reloads < 0 || p.Reloads < cur.Reloads) {
			cur = p
		}
	}
	if cur.Reloads < 0 {
		return 0, fmt.Errorf("the master lists no worker: %v", ps)
	}
	return cur.PID, nil
}

// Reload asks the master CLI to reload (the configuration files are read
// again) and waits until a new worker serves. A rejected configuration
// returns an error with haproxy's startup messages; the old worker goes on
// serving.
func (i *Instance) Reload() error {
	old, err := i.Worker()
	if err != nil {
		return fmt.Errorf("before reload: %w", err)
	}
	out, err := i.MasterCommand("reload")
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if strings.HasPrefix(out, "Success=0") {
		return fmt.Errorf("haproxy refused the reload:\n%s", strings.TrimSpace(out))
	}
	deadline := time.Now().Add(reloadTimeout)
	for {
		pid, err := i.serving()
		if err == nil && pid != old {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("worker %d still serves", old)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no new worker within %s after reload (%v); output:\n%s", reloadTimeout, err, i.tail())
		}
		select {
		case <-i.exited:
			return fmt.Errorf("haproxy exited during reload (%v); output:\n%s", i.waitErr, i.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill kills the master and its workers at once (SIGKILL to the process
// group), as a crash would, and waits for the master to be reaped.
func (i *Instance) Kill() {
	i.t.Helper()
	if i.cmd == nil || i.cmd.Process == nil {
		return
	}
	syscall.Kill(-i.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-i.exited:
	case <-time.After(stopTimeout):
		i.t.Errorf("haproxy master %d did not exit after SIGKILL", i.cmd.Process.Pid)
	}
}

// Exited is closed when the master has exited.
func (i *Instance) Exited() <-chan struct{} { return i.exited }

// Logs returns the lines haproxy wrote to stdout and stderr so far.
func (i *Instance) Logs() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.lines...)
}

// WaitLog waits until a line haproxy wrote, at any time since it started,
// matches the regular expression pattern, and returns it; it fails the test
// after timeout. Call it from the test's goroutine.
func (i *Instance) WaitLog(pattern string, timeout time.Duration) string {
	i.t.Helper()
	return i.WaitLogSince(0, pattern, timeout)
}

// WaitLogSince is WaitLog looking only at lines from index from on, e.g.
// len(Logs()) taken before the action whose log line is expected.
func (i *Instance) WaitLogSince(from int, pattern string, timeout time.Duration) string {
	i.t.Helper()
	line, err := i.waitLog(from, pattern, timeout)
	if err != nil {
		i.t.Fatal(err)
	}
	return line
}

func (i *Instance) waitLog(from int, pattern string, timeout time.Duration) (string, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return "", fmt.Errorf("log pattern: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		i.mu.Lock()
		lines, wake := i.lines, i.newLine
		i.mu.Unlock()
		for n := from; n < len(lines); n++ {
			if re.MatchString(lines[n]) {
				return lines[n], nil
			}
		}
		if from < len(lines) {
			from = len(lines)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return "", fmt.Errorf("no haproxy output line matched %q within %s; output:\n%s", pattern, timeout, i.tail())
		}
	}
}

// cleanup stops haproxy (SIGTERM to the master, then SIGKILL to the group),
// shows its output when the test failed, and removes the directories.
func (i *Instance) cleanup() {
	if i.cmd != nil && i.cmd.Process != nil {
		select {
		case <-i.exited:
		default:
			i.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-i.exited:
			case <-time.After(stopTimeout):
				syscall.Kill(-i.cmd.Process.Pid, syscall.SIGKILL)
				<-i.exited
			}
		}
		// Workers of a killed master exit on their own; make sure.
		syscall.Kill(-i.cmd.Process.Pid, syscall.SIGKILL)
	}
	if i.t.Failed() && len(i.Logs()) > 0 {
		i.t.Logf("haproxy output:\n%s", i.tail())
	}
	if i.shortDir != "" {
		os.RemoveAll(i.shortDir)
	}
	if err := os.RemoveAll(i.hostDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		i.t.Logf("removing %s: %v", i.hostDir, err)
	}
}

func (i *Instance) tail() string {
	return lastLines(strings.Join(i.Logs(), "\n"), outputTail)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
