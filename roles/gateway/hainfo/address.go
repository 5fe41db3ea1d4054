package hainfo

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DefaultSocket is where the gateway image's HAProxy configuration puts its
// admin-level stats socket.
const DefaultSocket = "/run/haproxy/admin.sock"

// Address is a parsed stats socket address: a Go network ("unix", "tcp",
// "tcp4", "tcp6") and the address to dial on it.
type Address struct {
	// Network is the net.Dial network.
	Network string
	// Addr is the net.Dial address: a path (or "@name" for an abstract unix
	// socket), or host:port.
	Addr string
	// Raw is the text the address was parsed from, used in messages so the
	// user recognises what they typed.
	Raw string
}

// String returns the address as the user gave it.
func (a Address) String() string { return a.Raw }

// addressPrefixes maps HAProxy's address family prefixes, as printed by
// "show cli sockets" and written after "stats socket", to Go networks.
var addressPrefixes = map[string]string{
	"unix": "unix",
	"abns": "unix",
	"ipv4": "tcp4",
	"ipv6": "tcp6",
	"tcp":  "tcp",
	"tcp4": "tcp4",
	"tcp6": "tcp6",
}

const validAddressForms = `a unix socket path (/run/haproxy/admin.sock), unix@PATH, abns@NAME, ipv4@HOST:PORT, ipv6@[HOST]:PORT, tcp@HOST:PORT or HOST:PORT`

// ParseAddress parses a stats socket address in any of the forms HAProxy
// prints: a plain path, "unix@path", "abns@name", "ipv4@host:port",
// "ipv6@[host]:port", "tcp@host:port", or a bare "host:port".
func ParseAddress(s string) (Address, error) {
	raw := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Address{}, fmt.Errorf("stats socket address is empty; give %s", validAddressForms)
	}
	if prefix, rest, ok := strings.Cut(s, "@"); ok && !strings.Contains(prefix, "/") {
		network, known := addressPrefixes[strings.ToLower(prefix)]
		if !known {
			return Address{}, fmt.Errorf("stats socket address %q: unknown family %q; give %s", raw, prefix+"@", validAddressForms)
		}
		if rest == "" {
			return Address{}, fmt.Errorf("stats socket address %q has nothing after %q; give %s", raw, prefix+"@", validAddressForms)
		}
		switch strings.ToLower(prefix) {
		case "unix":
			return Address{Network: network, Addr: rest, Raw: raw}, nil
		case "abns":
			// Go dials a Linux abstract socket when the name starts with '@'.
			return Address{Network: network, Addr: "@" + rest, Raw: raw}, nil
		}
		if err := checkHostPort(rest); err != nil {
			return Address{}, fmt.Errorf("stats socket address %q: %v; give %s", raw, err, validAddressForms)
		}
		return Address{Network: network, Addr: rest, Raw: raw}, nil
	}
	// Without a prefix HAProxy reads an absolute or relative path as a unix
	// socket; host:port only counts when it really is one.
	if !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, ".") && checkHostPort(s) == nil {
		return Address{Network: "tcp", Addr: s, Raw: raw}, nil
	}
	return Address{Network: "unix", Addr: s, Raw: raw}, nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", s)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}
