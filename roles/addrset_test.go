package roles

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestSetElementsLeavesNoOverlap(t *testing.T) {
	p := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, c := range []struct {
		in   []netip.Prefix
		want []string
	}{
		// a gateway inside the management network, as a small site has it
		{p("10.0.2.10/32", "10.0.2.0/24"), []string{"10.0.2.0/24"}},
		// nested and repeated management networks
		{p("10.99.0.0/24", "10.0.0.0/8", "10.99.0.0/24", "192.168.1.0/24"), []string{"10.0.0.0/8", "192.168.1.0/24"}},
		// disjoint entries are all kept, sorted, single addresses bare
		{p("10.20.0.11/32", "10.20.0.10/32", "10.99.0.0/24"), []string{"10.20.0.10", "10.20.0.11", "10.99.0.0/24"}},
		// IPv6 never swallows IPv4 and the other way round
		{p("::/0", "10.0.0.1/32", "fd00::1/128"), []string{"10.0.0.1", "::/0"}},
		{nil, []string{}},
	} {
		if got := SetElements(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("SetElements(%v) = %v; want %v", c.in, got, c.want)
		}
	}
}
