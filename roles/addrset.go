package roles

import (
	"net/netip"
	"sort"
)

// SetElements returns the elements of an nftables interval set that
// admits exactly the given networks: each masked, duplicates dropped, and
// any network inside another one left out, because nft refuses a set
// whose intervals overlap ("conflicting intervals specified"). A site may
// well list a gateway address inside a management network, or two
// management networks one inside the other. The result is sorted, so the
// same networks always render the same rules; a single address is written
// without its /32 or /128.
func SetElements(nets []netip.Prefix) []string {
	var ps []netip.Prefix
	for _, p := range nets {
		if p.IsValid() {
			ps = append(ps, p.Masked())
		}
	}
	// Shorter prefixes first, so a network is kept before anything inside it.
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Bits() != ps[j].Bits() {
			return ps[i].Bits() < ps[j].Bits()
		}
		return ps[i].Addr().Less(ps[j].Addr())
	})
	var kept []netip.Prefix
	for _, p := range ps {
		inside := false
		for _, k := range kept {
			if k.Addr().BitLen() == p.Addr().BitLen() && k.Bits() <= p.Bits() && k.Contains(p.Addr()) {
				inside = true
				break
			}
		}
		if !inside {
			kept = append(kept, p)
		}
	}
	sort.Slice(kept, func(i, j int) bool {
		if kept[i].Addr() != kept[j].Addr() {
			return kept[i].Addr().Less(kept[j].Addr())
		}
		return kept[i].Bits() < kept[j].Bits()
	})
	out := make([]string, 0, len(kept))
	for _, p := range kept {
		if p.IsSingleIP() {
			out = append(out, p.Addr().String())
		} else {
			out = append(out, p.String())
		}
	}
	return out
}
