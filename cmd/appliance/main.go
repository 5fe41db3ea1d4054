// Command appliance is the agent baked into every applbuild image. At first
// boot (and whenever run again) `appliance apply` renders the role's service
// configurations from the values cloud-init wrote to /etc/appliance,
// validates them, installs them atomically and reloads the services.
// `appliance hainfo` (also installed as `hainfo`) shows HAProxy's state.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/applbuild/applbuild/roles/gateway"
	"github.com/applbuild/applbuild/roles/gateway/hainfo"
	"github.com/applbuild/applbuild/roles/node"
	"github.com/applbuild/applbuild/roles/values"
)

var version = "dev"

// Markers on the console tell a person (and applbuild verify, which reads
// the serial console) how the first boot went.
const (
	ReadyMarker  = "APPLIANCE-READY"
	FailedMarker = "APPLIANCE-FAILED"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if filepath.Base(os.Args[0]) == "hainfo" {
		os.Exit(hainfo.Run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `appliance: the applbuild appliance agent

Usage:
  appliance apply [--values DIR]      render, validate and apply /etc/appliance
  appliance check [--addr HOST:PORT]  exit 0 when HAProxy completes a TLS request
  appliance hainfo [flags]            HAProxy server status (also installed as hainfo)
  appliance version
`)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	case "version":
		fmt.Fprintf(stdout, "appliance %s\n", version)
		return 0
	case "hainfo":
		return hainfo.Run(ctx, args[1:], stdout, stderr)
	case "check":
		return check(ctx, args[1:], stdout, stderr)
	case "apply":
		return apply(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "appliance: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func apply(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("appliance apply", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("values", values.Dir, "the values directory cloud-init wrote")
	console := fs.String("console", "/dev/console", "also print the ready/failed marker here (empty: stdout only)")
	wait := fs.Duration("wait", 60*time.Second, "how long to wait for the service to answer after applying")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := logrus.New()
	log.SetOutput(stderr)
	mark := func(format string, a ...any) {
		line := fmt.Sprintf(format, a...)
		fmt.Fprintln(stdout, line)
		if *console != "" {
			if f, err := os.OpenFile(*console, os.O_WRONLY|os.O_APPEND, 0); err == nil {
				fmt.Fprintln(f, line)
				f.Close()
			}
		}
	}
	site, err := values.LoadSite(*dir)
	if err != nil {
		mark("%s %v", FailedMarker, err)
		return 1
	}
	switch site.Role {
	case values.RoleGateway:
		opts := gateway.ApplyOptions{ValuesDir: *dir, Paths: gateway.AppliancePaths(), CheckCommand: "/usr/bin/appliance check", Host: systemHost{log: log}}
		res, err := gateway.Apply(ctx, opts)
		if err != nil {
			mark("%s role=gateway site=%s vm=%s: %v", FailedMarker, site.Site, site.VM, err)
			return 1
		}
		log.WithFields(logrus.Fields{"changed": res.Changed, "generation": res.Generation}).Info("applied")
		// After a reboot nothing changed and nothing was reloaded: make
		// sure the services run.
		if err := (systemHost{log: log}).ensureRunning(ctx, site.Gateway.Pair != nil); err != nil {
			mark("%s role=gateway site=%s vm=%s: %v", FailedMarker, site.Site, site.VM, err)
			return 1
		}
		deadline := time.Now().Add(*wait)
		for {
			err = serving(ctx, "127.0.0.1:443", 2*time.Second)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			mark("%s role=gateway site=%s vm=%s: HAProxy does not answer on 127.0.0.1:443: %v", FailedMarker, site.Site, site.VM, err)
			return 1
		}
		mark("%s role=gateway site=%s vm=%s machine-id=%s", ReadyMarker, site.Site, site.VM, machineID())
		return 0
	case values.RoleNode:
		res, err := node.Apply(ctx, node.ApplyOptions{ValuesDir: *dir, Host: node.SystemHost{Log: log}})
		if err != nil {
			mark("%s role=node site=%s vm=%s: %v", FailedMarker, site.Site, site.VM, err)
			return 1
		}
		log.WithFields(logrus.Fields{"changed": res.Changed, "generation": res.Generation}).Info("applied")
		// Pods start after the manifests are applied; on a first boot
		// that includes MicroK8s's own add-ons, so allow minutes.
		w := *wait
		if w < 10*time.Minute {
			w = 10 * time.Minute
		}
		if err := node.Ready(ctx, site, w); err != nil {
			mark("%s role=node site=%s vm=%s: %v", FailedMarker, site.Site, site.VM, err)
			return 1
		}
		mark("%s role=node site=%s vm=%s machine-id=%s", ReadyMarker, site.Site, site.VM, machineID())
		return 0
	default:
		mark("%s role=%s site=%s vm=%s: this agent cannot apply role %s", FailedMarker, site.Role, site.Site, site.VM, site.Role)
		return 1
	}
}

func check(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("appliance check", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:443", "HAProxy's TLS listener")
	timeout := fs.Duration("timeout", 900*time.Millisecond, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serving(ctx, *addr, *timeout); err != nil {
		fmt.Fprintf(stderr, "appliance check: %v\n", err)
		return 1
	}
	return 0
}

// serving completes a TLS handshake with addr and reads an HTTP status line:
// the whole path through HAProxy, JA4 included, works. The certificate is
// not verified: this checks the service, not the site's PKI.
func serving(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf), "HTTP/1.") {
		return fmt.Errorf("not an HTTP answer: %q", buf)
	}
	return nil
}

// machineID is this boot's identity, printed with the ready marker so a
// console log tells clones apart.
func machineID() string {
	b, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// systemHost runs the real programs of the appliance.
type systemHost struct{ log *logrus.Logger }

func (h systemHost) run(ctx context.Context, name string, args ...string) error {
	h.log.Debugf("run: %s %s", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, tail(out))
	}
	return nil
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if lines := strings.Split(s, "\n"); len(lines) > 20 {
		s = strings.Join(lines[len(lines)-20:], "\n")
	}
	return s
}

func (h systemHost) CheckHAProxy(ctx context.Context, cfg string) error {
	return h.run(ctx, "haproxy", "-c", "-q", "-f", cfg)
}

func (h systemHost) CheckNftables(ctx context.Context, file string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil
	}
	return h.run(ctx, "nft", "-c", "-f", file)
}

func (h systemHost) CheckKeepalived(ctx context.Context, file string) error {
	return h.run(ctx, "keepalived", "--config-test", "-f", file)
}

// ensureRunning loads the firewall and starts the services of the current
// generation; both are no-ops when they already run.
func (h systemHost) ensureRunning(ctx context.Context, pair bool) error {
	if err := h.run(ctx, "nft", "-f", filepath.Join(gateway.GenerationsDir, "current", "nftables.conf")); err != nil {
		return err
	}
	units := []string{"haproxy.service"}
	if pair {
		units = append(units, "keepalived.service")
	}
	return h.run(ctx, "systemctl", append([]string{"start"}, units...)...)
}

func (h systemHost) Reload(ctx context.Context, pair bool) error {
	var errs []error
	if err := h.run(ctx, "nft", "-f", filepath.Join(gateway.GenerationsDir, "current", "nftables.conf")); err != nil {
		errs = append(errs, err)
	}
	if err := h.run(ctx, "systemctl", "reload-or-restart", "haproxy.service"); err != nil {
		errs = append(errs, err)
	}
	if pair {
		if err := h.run(ctx, "systemctl", "reload-or-restart", "keepalived.service"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
