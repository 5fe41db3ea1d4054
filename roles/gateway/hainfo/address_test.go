package hainfo

import (
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	for _, c := range []struct{ in, network, addr string }{
		{"/run/haproxy/admin.sock", "unix", "/run/haproxy/admin.sock"},
		{"./admin.sock", "unix", "./admin.sock"},
		{"admin.sock", "unix", "admin.sock"},
		{"unix@/run/haproxy/admin.sock", "unix", "/run/haproxy/admin.sock"},
		{"abns@haproxy-stats", "unix", "@haproxy-stats"},
		{"ipv4@127.0.0.1:9999", "tcp4", "127.0.0.1:9999"},
		{"ipv6@[::1]:9999", "tcp6", "[::1]:9999"},
		{"tcp@localhost:9999", "tcp", "localhost:9999"},
		{"127.0.0.1:9999", "tcp", "127.0.0.1:9999"},
		{"/var/lib/odd@name.sock", "unix", "/var/lib/odd@name.sock"},
	} {
		a, err := ParseAddress(c.in)
		if err != nil {
			t.Errorf("ParseAddress(%q): %v", c.in, err)
			continue
		}
		if a.Network != c.network || a.Addr != c.addr || a.String() != c.in {
			t.Errorf("ParseAddress(%q) = %s %s (%s), want %s %s", c.in, a.Network, a.Addr, a, c.network, c.addr)
		}
	}
}

func TestParseAddressErrorsSayWhatIsValid(t *testing.T) {
	for _, c := range []struct{ in, mention string }{
		{"", "empty"},
		{"udp@127.0.0.1:1", `"udp@"`},
		{"ipv4@127.0.0.1", "HOST:PORT"},
		{"ipv4@127.0.0.1:http", "1 to 65535"},
		{"ipv4@:9999", "no host"},
		{"unix@", "nothing after"},
	} {
		_, err := ParseAddress(c.in)
		if err == nil {
			t.Errorf("ParseAddress(%q) succeeded, want an error", c.in)
			continue
		}
		if !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), "ipv4@HOST:PORT") {
			t.Errorf("ParseAddress(%q) error %q should mention %q and list the valid forms", c.in, err, c.mention)
		}
	}
}
