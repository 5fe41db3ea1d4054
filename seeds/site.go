// Package seeds turns a site file into cloud-init NoCloud seed ISOs, one per
// VM. Load validates the site file (and the certificate, key and secrets files
// it points at) once, into a typed Site; Render and WriteISO trust it.
package seeds

import (
	"net/netip"
	"path/filepath"

	"github.com/applbuild/applbuild/roles/values"
)

// Defaults for fields a site file may leave out. They are documented in
// docs/site-file.md; change both together.
const (
	DefaultSSHUser        = "ops"
	DefaultMode           = values.ModeHTTP
	DefaultPathPrefix     = "/api/"
	DefaultMaxBody        = "10m"
	DefaultBackendPort    = 443
	DefaultIngressPort    = 443
	DefaultLoginRequests  = 10
	DefaultLoginPeriod    = "1m"
	DefaultGlobalRequests = 300
	DefaultGlobalPeriod   = "10s"
	DefaultK8sAPIPort     = 6443
	DefaultK8sReadyStatus = 200
)

// DefaultMethods is the method allowlist when api.methods is not given.
var DefaultMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Site is a validated site file with everything it references loaded.
type Site struct {
	Name       string
	Domain     string
	File       string // the site file, as given
	Network    Network
	Management []netip.Prefix
	SSHUser    string
	SSHKeys    []string // one normalised authorized_keys line each
	VMs        []VM
	// Gateway holds the gateway values shared by every gateway VM; Pair is
	// filled per VM by Values.
	Gateway   values.Gateway
	VIP       netip.Addr // set only for a gateway pair
	TLS       TLSFiles
	Node      values.Node
	Secrets   Secrets
	SecretsAt string // path of the secrets file
}

// Network is the site's single VM network.
type Network struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
	DNS     []netip.Addr
	Search  []string
}

// VM is one virtual machine of the site.
type VM struct {
	Name string
	Role string
	IP   netip.Addr
	MAC  string // lowercase, colon-separated; empty matches any ethernet NIC
}

// TLSFiles holds the gateway's PEM material, read and checked.
type TLSFiles struct {
	CertPEM      []byte // leaf first, then any intermediates
	KeyPEM       []byte
	BackendCAPEM []byte // empty when backends are not verified
	// NodeCertPEM and NodeKeyPEM are what every node's Traefik presents
	// to the gateway (node.tls); empty when the site sets none.
	NodeCertPEM []byte
	NodeKeyPEM  []byte
}

// Secrets holds the secrets file, split by who may see it.
type Secrets struct {
	Gateway values.GatewaySecrets
	Node    values.NodeSecrets
}

// VM returns the named VM.
func (s *Site) VM(name string) (VM, bool) {
	for _, vm := range s.VMs {
		if vm.Name == name {
			return vm, true
		}
	}
	return VM{}, false
}

// ByRole returns the site's VMs of one role, in file order.
func (s *Site) ByRole(role string) []VM {
	var out []VM
	for _, vm := range s.VMs {
		if vm.Role == role {
			out = append(out, vm)
		}
	}
	return out
}

// FQDN returns name.domain, or "" when the site has no domain.
func (s *Site) FQDN(name string) string {
	if s.Domain == "" {
		return ""
	}
	return name + "." + s.Domain
}

// Path resolves a file reference in the site file: relative paths are taken
// from the site file's folder, so a site directory can be moved as a whole.
func resolve(siteFile, ref string) string {
	if filepath.IsAbs(ref) {
		return ref
	}
	return filepath.Join(filepath.Dir(siteFile), ref)
}
