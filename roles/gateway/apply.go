package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/applbuild/applbuild/roles"
	"github.com/applbuild/applbuild/roles/values"
)

// GenerationsDir holds the gateway's rendered configurations; the image
// links /etc/haproxy/haproxy.cfg, /etc/keepalived/keepalived.conf and
// /etc/nftables.conf to <dir>/current/.
const GenerationsDir = "/var/lib/appliance/gateway"

// Host is what apply needs from the machine: running the validators and
// reloading the services. The agent uses real programs; tests substitute
// a chrooted HAProxy.
type Host interface {
	// CheckHAProxy runs `haproxy -c -f cfg`.
	CheckHAProxy(ctx context.Context, cfg string) error
	// CheckNftables runs `nft -c -f file`; nil if nftables is absent.
	CheckNftables(ctx context.Context, file string) error
	// CheckKeepalived runs `keepalived --config-test`.
	CheckKeepalived(ctx context.Context, file string) error
	// Reload makes the services read the current generation: a hitless
	// HAProxy reload, the firewall, and keepalived when pair is set.
	Reload(ctx context.Context, pair bool) error
}

// ApplyOptions configures Apply.
type ApplyOptions struct {
	// Root is prepended to every path written (tests use a chroot's tree);
	// paths inside the configurations stay as seen from Root. "" means /.
	Root        string
	ValuesDir   string // default values.Dir
	Generations string // default GenerationsDir
	Paths       Options
	// CheckCommand is keepalived's "HAProxy really serves" check.
	CheckCommand string
	Host         Host
}

// Apply renders the gateway's configurations from the values directory,
// validates them, installs them as a new generation and reloads the
// services. A problem at any step leaves the running configuration as it
// was and returns the reason.
func Apply(ctx context.Context, o ApplyOptions) (roles.Result, error) {
	if o.ValuesDir == "" {
		o.ValuesDir = values.Dir
	}
	if o.Generations == "" {
		o.Generations = GenerationsDir
	}
	host := func(p string) string { return filepath.Join("/", o.Root, p) }
	site, err := values.LoadSite(host(o.ValuesDir))
	if err != nil {
		return roles.Result{}, err
	}
	if site.Role != values.RoleGateway {
		return roles.Result{}, fmt.Errorf("%s says this VM's role is %q; this is the gateway's apply", filepath.Join(o.ValuesDir, values.SiteFile), site.Role)
	}
	var sec values.GatewaySecrets
	if err := values.LoadSecrets(host(o.ValuesDir), &sec); err != nil {
		return roles.Result{}, err
	}
	if sec.StatsUser == "" || sec.StatsPassword == "" {
		return roles.Result{}, fmt.Errorf("%s: stats_user and stats_password are required; the image has no default", filepath.Join(o.ValuesDir, values.SecretsFile))
	}
	if site.Gateway.Mode == values.ModeHTTP {
		if _, err := os.Stat(host(o.Paths.CertFile)); err != nil {
			return roles.Result{}, fmt.Errorf("the TLS certificate is missing: %w", err)
		}
	}
	pair := site.Gateway.Pair != nil
	iface := ""
	if pair {
		if iface, err = interfaceWith(site.Network.Address.Addr()); err != nil {
			return roles.Result{}, err
		}
	}
	gens := roles.Generations{Base: host(o.Generations), Keep: 2}
	render := func(dir string) ([]roles.File, error) {
		inTree := "/" + strings.TrimPrefix(strings.TrimPrefix(dir, filepath.Clean("/"+o.Root)), "/")
		p := o.Paths
		p.ConfigFile = inTree + "/haproxy.cfg"
		p.ErrorDir = inTree + "/errors"
		p.BlocklistSite = inTree + "/ja4-blocklist.site"
		files, err := Render(site, &sec, p)
		if err != nil {
			return nil, err
		}
		var out []roles.File
		for _, f := range files {
			out = append(out, roles.File{Path: host(f.Path), Mode: os.FileMode(f.Mode), Data: f.Data})
		}
		nft, err := RenderNftables(site)
		if err != nil {
			return nil, err
		}
		out = append(out, roles.File{Path: filepath.Join(dir, "nftables.conf"), Mode: 0o644, Data: nft})
		if pair {
			ka, err := RenderKeepalived(site, KeepalivedOptions{Interface: iface, CheckCommand: o.CheckCommand})
			if err != nil {
				return nil, err
			}
			out = append(out, roles.File{Path: filepath.Join(dir, "keepalived.conf"), Mode: 0o644, Data: ka})
		}
		return out, nil
	}
	validate := func(ctx context.Context, dir string) error {
		inTree := "/" + strings.TrimPrefix(strings.TrimPrefix(dir, filepath.Clean("/"+o.Root)), "/")
		var errs []error
		if err := o.Host.CheckHAProxy(ctx, inTree+"/haproxy.cfg"); err != nil {
			errs = append(errs, fmt.Errorf("haproxy: %w", err))
		}
		if err := o.Host.CheckNftables(ctx, inTree+"/nftables.conf"); err != nil {
			errs = append(errs, fmt.Errorf("nftables: %w", err))
		}
		if pair {
			if err := o.Host.CheckKeepalived(ctx, inTree+"/keepalived.conf"); err != nil {
				errs = append(errs, fmt.Errorf("keepalived: %w", err))
			}
		}
		return errors.Join(errs...)
	}
	return gens.Apply(ctx, render, validate, func(ctx context.Context) error { return o.Host.Reload(ctx, pair) })
}

// interfaceWith names the network interface that holds addr.
func interfaceWith(addr netip.Addr) (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == addr {
				return ifc.Name, nil
			}
		}
	}
	return "", fmt.Errorf("no network interface has address %s (from site.json); the network configuration did not apply", addr)
}
