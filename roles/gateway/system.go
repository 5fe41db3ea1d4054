package gateway

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"text/template"

	"github.com/applbuild/applbuild/roles"
	"github.com/applbuild/applbuild/roles/values"
)

// KeepalivedOptions are the host details keepalived needs beyond the values.
type KeepalivedOptions struct {
	Interface    string // the NIC holding the VM's address
	CheckCommand string // exits 0 when HAProxy on this host serves
}

// RenderKeepalived renders keepalived.conf for a gateway of a pair. It
// returns nil for a gateway without a pair.
func RenderKeepalived(site *values.Site, o KeepalivedOptions) ([]byte, error) {
	g := site.Gateway
	if g == nil || g.Pair == nil {
		return nil, nil
	}
	if o.Interface == "" {
		return nil, fmt.Errorf("keepalived: no network interface holds %s", site.Network.Address.Addr())
	}
	d := struct {
		Site                    *values.Site
		Pair                    *values.Pair
		Self                    netip.Addr
		VIP                     string
		Interface, CheckCommand string
	}{site, g.Pair, site.Network.Address.Addr(), netip.PrefixFrom(g.Pair.VIP, site.Network.Address.Bits()).String(), o.Interface, o.CheckCommand}
	return execTemplate("keepalived.conf.tmpl", d)
}

// RenderNftables renders the host firewall.
func RenderNftables(site *values.Site) ([]byte, error) {
	g := site.Gateway
	d := struct {
		Site         *values.Site
		Pair         *values.Pair
		Mgmt4, Mgmt6 []string
		PublicPorts  []string
		PeerAddrs    []string
	}{Site: site}
	if g != nil {
		d.Pair = g.Pair
		if g.Mode == values.ModeKubernetesAPI && g.KubernetesAPI != nil {
			d.PublicPorts = []string{fmt.Sprint(g.KubernetesAPI.Port)}
		} else {
			d.PublicPorts = []string{"80", "443"}
		}
		if g.Pair != nil {
			for _, p := range g.Pair.Peers {
				d.PeerAddrs = append(d.PeerAddrs, p.String())
			}
		}
	}
	// nft refuses overlapping intervals in a set, and a site may list one
	// management network inside another.
	var m4, m6 []netip.Prefix
	for _, p := range site.Management {
		if p.Addr().Is4() {
			m4 = append(m4, p)
		} else {
			m6 = append(m6, p)
		}
	}
	d.Mgmt4, d.Mgmt6 = roles.SetElements(m4), roles.SetElements(m6)
	return execTemplate("nftables.conf.tmpl", d)
}

func execTemplate(name string, data any) ([]byte, error) {
	t, err := template.New(name).Funcs(template.FuncMap{"join": strings.Join}).ParseFS(templates, "templates/"+name)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", name, err)
	}
	return buf.Bytes(), nil
}
