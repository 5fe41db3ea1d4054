package qemu

import (
	"fmt"
	"net/netip"
)

// UserNetwork shapes QEMU's user-mode network like the site's network, so
// a seed with a static address boots unchanged: the guest keeps its site
// IP, the site's router and DNS addresses are QEMU's own (the router
// address reaches the host's loopback), and forwards go to the guest's IP.
type UserNetwork struct {
	Prefix  netip.Prefix // the site network, e.g. 10.20.0.0/24
	Router  netip.Addr   // the site's default gateway: QEMU's host address
	DNS     netip.Addr   // QEMU's DNS address; zero leaves QEMU's default
	GuestIP netip.Addr   // the VM's static address: forwards go here
	MAC     string       // the NIC's MAC; empty keeps QEMU's default
}

// netdev renders the -netdev user options for n (nil: QEMU's defaults).
func (n *UserNetwork) netdev() string {
	if n == nil {
		return ""
	}
	s := fmt.Sprintf(",net=%s,host=%s", n.Prefix.Masked(), n.Router)
	if n.DNS.IsValid() && n.Prefix.Contains(n.DNS) && n.DNS != n.Router {
		s += fmt.Sprintf(",dns=%s", n.DNS)
	}
	return s
}

func (n *UserNetwork) guest() string {
	if n == nil || !n.GuestIP.IsValid() {
		return ""
	}
	return n.GuestIP.String()
}

func (n *UserNetwork) nicMAC() string {
	if n == nil || n.MAC == "" {
		return ""
	}
	return ",mac=" + n.MAC
}
