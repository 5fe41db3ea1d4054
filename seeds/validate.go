package seeds

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/applbuild/applbuild/roles/values"
)

// LoadOptions adjusts validation for tests and tools.
type LoadOptions struct {
	// Now is the time certificates are checked against; zero means time.Now.
	Now time.Time
}

// Load reads, validates and resolves a site file. Every problem found is
// returned at once as Errors, each naming the file, line and field.
func Load(path string, opts LoadOptions) (*Site, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	var errs Errors
	data, err := os.ReadFile(path)
	if err != nil {
		errs.add(path, 0, "", readErr(err, "the site file"))
		return nil, errs
	}
	var raw rawSite
	d := newStrictDecoder(path, &errs)
	d.parse(data, &raw)
	if len(errs) > 0 && raw.Site == "" && len(raw.VMs) == 0 {
		return nil, errs.orNil() // nothing decodable to check further
	}
	v := &validator{d: d, errs: &errs, now: opts.Now}
	site := v.site(path, &raw)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	return site, nil
}

type validator struct {
	d    *strictDecoder
	errs *Errors
	now  time.Time
}

func (v *validator) fail(field, format string, args ...any) {
	v.errs.add(v.d.file, v.d.line(field), field, fmt.Sprintf(format, args...))
}

// failIn reports a problem found in another file the site file points at;
// the message still names the site file field that references it.
func (v *validator) failIn(file string, line int, field, format string, args ...any) {
	v.errs.add(file, line, field, fmt.Sprintf(format, args...))
}

var (
	labelRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	methodRE  = regexp.MustCompile(`^[A-Z]+$`)
	envNameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	tokenRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	ja4RE     = regexp.MustCompile(`^[tqd](1[0-3]|s3|d[1-3]|00)[di]\d{2}\d{2}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$`)
	pathRE    = regexp.MustCompile(`^/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$`)
)

var knownMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

func (v *validator) label(field, s, what string) bool {
	if s == "" {
		v.fail(field, "missing; give %s", what)
		return false
	}
	if !labelRE.MatchString(s) {
		v.fail(field, "%q is not a valid lowercase DNS label; use 1-63 characters a-z, 0-9 and '-', not starting or ending with '-'", s)
		return false
	}
	return true
}

func (v *validator) domain(field, s string) bool {
	if len(s) > 253 {
		v.fail(field, "%q is longer than 253 characters", s)
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !labelRE.MatchString(part) {
			v.fail(field, "%q is not a valid lowercase DNS name; each dot-separated part must be a-z, 0-9 and '-' (1-63 characters)", s)
			return false
		}
	}
	return true
}

func (v *validator) addr(field, s string) (netip.Addr, bool) {
	if s == "" {
		v.fail(field, "missing; give an IPv4 address such as 10.20.0.10")
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		v.fail(field, "%q is not an IP address; give one such as 10.20.0.10", s)
		return netip.Addr{}, false
	}
	return a, true
}

func (v *validator) prefix(field, s string) (netip.Prefix, bool) {
	if s == "" {
		v.fail(field, "missing; give a network in CIDR form such as 10.20.0.0/24")
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		v.fail(field, "%q is not a network in CIDR form; give one such as 10.20.0.0/24", s)
		return netip.Prefix{}, false
	}
	if p.Masked() != p {
		v.fail(field, "%q has host bits set; did you mean %s?", s, p.Masked())
		return netip.Prefix{}, false
	}
	return p, true
}

func (v *validator) site(path string, r *rawSite) *Site {
	s := &Site{File: path, Name: r.Site, Domain: r.Domain}
	v.label("site", r.Site, "the site's name, a lowercase DNS label such as bank1")
	if r.Domain != "" {
		v.domain("domain", r.Domain)
	}
	v.network(s, r)
	v.management(s, r)
	v.ssh(s, r)
	v.vms(s, r)
	v.gateway(s, r)
	v.node(s, r)
	v.secrets(s, r)
	return s
}

func (v *validator) network(s *Site, r *rawSite) {
	n := &s.Network
	p, ok := v.prefix("network.cidr", r.Network.CIDR)
	if ok {
		switch {
		case !p.Addr().Is4():
			v.fail("network.cidr", "%s is not IPv4; the VM network is static IPv4", p)
			ok = false
		case p.Bits() < 8 || p.Bits() > 30:
			v.fail("network.cidr", "prefix length /%d is outside /8../30; a /30 is the smallest network with room for a router and a VM", p.Bits())
			ok = false
		}
	}
	if ok {
		n.Prefix = p
	}
	if gw, ok := v.addr("network.gateway", r.Network.Gateway); ok {
		n.Gateway = gw
		v.hostIn("network.gateway", gw, n.Prefix)
	}
	if len(r.Network.DNS) == 0 {
		v.fail("network.dns", "missing; give at least one DNS server address")
	}
	for i, d := range r.Network.DNS {
		if a, ok := v.addr(fmt.Sprintf("network.dns[%d]", i), d); ok {
			n.DNS = append(n.DNS, a)
		}
	}
	for i, d := range r.Network.Search {
		if v.domain(fmt.Sprintf("network.search[%d]", i), d) {
			n.Search = append(n.Search, d)
		}
	}
}

// hostIn checks that a is a usable host address of p (not its network or
// broadcast address). A zero p means the network itself was invalid and has
// been reported already.
func (v *validator) hostIn(field string, a netip.Addr, p netip.Prefix) bool {
	if !p.IsValid() {
		return false
	}
	if !p.Contains(a) {
		first, last := hostRange(p)
		v.fail(field, "%s is outside network %s (network.cidr); use an address from %s to %s", a, p, first, last)
		return false
	}
	first, last := hostRange(p)
	if a.Less(first) || last.Less(a) {
		v.fail(field, "%s is the network or broadcast address of %s; use an address from %s to %s", a, p, first, last)
		return false
	}
	return true
}

func hostRange(p netip.Prefix) (netip.Addr, netip.Addr) {
	first := p.Addr().Next()
	b := p.Addr().As4()
	hostBits := 32 - p.Bits()
	u := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	u |= (1 << hostBits) - 1
	bcast := netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
	return first, bcast.Prev()
}

func (v *validator) management(s *Site, r *rawSite) {
	if len(r.Management.CIDRs) == 0 {
		v.fail("management.cidrs", "missing; give the network(s) allowed to reach SSH, stats and metrics, e.g. [10.99.0.0/24]")
	}
	for i, c := range r.Management.CIDRs {
		if p, ok := v.prefix(fmt.Sprintf("management.cidrs[%d]", i), c); ok {
			if p.Bits() == 0 {
				v.fail(fmt.Sprintf("management.cidrs[%d]", i), "%s admits every address; name the management network itself", p)
				continue
			}
			s.Management = append(s.Management, p)
		}
	}
}

func (v *validator) ssh(s *Site, r *rawSite) {
	s.SSHUser = r.SSH.User
	if s.SSHUser == "" {
		s.SSHUser = DefaultSSHUser
	} else if !userRE.MatchString(s.SSHUser) || s.SSHUser == "root" {
		v.fail("ssh.user", "%q is not a usable login name; use lowercase letters, digits, '_' or '-', starting with a letter, and not root", s.SSHUser)
	}
	if len(r.SSH.AuthorizedKeys) == 0 {
		v.fail("ssh.authorized_keys", "missing; give at least one SSH public key (password logins are disabled, so without a key nobody can log in)")
	}
	seen := map[string]int{}
	for i, k := range r.SSH.AuthorizedKeys {
		field := fmt.Sprintf("ssh.authorized_keys[%d]", i)
		pub, comment, opts, rest, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			v.fail(field, "not an SSH public key (%v); give one line as in ~/.ssh/id_ed25519.pub", err)
			continue
		}
		if len(strings.TrimSpace(string(rest))) > 0 {
			v.fail(field, "holds more than one key; give one key per list item")
			continue
		}
		if j, dup := seen[ssh.FingerprintSHA256(pub)]; dup {
			v.fail(field, "the same key as ssh.authorized_keys[%d]", j)
			continue
		}
		seen[ssh.FingerprintSHA256(pub)] = i
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
		if len(opts) > 0 {
			line = strings.Join(opts, ",") + " " + line
		}
		if comment != "" {
			line += " " + comment
		}
		s.SSHKeys = append(s.SSHKeys, line)
	}
}

func (v *validator) vms(s *Site, r *rawSite) {
	if len(r.VMs) == 0 {
		v.fail("vms", "missing; list the site's VMs (one or two gateways and the nodes)")
		return
	}
	names, ips, macs := map[string]int{}, map[netip.Addr]string{}, map[string]int{}
	if s.Network.Gateway.IsValid() {
		ips[s.Network.Gateway] = "network.gateway"
	}
	for i, rv := range r.VMs {
		f := fmt.Sprintf("vms[%d]", i)
		vm := VM{Name: rv.Name, Role: rv.Role}
		if v.label(f+".name", rv.Name, "the VM's hostname, a lowercase DNS label such as gw1") {
			if j, dup := names[rv.Name]; dup {
				v.fail(f+".name", "hostname %q is already used by vms[%d]; hostnames must be unique", rv.Name, j)
			}
			names[rv.Name] = i
		}
		switch rv.Role {
		case values.RoleGateway, values.RoleNode:
		case "":
			v.fail(f+".role", "missing; give gateway or node")
		default:
			v.fail(f+".role", "%q is not a role; valid roles are gateway and node", rv.Role)
		}
		if ip, ok := v.addr(f+".ip", rv.IP); ok {
			vm.IP = ip
			if v.hostIn(f+".ip", ip, s.Network.Prefix) {
				if other, dup := ips[ip]; dup {
					v.fail(f+".ip", "%s is already used by %s; every address must be unique", ip, other)
				}
				ips[ip] = f + ".ip"
			}
		}
		if rv.MAC != "" {
			hw, err := net.ParseMAC(rv.MAC)
			switch {
			case err != nil || len(hw) != 6:
				v.fail(f+".mac", "%q is not a MAC address; give six colon-separated hex bytes such as 52:54:00:12:34:56", rv.MAC)
			case hw[0]&1 == 1:
				v.fail(f+".mac", "%s is a multicast address; a NIC has a unicast MAC (lowest bit of the first byte clear)", hw)
			default:
				vm.MAC = hw.String()
				if j, dup := macs[vm.MAC]; dup {
					v.fail(f+".mac", "%s is already used by vms[%d]; MACs must be unique", vm.MAC, j)
				}
				macs[vm.MAC] = i
			}
		}
		s.VMs = append(s.VMs, vm)
	}
	gws := 0
	for _, rv := range r.VMs {
		if rv.Role == values.RoleGateway {
			gws++
		}
	}
	switch {
	case gws == 0:
		v.fail("vms", "no VM has role gateway; a site needs one gateway, or two with a vip")
	case gws > 2:
		v.fail("vms", "%d VMs have role gateway; a site has one gateway, or two (an active/passive pair with gateway.vip)", gws)
	}
	// The VIP is checked here because it shares the address space.
	if r.Gateway.VIP != "" {
		if vip, ok := v.addr("gateway.vip", r.Gateway.VIP); ok && v.hostIn("gateway.vip", vip, s.Network.Prefix) {
			if other, dup := ips[vip]; dup {
				v.fail("gateway.vip", "%s is already used by %s; the VIP must be an address no VM or router has", vip, other)
			}
			s.VIP = vip
			ips[vip] = "gateway.vip"
		}
		if gws == 1 {
			v.fail("gateway.vip", "a VIP needs two gateway VMs; add a second VM with role gateway, or remove gateway.vip")
		}
	} else if gws == 2 {
		v.fail("gateway.vip", "missing; two gateway VMs form an active/passive pair and need a vip that moves between them")
	}
}

func (v *validator) gateway(s *Site, r *rawSite) {
	g := &s.Gateway
	rg := &r.Gateway
	g.Mode = rg.Mode
	if g.Mode == "" {
		g.Mode = DefaultMode
	}
	if g.Mode != values.ModeHTTP && g.Mode != values.ModeKubernetesAPI {
		v.fail("gateway.mode", "%q is not a mode; valid modes are %s and %s", rg.Mode, values.ModeHTTP, values.ModeKubernetesAPI)
	}
	if len(rg.ServerNames) == 0 {
		v.fail("gateway.server_names", "missing; give the DNS name(s) clients use, e.g. [api.bank1.example.net]; the certificate must cover them")
	}
	for i, n := range rg.ServerNames {
		if v.domain(fmt.Sprintf("gateway.server_names[%d]", i), strings.TrimPrefix(n, "*.")) {
			g.ServerNames = append(g.ServerNames, n)
		}
	}
	if g.Mode == values.ModeHTTP {
		v.tls(s, rg)
	} else if rg.TLS.Certificate != "" || rg.TLS.Key != "" {
		v.fail("gateway.tls", "kubernetes-api mode passes TLS through to the control planes and uses no certificate; remove gateway.tls")
	}

	// Backends: given, or every node VM.
	if len(rg.Backends) == 0 {
		port := DefaultIngressPort
		if r.Node.IngressPort != nil {
			port = *r.Node.IngressPort
		}
		if g.Mode == values.ModeKubernetesAPI {
			port = DefaultK8sAPIPort
			if rg.KubernetesAPI.Port != nil {
				port = *rg.KubernetesAPI.Port
			}
		}
		for _, vm := range s.ByRole(values.RoleNode) {
			if vm.IP.IsValid() {
				g.Backends = append(g.Backends, values.Backend{Name: vm.Name, Address: vm.IP, Port: port})
			}
		}
		if len(s.ByRole(values.RoleNode)) == 0 {
			v.fail("gateway.backends", "missing; with no node VMs in vms, list the gateway's backends here")
		}
	}
	names := map[string]int{}
	for i, b := range rg.Backends {
		f := fmt.Sprintf("gateway.backends[%d]", i)
		be := values.Backend{Name: b.Name, Port: DefaultBackendPort}
		if v.label(f+".name", b.Name, "a name for the backend server, such as node1") {
			if j, dup := names[b.Name]; dup {
				v.fail(f+".name", "%q is already used by gateway.backends[%d]", b.Name, j)
			}
			names[b.Name] = i
		}
		if a, ok := v.addr(f+".address", b.Address); ok {
			be.Address = a
		}
		if b.Port != nil {
			be.Port = v.port(f+".port", *b.Port)
		}
		g.Backends = append(g.Backends, be)
	}

	if rg.BackendTLS.CA != "" {
		p := resolve(s.File, rg.BackendTLS.CA)
		if pemBytes, ok := v.readFile("gateway.backend_tls.ca", p, "the CA certificate that signs the nodes' certificates"); ok {
			if certs := v.certs("gateway.backend_tls.ca", p, pemBytes); len(certs) > 0 {
				s.TLS.BackendCAPEM = pemBytes
				g.BackendTLS.Verify = true
			}
		}
	}
	if rg.BackendTLS.ServerName != "" {
		if v.domain("gateway.backend_tls.server_name", rg.BackendTLS.ServerName) {
			g.BackendTLS.ServerName = rg.BackendTLS.ServerName
		}
	}

	v.api(g, rg)
	v.rateLimits(g, rg)

	g.JA4.Enabled = true
	if rg.JA4.Enabled != nil {
		g.JA4.Enabled = *rg.JA4.Enabled
	}
	seen := map[string]int{}
	for i, fp := range rg.JA4.Blocklist {
		f := fmt.Sprintf("gateway.ja4.blocklist[%d]", i)
		if !ja4RE.MatchString(fp) {
			v.fail(f, "%q is not a JA4 fingerprint; want the form t13d1516h2_8daaf6152771_e5627efa2ab1", fp)
			continue
		}
		if j, dup := seen[fp]; dup {
			v.fail(f, "duplicate of gateway.ja4.blocklist[%d]", j)
			continue
		}
		seen[fp] = i
		g.JA4.Blocklist = append(g.JA4.Blocklist, fp)
	}
	if g.JA4.Blocklist == nil {
		g.JA4.Blocklist = []string{}
	}

	if g.Mode == values.ModeKubernetesAPI {
		k := &values.KubernetesAPI{Port: DefaultK8sAPIPort, ReadyStatus: DefaultK8sReadyStatus}
		if rg.KubernetesAPI.Port != nil {
			k.Port = v.port("gateway.kubernetes_api.port", *rg.KubernetesAPI.Port)
		}
		if rg.KubernetesAPI.ReadyStatus != nil {
			k.ReadyStatus = *rg.KubernetesAPI.ReadyStatus
			if k.ReadyStatus < 200 || k.ReadyStatus > 599 {
				v.fail("gateway.kubernetes_api.ready_status", "%d is not an HTTP status; give one from 200 to 599 (usually 200)", k.ReadyStatus)
			}
		}
		g.KubernetesAPI = k
	} else if rg.KubernetesAPI.Port != nil || rg.KubernetesAPI.ReadyStatus != nil {
		v.fail("gateway.kubernetes_api", "only used with gateway.mode: kubernetes-api")
	}
}

func (v *validator) port(field string, p int) int {
	if p < 1 || p > 65535 {
		v.fail(field, "%d is not a TCP port; give 1-65535", p)
	}
	return p
}

func (v *validator) api(g *values.Gateway, rg *rawGateway) {
	a := &g.API
	a.PathPrefix = rg.API.PathPrefix
	if a.PathPrefix == "" {
		a.PathPrefix = DefaultPathPrefix
	}
	if !strings.HasPrefix(a.PathPrefix, "/") || !strings.HasSuffix(a.PathPrefix, "/") || !pathRE.MatchString(a.PathPrefix) || strings.Contains(a.PathPrefix, "//") {
		v.fail("gateway.api.path_prefix", "%q must start and end with '/' and hold only URL path characters, e.g. /api/", rg.API.PathPrefix)
	}
	a.HealthPath = rg.API.HealthPath
	if a.HealthPath == "" {
		a.HealthPath = a.PathPrefix + "health"
	}
	v.apiPath("gateway.api.health_path", a.HealthPath, a.PathPrefix)
	a.PublicPaths = []string{a.HealthPath}
	for i, p := range rg.API.PublicPaths {
		if v.apiPath(fmt.Sprintf("gateway.api.public_paths[%d]", i), p, a.PathPrefix) && p != a.HealthPath {
			a.PublicPaths = append(a.PublicPaths, p)
		}
	}
	a.Methods = DefaultMethods
	if len(rg.API.Methods) > 0 {
		a.Methods = nil
		for i, m := range rg.API.Methods {
			f := fmt.Sprintf("gateway.api.methods[%d]", i)
			switch {
			case !methodRE.MatchString(m):
				v.fail(f, "%q is not an HTTP method; methods are upper case, e.g. GET", m)
			case m == "CONNECT" || m == "TRACE":
				v.fail(f, "%s is never allowed through an API gateway; allowed methods are GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", m)
			case !knownMethods[m]:
				v.fail(f, "%q is not a method an API uses; allowed methods are GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", m)
			default:
				a.Methods = append(a.Methods, m)
			}
		}
	}
	mb := rg.API.MaxBody
	if mb == "" {
		mb = DefaultMaxBody
	}
	n, err := parseSize(mb)
	if err != nil {
		v.fail("gateway.api.max_body", "%q: %v", mb, err)
	}
	a.MaxBodyBytes = n
}

// apiPath checks a path that must sit under the API prefix.
func (v *validator) apiPath(field, p, prefix string) bool {
	if !pathRE.MatchString(p) {
		v.fail(field, "%q is not a URL path; give one starting with '/', e.g. %shealth", p, prefix)
		return false
	}
	if !strings.HasPrefix(p, prefix) {
		v.fail(field, "%q is outside the API prefix %q (gateway.api.path_prefix); only paths under it are served", p, prefix)
		return false
	}
	return true
}

// parseSize reads a byte count: a whole number, optionally followed by k, m
// or g (powers of 1024), as HAProxy writes sizes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	num := strings.ToLower(strings.TrimSpace(s))
	switch {
	case strings.HasSuffix(num, "k"):
		mult, num = 1<<10, strings.TrimSuffix(num, "k")
	case strings.HasSuffix(num, "m"):
		mult, num = 1<<20, strings.TrimSuffix(num, "m")
	case strings.HasSuffix(num, "g"):
		mult, num = 1<<30, strings.TrimSuffix(num, "g")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("not a size; give a positive whole number of bytes, optionally with k, m or g, e.g. 10m")
	}
	if n*mult > 1<<30 {
		return 0, errors.New("larger than 1g; HAProxy buffers request bodies it inspects, so keep the limit at or below 1g")
	}
	return n * mult, nil
}

func (v *validator) limit(field string, req *int, period string, defReq int, defPeriod string) values.Limit {
	l := values.Limit{Requests: defReq}
	if req != nil {
		l.Requests = *req
		if l.Requests < 1 || l.Requests > 1_000_000 {
			v.fail(field+".requests", "%d is out of range; give 1 to 1000000 requests per period", l.Requests)
		}
	}
	if period == "" {
		period = defPeriod
	}
	d, err := time.ParseDuration(period)
	switch {
	case err != nil:
		v.fail(field+".period", "%q is not a duration; give one such as 10s, 1m or 1h", period)
	case d < time.Second || d > 24*time.Hour || d%time.Second != 0:
		v.fail(field+".period", "%q must be whole seconds from 1s to 24h", period)
	default:
		l.PeriodSeconds = int(d / time.Second)
	}
	return l
}

func (v *validator) rateLimits(g *values.Gateway, rg *rawGateway) {
	rl := &rg.RateLimits
	g.RateLimits.Login.Limit = v.limit("gateway.rate_limits.login", rl.Login.Requests, rl.Login.Period, DefaultLoginRequests, DefaultLoginPeriod)
	g.RateLimits.Global = v.limit("gateway.rate_limits.global", rl.Global.Requests, rl.Global.Period, DefaultGlobalRequests, DefaultGlobalPeriod)
	paths := rl.Login.Paths
	if len(paths) == 0 {
		g.RateLimits.Login.Paths = []string{g.API.PathPrefix + "auth/login"}
	}
	for i, p := range paths {
		if v.apiPath(fmt.Sprintf("gateway.rate_limits.login.paths[%d]", i), p, g.API.PathPrefix) {
			g.RateLimits.Login.Paths = append(g.RateLimits.Login.Paths, p)
		}
	}
}

func (v *validator) readFile(field, path, what string) ([]byte, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		v.fail(field, "%s: %s", path, readErr(err, what))
		return nil, false
	}
	return b, true
}

func readErr(err error, what string) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file; it should hold " + what
	case errors.Is(err, fs.ErrPermission):
		return "permission denied; make " + what + " readable by the user running applbuild"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (v *validator) certs(field, path string, b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			v.fail(field, "%s holds a %q PEM block; it should hold only CERTIFICATE blocks", path, blk.Type)
			return nil
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			v.fail(field, "%s: a certificate does not parse: %v", path, err)
			return nil
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		v.fail(field, "%s holds no PEM certificate; give a file with -----BEGIN CERTIFICATE-----", path)
	}
	return out
}

func (v *validator) tls(s *Site, rg *rawGateway) {
	chain, certPEM, keyPEM := v.keyPair(s, "gateway.tls", rg.TLS, "the gateway's PEM certificate")
	s.TLS.CertPEM, s.TLS.KeyPEM = certPEM, keyPEM
	if len(chain) == 0 {
		return
	}
	for _, n := range s.Gateway.ServerNames {
		if err := chain[0].VerifyHostname(n); err != nil {
			v.fail("gateway.tls.certificate", "%s does not cover server name %q (gateway.server_names); it covers %s", resolve(s.File, rg.TLS.Certificate), n, coverage(chain[0]))
		}
	}
}

// keyPair reads and checks a certificate file (leaf first, then
// intermediates) and its private key, named by field.certificate and
// field.key: both given, readable, PEM, the leaf valid now and the key its
// own. It returns the parsed chain (nil when the certificate is unusable)
// and the files' bytes.
func (v *validator) keyPair(s *Site, field string, r rawTLS, certWhat string) (chain []*x509.Certificate, certPEM, keyPEM []byte) {
	certField, keyField := field+".certificate", field+".key"
	certPath, keyPath := "", ""
	if r.Certificate == "" {
		v.fail(certField, "missing; give the PEM certificate file (leaf first, then intermediates), relative to the site file")
	} else {
		certPath = resolve(s.File, r.Certificate)
	}
	if r.Key == "" {
		v.fail(keyField, "missing; give the PEM private key file of the certificate, relative to the site file")
	} else {
		keyPath = resolve(s.File, r.Key)
	}
	var leaf *x509.Certificate
	if certPath != "" {
		if b, ok := v.readFile(certField, certPath, certWhat); ok {
			if cs := v.certs(certField, certPath, b); len(cs) > 0 {
				leaf = cs[0]
				certPEM = b
				switch {
				case v.now.After(leaf.NotAfter):
					v.fail(certField, "%s expired on %s; renew it", certPath, leaf.NotAfter.UTC().Format(time.DateOnly))
				case v.now.Before(leaf.NotBefore):
					v.fail(certField, "%s is not valid before %s; check the clock or the certificate", certPath, leaf.NotBefore.UTC().Format(time.RFC3339))
				default:
					chain = cs
				}
			}
		}
	}
	if keyPath != "" {
		if b, ok := v.readFile(keyField, keyPath, "the certificate's PEM private key"); ok {
			key, err := parseKey(b)
			if err != nil {
				v.fail(keyField, "%s: %v", keyPath, err)
			} else {
				keyPEM = b
				if leaf != nil && !publicKeyEqual(leaf.PublicKey, key.Public()) {
					v.fail(keyField, "%s does not match the certificate %s; give the key the certificate was issued for", keyPath, certPath)
					chain = nil
				}
			}
		}
	}
	return chain, certPEM, keyPEM
}

func coverage(c *x509.Certificate) string {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no DNS names (subjectAltName is empty)"
	}
	return strings.Join(names, ", ")
}

func parseKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block; give a file with -----BEGIN PRIVATE KEY-----")
	}
	if strings.Contains(blk.Type, "ENCRYPTED") || blk.Headers["Proc-Type"] != "" {
		return nil, errors.New("the key is encrypted; HAProxy starts unattended and needs an unencrypted key")
	}
	var k any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("a %q PEM block is not a private key; give PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("the private key does not parse: %v", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("unsupported private key type")
	}
	return signer, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	switch ka := a.(type) {
	case *rsa.PublicKey:
		return ka.Equal(b)
	case *ecdsa.PublicKey:
		return ka.Equal(b)
	case ed25519.PublicKey:
		return ka.Equal(b)
	}
	return false
}

// nodeTLS checks node.tls, the certificate every node's Traefik presents
// to the gateway, against what the gateway will ask for: the name in
// gateway.backend_tls.server_name and the CA in gateway.backend_tls.ca.
// A gateway told to verify the node VMs while the nodes have nothing to
// present would mark every backend DOWN, so that is refused too.
func (v *validator) nodeTLS(s *Site, r *rawSite) {
	rt := r.Node.TLS
	nodes := len(s.ByRole(values.RoleNode)) > 0
	derived := len(r.Gateway.Backends) == 0
	if rt.Certificate == "" && rt.Key == "" {
		if nodes && derived && s.Gateway.Mode == values.ModeHTTP && r.Gateway.BackendTLS.CA != "" {
			v.fail("gateway.backend_tls.ca", "the gateway verifies the node VMs against this CA, but node.tls is not set, so the nodes would present Traefik's self-signed default certificate and every backend would be DOWN; add node.tls with a certificate signed by this CA (`applbuild keygen --site %s` creates both when neither exists)", s.Name)
		}
		return
	}
	if !nodes {
		v.fail("node.tls", "the site has no node VMs; remove node.tls")
		return
	}
	chain, certPEM, keyPEM := v.keyPair(s, "node.tls", rt, "the PEM certificate the nodes present to the gateway")
	name := s.Gateway.BackendTLS.ServerName
	if r.Gateway.BackendTLS.ServerName == "" {
		example := "nodes.example.net"
		if s.Domain != "" {
			example = "nodes." + s.Domain
		}
		v.fail("gateway.backend_tls.server_name", "missing; with node.tls the gateway asks the nodes for this name (SNI) and checks node.tls.certificate against it; give one the certificate covers, e.g. %s", example)
	}
	if r.Gateway.BackendTLS.CA == "" {
		v.fail("gateway.backend_tls.ca", "missing; with node.tls the gateway verifies the nodes' certificate, so give the CA certificate that signed node.tls.certificate")
	}
	if len(chain) == 0 || certPEM == nil || keyPEM == nil {
		return
	}
	certPath := resolve(s.File, rt.Certificate)
	if name != "" {
		if err := chain[0].VerifyHostname(name); err != nil {
			v.fail("node.tls.certificate", "%s does not cover %q (gateway.backend_tls.server_name); it covers %s", certPath, name, coverage(chain[0]))
			return
		}
	}
	if len(s.TLS.BackendCAPEM) > 0 {
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		roots.AppendCertsFromPEM(s.TLS.BackendCAPEM)
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: v.now, DNSName: name,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			v.fail("node.tls.certificate", "%s does not verify against gateway.backend_tls.ca (%s): %v; the gateway would refuse it, so sign it with that CA", certPath, resolve(s.File, r.Gateway.BackendTLS.CA), err)
			return
		}
	}
	s.TLS.NodeCertPEM, s.TLS.NodeKeyPEM = certPEM, keyPEM
	s.Node.TLSServerName = name
}

func (v *validator) node(s *Site, r *rawSite) {
	v.nodeTLS(s, r)
	n := &s.Node
	n.IngressPort = DefaultIngressPort
	if r.Node.IngressPort != nil {
		n.IngressPort = v.port("node.ingress_port", *r.Node.IngressPort)
	}
	n.APIPathPrefix = s.Gateway.API.PathPrefix
	n.HealthPath = s.Gateway.API.HealthPath
	if len(r.Node.TrustedProxies) == 0 {
		// The gateway connects to the nodes from its own address; the VIP is
		// added too, for a gateway whose outgoing traffic uses it.
		for _, vm := range s.ByRole(values.RoleGateway) {
			if vm.IP.IsValid() {
				n.TrustedProxies = append(n.TrustedProxies, vm.IP)
			}
		}
		if s.VIP.IsValid() {
			n.TrustedProxies = append(n.TrustedProxies, s.VIP)
		}
	}
	for i, p := range r.Node.TrustedProxies {
		if a, ok := v.addr(fmt.Sprintf("node.trusted_proxies[%d]", i), p); ok {
			n.TrustedProxies = append(n.TrustedProxies, a)
		}
	}
}

func (v *validator) secrets(s *Site, r *rawSite) {
	if r.Secrets == "" {
		v.fail("secrets", "missing; give the secrets file (stats credentials, APIServer2 secrets, encryption key), relative to the site file; `applbuild keygen --site %s` can create one", s.Name)
		return
	}
	path := resolve(s.File, r.Secrets)
	s.SecretsAt = path
	fi, err := os.Stat(path)
	if err != nil {
		v.fail("secrets", "%s: %s", path, readErr(err, "the site's secrets; `applbuild keygen --site "+s.Name+"` can create it"))
		return
	}
	if fi.Mode().Perm()&0o077 != 0 {
		v.fail("secrets", "%s has mode %04o, so other users can read the site's secrets; run chmod 600 %s", path, fi.Mode().Perm(), path)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		v.fail("secrets", "%s: %s", path, readErr(err, "the site's secrets"))
		return
	}
	var raw rawSecrets
	d := newStrictDecoder(path, v.errs)
	d.parse(data, &raw)
	sv := &validator{d: d, errs: v.errs, now: v.now}
	gws, nodes := len(s.ByRole(values.RoleGateway)), len(s.ByRole(values.RoleNode))
	if gws > 0 {
		g := raw.Gateway
		if g.StatsUser == "" {
			sv.fail("gateway.stats_user", "missing; give the user name for the stats page and metrics on the management network")
		} else if !tokenRE.MatchString(g.StatsUser) {
			sv.fail("gateway.stats_user", "%q: use 1-64 letters, digits, '.', '_' or '-'", g.StatsUser)
		}
		sv.secret("gateway.stats_password", g.StatsPassword, 16)
		if strings.ContainsAny(g.StatsPassword, " \t\"'\\#") {
			sv.fail("gateway.stats_password", "must not contain spaces, quotes, '\\' or '#', which HAProxy's config syntax would mangle")
		}
		s.Secrets.Gateway = values.GatewaySecrets{StatsUser: g.StatsUser, StatsPassword: g.StatsPassword}
	}
	if nodes > 0 {
		a := raw.APIServer2
		sv.secret("apiserver2.jwt_secret", a.JWTSecret, 32)
		sv.secret("apiserver2.api_key", a.APIKey, 16)
		if len(a.DBConnections) == 0 {
			sv.fail("apiserver2.db_connections", "missing; give at least one named database connection string")
		}
		for _, k := range sortedKeys(a.DBConnections) {
			if !tokenRE.MatchString(k) {
				sv.fail("apiserver2.db_connections."+k, "%q is not a usable connection name; use letters, digits, '.', '_' or '-'", k)
			}
			sv.secret("apiserver2.db_connections."+k, a.DBConnections[k], 1)
		}
		for _, k := range sortedKeys(a.Env) {
			if !envNameRE.MatchString(k) {
				sv.fail("apiserver2.env."+k, "%q is not an environment variable name; use A-Z, 0-9 and '_', not starting with a digit", k)
			}
			sv.secret("apiserver2.env."+k, a.Env[k], 1)
		}
		key := raw.MicroK8s.EncryptionKey
		if key == "" {
			sv.fail("microk8s.encryption_key", "missing; give 32 random bytes in base64 (head -c 32 /dev/urandom | base64) for Kubernetes secrets encryption at rest")
		} else if kb, err := base64.StdEncoding.DecodeString(key); err != nil || len(kb) != 32 {
			sv.fail("microk8s.encryption_key", "must be exactly 32 bytes in base64 (44 characters); generate one with: head -c 32 /dev/urandom | base64")
		}
		s.Secrets.Node = values.NodeSecrets{JWTSecret: a.JWTSecret, APIKey: a.APIKey, DBConnections: a.DBConnections, Env: a.Env, EncryptionKey: key}
	}
}

func (v *validator) secret(field, val string, min int) {
	switch {
	case strings.TrimSpace(val) == "":
		v.fail(field, "missing or empty; secrets have no defaults, set a value")
	case len(val) < min:
		v.fail(field, "is %d characters; use at least %d (e.g. openssl rand -base64 %d)", len(val), min, (min*3+3)/4)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
