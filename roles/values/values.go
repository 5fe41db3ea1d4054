// Package values defines the files a seed writes under /etc/appliance/ and
// the in-image agent reads back. They are the only contract between a site
// file and an appliance: the seed side renders them, the agent side renders
// service configurations from them. See docs/appliance-values.md.
//
// The values are already validated when the seed is made; Load checks them
// again, more lightly, because a hand-edited /etc/appliance/ must fail with a
// clear message rather than render a broken service.
package values

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// Format is the version of the /etc/appliance/ layout. The agent refuses a
// format it does not know rather than guess.
const Format = 1

// Paths of the files under the values directory, relative to it.
const (
	SiteFile      = "site.json"          // non-secret values, mode 0644
	SecretsFile   = "secrets.json"       // secrets for this VM's role only, mode 0600
	ServerPEMFile = "tls/server.pem"     // gateway: certificate chain then private key, mode 0600
	BackendCAFile = "tls/backend-ca.pem" // gateway: CA that signs the nodes' certificates, mode 0644
	Dir           = "/etc/appliance"     // where cloud-init writes them in the appliance
)

// Roles a VM can have.
const (
	RoleGateway = "gateway"
	RoleNode    = "node"
)

// Gateway modes.
const (
	ModeHTTP          = "http"           // API gateway in front of APIServer2 behind Traefik
	ModeKubernetesAPI = "kubernetes-api" // TCP passthrough in front of control planes
)

// Site is the content of site.json: what one VM needs to know about itself
// and its site, and nothing more.
type Site struct {
	Format     int            `json:"format"`
	Site       string         `json:"site"`
	VM         string         `json:"vm"`
	Role       string         `json:"role"`
	Hostname   string         `json:"hostname"`
	FQDN       string         `json:"fqdn,omitempty"`
	Network    Network        `json:"network"`
	Management []netip.Prefix `json:"management"`
	Gateway    *Gateway       `json:"gateway,omitempty"`
	Node       *Node          `json:"node,omitempty"`
}

// Network is the VM's single static interface.
type Network struct {
	Address netip.Prefix `json:"address"` // the VM's IP with the network's prefix length
	Gateway netip.Addr   `json:"gateway"`
	DNS     []netip.Addr `json:"dns"`
	Search  []string     `json:"search,omitempty"`
}

// Gateway holds the gateway role's values.
type Gateway struct {
	Mode        string     `json:"mode"`
	ServerNames []string   `json:"server_names"`
	Backends    []Backend  `json:"backends"`
	BackendTLS  BackendTLS `json:"backend_tls"`
	API         API        `json:"api"`
	RateLimits  RateLimits `json:"rate_limits"`
	JA4         JA4        `json:"ja4"`
	// Pair is set when the site runs an active/passive gateway pair.
	Pair *Pair `json:"pair,omitempty"`
	// KubernetesAPI is set in kubernetes-api mode.
	KubernetesAPI *KubernetesAPI `json:"kubernetes_api,omitempty"`
}

// Backend is one upstream server.
type Backend struct {
	Name    string     `json:"name"`
	Address netip.Addr `json:"address"`
	Port    int        `json:"port"`
}

// BackendTLS says how the gateway talks TLS to its backends.
type BackendTLS struct {
	// Verify is true when tls/backend-ca.pem is present and backends'
	// certificates must chain to it.
	Verify bool `json:"verify"`
	// ServerName is sent as SNI and checked against the backend certificate
	// when Verify is set.
	ServerName string `json:"server_name,omitempty"`
}

// API is the API protection policy.
type API struct {
	PathPrefix   string   `json:"path_prefix"`
	PublicPaths  []string `json:"public_paths"`
	Methods      []string `json:"methods"`
	MaxBodyBytes int64    `json:"max_body_bytes"`
	HealthPath   string   `json:"health_path"`
}

// RateLimits are per source IP.
type RateLimits struct {
	Login  LoginLimit `json:"login"`
	Global Limit      `json:"global"`
}

// Limit allows Requests per PeriodSeconds.
type Limit struct {
	Requests      int `json:"requests"`
	PeriodSeconds int `json:"period_seconds"`
}

// LoginLimit is a Limit that applies to the login paths only.
type LoginLimit struct {
	Limit
	Paths []string `json:"paths"`
}

// JA4 configures TLS client fingerprinting.
type JA4 struct {
	Enabled bool `json:"enabled"`
	// Blocklist holds the site's additions; the image ships its own defaults.
	Blocklist []string `json:"blocklist"`
}

// Pair describes the VRRP pair this gateway belongs to.
type Pair struct {
	VIP      netip.Addr   `json:"vip"`
	Peers    []netip.Addr `json:"peers"`
	Priority int          `json:"priority"` // the first gateway of the site file is the preferred master
	RouterID int          `json:"router_id"`
}

// KubernetesAPI configures TCP passthrough to control planes.
type KubernetesAPI struct {
	Port        int `json:"port"`
	ReadyStatus int `json:"ready_status"`
}

// Node holds the node role's values.
type Node struct {
	// TrustedProxies are the only sources whose X-Forwarded-For Traefik trusts.
	TrustedProxies []netip.Addr `json:"trusted_proxies"`
	IngressPort    int          `json:"ingress_port"`
	APIPathPrefix  string       `json:"api_path_prefix"`
	HealthPath     string       `json:"health_path"`
	// TLSServerName is the name Traefik serves the site's node
	// certificate under (the gateway's backend_tls.server_name, sent as
	// SNI); empty when the nodes present Traefik's default certificate.
	TLSServerName string `json:"tls_server_name,omitempty"`
}

// GatewaySecrets is secrets.json on a gateway.
type GatewaySecrets struct {
	StatsUser     string `json:"stats_user"`
	StatsPassword string `json:"stats_password"`
	// VRRPPassword authenticates the keepalived pair; empty without a pair.
	VRRPPassword string `json:"vrrp_password,omitempty"`
}

// NodeSecrets is secrets.json on a node. Both nodes of a site get the same
// APIServer2 secrets, because the gateway balances across them.
type NodeSecrets struct {
	JWTSecret     string            `json:"jwt_secret"`
	APIKey        string            `json:"api_key"`
	DBConnections map[string]string `json:"db_connections"`
	Env           map[string]string `json:"env,omitempty"`
	// EncryptionKey is the base64 32-byte key for Kubernetes secrets
	// encryption at rest.
	EncryptionKey string `json:"encryption_key"`
	// TLSCertificate and TLSKey are the PEM certificate chain and key
	// Traefik presents under Node.TLSServerName; both empty or both set.
	TLSCertificate string `json:"tls_certificate,omitempty"`
	TLSKey         string `json:"tls_key,omitempty"`
}

// Marshal renders v as the stable, indented JSON written to the seed.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// LoadSite reads and checks site.json from dir.
func LoadSite(dir string) (*Site, error) {
	p := filepath.Join(dir, SiteFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return ParseSite(p, b)
}

// ParseSite checks the content of a site.json; name is used in errors.
func ParseSite(name string, data []byte) (*Site, error) {
	var s Site
	if err := decodeJSON(name, data, &s); err != nil {
		return nil, err
	}
	if s.Format != Format {
		return nil, fmt.Errorf("%s: format %d is not supported; this agent reads format %d (rebuild the seed with a matching applbuild)", name, s.Format, Format)
	}
	switch s.Role {
	case RoleGateway:
		if s.Gateway == nil {
			return nil, fmt.Errorf("%s: role gateway needs a \"gateway\" object", name)
		}
	case RoleNode:
		if s.Node == nil {
			return nil, fmt.Errorf("%s: role node needs a \"node\" object", name)
		}
	default:
		return nil, fmt.Errorf("%s: role %q is not one of gateway, node", name, s.Role)
	}
	return &s, nil
}

// LoadSecrets reads secrets.json from dir into v (a *GatewaySecrets or
// *NodeSecrets) and refuses a file other users could read.
func LoadSecrets(dir string, v any) error {
	p := filepath.Join(dir, SecretsFile)
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: mode %04o lets other users read secrets; want 0600", p, fi.Mode().Perm())
	}
	return readJSON(p, v)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return decodeJSON(path, b, v)
}

func decodeJSON(path string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
