// Package node renders the node appliance's configuration from the values
// a seed writes to /etc/appliance: the MicroK8s launch configuration with
// secrets encryption at rest, Traefik's namespace and the values for the
// Traefik chart the image carries, the APIServer2 manifests and the node
// firewall. MicroK8s itself is installed at first boot from the snaps the
// image carries (see docs/node.md); the same renderer runs in the agent
// and in the tests that render the chart and decode the output into the
// upstream types.
package node

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/applbuild/applbuild/roles"
	"github.com/applbuild/applbuild/roles/values"
)

//go:embed templates/*.tmpl
var templates embed.FS

// Paths of the rendered files, relative to the generation directory.
const (
	LaunchConfigFile = "microk8s.yaml"
	// TraefikNamespaceFile holds Traefik's namespace, applied before the
	// chart is installed into it.
	TraefikNamespaceFile = "manifests/traefik-namespace.yaml"
	// TraefikValuesFile holds the values the Traefik chart is installed
	// with.
	TraefikValuesFile = "traefik-values.yaml"
	APIServer2File    = "manifests/apiserver2.yaml"
	NftablesFile      = "nftables.conf"
)

// The Traefik chart's release.
const (
	// TraefikChartFile is the chart archive under ArtifactsDir, where
	// builder/artifacts installs a lock entry of kind chart named traefik.
	TraefikChartFile = "charts/traefik.tgz"
	// TraefikRelease and TraefikNamespace name the Helm release.
	TraefikRelease   = "traefik"
	TraefikNamespace = "traefik"
	// IngressClass is the class the chart creates and APIServer2's
	// Ingress names.
	IngressClass = "traefik"
)

// Fixed parts of the node's layout.
const (
	// EncryptionConfigName is the file MicroK8s writes from the launch
	// configuration's extraConfigFiles into $SNAP_DATA/args/.
	EncryptionConfigName = "encryption-config.yaml"
	// traefikPort (websecure) and pingPort (the chart's traefik entry
	// point) are inside Traefik's pod; only the ingress port is published
	// on the node.
	traefikPort = 8443
	pingPort    = 9000
	// appPort is where APIServer2 listens inside its pods.
	appPort = 8080
	// uploadSize is the APIServer2 upload volume's requested size.
	uploadSize = "10Gi"
)

// ReservedPorts are the node's own TCP ports (MicroK8s 1.35's services and
// SSH); the ingress port may not be one of them.
var ReservedPorts = map[int]string{
	22:    "ssh",
	16443: "kube-apiserver",
	10250: "kubelet",
	10255: "kubelet read-only",
	10257: "kube-controller-manager",
	10259: "kube-scheduler",
	25000: "microk8s cluster agent",
	19001: "dqlite",
	9099:  "calico felix health",
	10256: "kube-proxy health",
	10249: "kube-proxy metrics",
}

// controlPorts are the reserved ports the firewall admits from the
// management networks only.
var controlPorts = []int{10250, 16443, 19001, 25000}

// Images are the container images the manifests run, as
// repository@sha256:digest references: the node has no registry, so a tag
// could only name an image that is not there.
type Images struct {
	Traefik    string
	APIServer2 string
}

var digestRefRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.:/_-]*@sha256:[0-9a-f]{64}$`)

func (im Images) check() error {
	for _, c := range []struct{ name, ref string }{{"traefik", im.Traefik}, {"apiserver2", im.APIServer2}} {
		if !digestRefRe.MatchString(c.ref) {
			return fmt.Errorf("image %s reference %q is not repository@sha256:<64 hex digits>; images are run only by the digest pinned in artifacts.lock", c.name, c.ref)
		}
	}
	return nil
}

// EnvVar is one entry of the APIServer2 Secret.
type EnvVar struct{ Name, Value string }

var (
	envNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	nonAlnumRe = regexp.MustCompile(`[^A-Za-z0-9]`)
)

// SecretEnv turns the seed's NodeSecrets into APIServer2's environment:
// JWT_SECRET, API_KEY, DB_<NAME> per database connection, then the
// site's extra variables. Nothing has a default: a missing secret is an
// error, so APIServer2 never starts with a value nobody chose.
func SecretEnv(sec *values.NodeSecrets) ([]EnvVar, error) {
	if sec == nil {
		return nil, fmt.Errorf("no node secrets; secrets.json of a node holds jwt_secret, api_key, db_connections and encryption_key")
	}
	if sec.JWTSecret == "" {
		return nil, fmt.Errorf("secrets.json: jwt_secret is empty; the site file must give one (APIServer2 has no default)")
	}
	if sec.APIKey == "" {
		return nil, fmt.Errorf("secrets.json: api_key is empty; the site file must give one (APIServer2 has no default)")
	}
	env := []EnvVar{{"JWT_SECRET", sec.JWTSecret}, {"API_KEY", sec.APIKey}}
	seen := map[string]string{"JWT_SECRET": "jwt_secret", "API_KEY": "api_key", "UPLOAD_DIR": "the upload volume"}
	var dbs []string
	for k := range sec.DBConnections {
		dbs = append(dbs, k)
	}
	sort.Strings(dbs)
	for _, k := range dbs {
		n := "DB_" + strings.ToUpper(nonAlnumRe.ReplaceAllString(k, "_"))
		if from, dup := seen[n]; dup {
			return nil, fmt.Errorf("secrets.json: db_connections[%q] becomes %s, which %s already sets; rename the connection", k, n, from)
		}
		if sec.DBConnections[k] == "" {
			return nil, fmt.Errorf("secrets.json: db_connections[%q] is empty", k)
		}
		seen[n] = fmt.Sprintf("db_connections[%q]", k)
		env = append(env, EnvVar{n, sec.DBConnections[k]})
	}
	var extra []string
	for k := range sec.Env {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	for _, k := range extra {
		if !envNameRe.MatchString(k) {
			return nil, fmt.Errorf("secrets.json: env[%q] is not an environment variable name (letters, digits, '_', not starting with a digit)", k)
		}
		if from, dup := seen[k]; dup {
			return nil, fmt.Errorf("secrets.json: env[%q] is already set by %s", k, from)
		}
		seen[k] = fmt.Sprintf("env[%q]", k)
		env = append(env, EnvVar{k, sec.Env[k]})
	}
	return env, nil
}

// EncryptionKey decodes the seed's key for secrets at rest: base64 of
// exactly 32 bytes, what secretbox requires.
func EncryptionKey(sec *values.NodeSecrets) (string, error) {
	k, err := base64.StdEncoding.DecodeString(sec.EncryptionKey)
	if err != nil || len(k) != 32 {
		return "", fmt.Errorf("secrets.json: encryption_key must be standard base64 of 32 random bytes (e.g. `head -c 32 /dev/urandom | base64`), got %d characters", len(sec.EncryptionKey))
	}
	return sec.EncryptionKey, nil
}

// Render renders every file of the node's configuration. site must be a
// node's site.json; sec its secrets.json.
func Render(site *values.Site, sec *values.NodeSecrets, img Images) ([]roles.File, error) {
	if site == nil || site.Role != values.RoleNode || site.Node == nil {
		return nil, fmt.Errorf("site.json is not a node's (role %q); the node renderer needs role node with a \"node\" object", roleOf(site))
	}
	n := site.Node
	if err := img.check(); err != nil {
		return nil, err
	}
	if n.IngressPort < 1 || n.IngressPort > 65535 {
		return nil, fmt.Errorf("site.json: node.ingress_port %d is not a TCP port (1-65535)", n.IngressPort)
	}
	if what, clash := ReservedPorts[n.IngressPort]; clash {
		return nil, fmt.Errorf("site.json: node.ingress_port %d is the node's %s port; choose another, e.g. 443 or 8443", n.IngressPort, what)
	}
	if len(n.TrustedProxies) == 0 {
		return nil, fmt.Errorf("site.json: node.trusted_proxies is empty; it lists the gateways' addresses, the only sources Traefik admits")
	}
	var trusted []string
	var sourceNets, mgmtNets []netip.Prefix
	for _, a := range n.TrustedProxies {
		if !a.Is4() {
			return nil, fmt.Errorf("site.json: node.trusted_proxies: %s is not an IPv4 address; the node network is IPv4", a)
		}
		trusted = append(trusted, netip.PrefixFrom(a, 32).String())
		sourceNets = append(sourceNets, netip.PrefixFrom(a, 32))
	}
	for _, p := range site.Management {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("site.json: management network %s is not IPv4; the node network is IPv4", p)
		}
		mgmtNets = append(mgmtNets, p)
	}
	// The firewall's sets may not overlap: a gateway inside a management
	// network is admitted by that network.
	sources := roles.SetElements(append(sourceNets, mgmtNets...))
	mgmt := roles.SetElements(mgmtNets)
	for _, p := range []struct{ key, v string }{{"api_path_prefix", n.APIPathPrefix}, {"health_path", n.HealthPath}} {
		if !strings.HasPrefix(p.v, "/") || strings.ContainsAny(p.v, " \t\n\"'") {
			return nil, fmt.Errorf("site.json: node.%s %q must be an absolute URL path such as /api", p.key, p.v)
		}
	}
	env, err := SecretEnv(sec)
	if err != nil {
		return nil, err
	}
	key, err := EncryptionKey(sec)
	if err != nil {
		return nil, err
	}

	enc, err := execTemplate("encryption-config.yaml.tmpl", map[string]any{"KeyName": "seed", "Key": key})
	if err != nil {
		return nil, err
	}
	ip := site.Network.Address.Addr()
	sans := []string{ip.String(), site.Hostname}
	if site.FQDN != "" && site.FQDN != site.Hostname {
		sans = append(sans, site.FQDN)
	}
	launch, err := execTemplate("microk8s.yaml.tmpl", map[string]any{
		"SANs":                 sans,
		"Storage":              true,
		"NodeIP":               ip.String(),
		"EncryptionConfigName": EncryptionConfigName,
		"EncryptionConfigPath": "${SNAP_DATA}/args/" + EncryptionConfigName,
		"EncryptionConfig":     string(enc),
	})
	if err != nil {
		return nil, err
	}
	if _, err := ParseLaunchConfig(launch); err != nil {
		return nil, fmt.Errorf("rendered launch configuration: %w", err)
	}
	traefikNS, err := execTemplate("traefik-namespace.yaml.tmpl", map[string]any{"Namespace": TraefikNamespace})
	if err != nil {
		return nil, err
	}
	traefikImage, err := splitImageRef(img.Traefik)
	if err != nil {
		return nil, err
	}
	traefikValues, err := execTemplate("traefik-values.yaml.tmpl", map[string]any{
		"Image":         traefikImage,
		"ContainerPort": traefikPort,
		"PingPort":      pingPort,
		"IngressPort":   n.IngressPort,
		"TrustedIPs":    trusted,
		"IngressClass":  IngressClass,
		"NodeIP":        ip.String(),
	})
	if err != nil {
		return nil, err
	}
	nodeTLS, err := checkNodeTLS(n, sec)
	if err != nil {
		return nil, err
	}
	app, err := execTemplate("apiserver2.yaml.tmpl", map[string]any{
		"TLS":           nodeTLS,
		"Images":        img,
		"Env":           env,
		"AppPort":       appPort,
		"HealthPath":    n.HealthPath,
		"APIPathPrefix": n.APIPathPrefix,
		"UploadSize":    uploadSize,
		"IngressClass":  IngressClass,
	})
	if err != nil {
		return nil, err
	}
	var ctl []string
	for _, p := range controlPorts {
		ctl = append(ctl, fmt.Sprint(p))
	}
	nft, err := execTemplate("nftables.conf.tmpl", map[string]any{
		"IngressPort":    n.IngressPort,
		"IngressSources": strings.Join(sources, ", "),
		"Management":     strings.Join(mgmt, ", "),
		"ControlPorts":   strings.Join(ctl, ", "),
	})
	if err != nil {
		return nil, err
	}
	return []roles.File{
		// The launch configuration carries the encryption key.
		{Path: LaunchConfigFile, Mode: 0o600, Data: launch},
		{Path: TraefikNamespaceFile, Mode: 0o644, Data: traefikNS},
		{Path: TraefikValuesFile, Mode: 0o644, Data: traefikValues},
		// The APIServer2 manifests carry its Secret.
		{Path: APIServer2File, Mode: 0o600, Data: app},
		{Path: NftablesFile, Mode: 0o644, Data: nft},
	}, nil
}

// NodeTLSSecret is the kubernetes.io/tls Secret holding the certificate
// the site gives its nodes (node.tls); APIServer2's Ingress names it, so
// Traefik serves it to clients that ask for its name by SNI, as the
// gateway does.
const NodeTLSSecret = "apiserver2-tls"

// nodeTLS is the node certificate as the APIServer2 manifests carry it.
type nodeTLS struct {
	ServerName, Cert, Key, Secret string
}

// checkNodeTLS returns the site's node certificate, checked: a name in
// site.json and a certificate and key in secrets.json, all or none, the
// key the certificate's and the name one it covers. nil when the site
// gives none (Traefik then serves its own default certificate).
func checkNodeTLS(n *values.Node, sec *values.NodeSecrets) (*nodeTLS, error) {
	haveName, haveCert, haveKey := n.TLSServerName != "", sec.TLSCertificate != "", sec.TLSKey != ""
	switch {
	case !haveName && !haveCert && !haveKey:
		return nil, nil
	case !haveName:
		return nil, fmt.Errorf("secrets.json carries a node certificate but site.json has no node.tls_server_name to serve it under; regenerate the seed")
	case !haveCert || !haveKey:
		return nil, fmt.Errorf("site.json: node.tls_server_name is %q but secrets.json lacks tls_certificate or tls_key; regenerate the seed", n.TLSServerName)
	}
	pair, err := tls.X509KeyPair([]byte(sec.TLSCertificate), []byte(sec.TLSKey))
	if err != nil {
		return nil, fmt.Errorf("secrets.json: the node certificate and key: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("secrets.json: the node certificate: %v", err)
	}
	if err := leaf.VerifyHostname(n.TLSServerName); err != nil {
		return nil, fmt.Errorf("secrets.json: the node certificate does not cover node.tls_server_name %q: %v", n.TLSServerName, err)
	}
	return &nodeTLS{ServerName: n.TLSServerName, Cert: sec.TLSCertificate, Key: sec.TLSKey, Secret: NodeTLSSecret}, nil
}

// chartImage is an image reference split the way the Traefik chart takes
// it (image.registry, image.repository, image.digest).
type chartImage struct{ Registry, Repository, Digest string }

// splitImageRef splits registry/repository@sha256:hex. The registry must be
// named: the chart would otherwise put its own default in front.
func splitImageRef(ref string) (chartImage, error) {
	name, digest, ok := strings.Cut(ref, "@")
	host, repo, slash := strings.Cut(name, "/")
	if !ok || !slash || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return chartImage{}, fmt.Errorf("image reference %q does not name its registry (want registry/repository@sha256:<hex>, e.g. docker.io/library/traefik@sha256:...)", ref)
	}
	return chartImage{Registry: host, Repository: repo, Digest: digest}, nil
}

func roleOf(s *values.Site) string {
	if s == nil {
		return ""
	}
	return s.Role
}

// execTemplate renders a template; values go through json, whose quoted
// strings are valid YAML scalars, so no seed value can change the
// document's structure.
func execTemplate(name string, data any) ([]byte, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}).ParseFS(templates, "templates/"+name)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", name, err)
	}
	return buf.Bytes(), nil
}
