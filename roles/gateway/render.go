// Package gateway renders the gateway appliance's service configurations
// (HAProxy, keepalived, nftables) from the values a seed writes to
// /etc/appliance. The same code runs in the in-image agent and in the tests
// that prove the configurations against a live HAProxy.
package gateway

import (
	"bytes"
	"embed"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/applbuild/applbuild/roles/values"
)

//go:embed templates/*.tmpl
var templates embed.FS

//go:embed files/ja4-blocklist.default
var defaultBlocklist []byte

// DefaultBlocklist is the JA4 blocklist shipped in the image; the site's
// seed adds to it.
func DefaultBlocklist() []byte { return append([]byte(nil), defaultBlocklist...) }

// Options are where things live. The appliance uses AppliancePaths; tests
// point everything into a scratch directory and onto loopback.
type Options struct {
	ConfigFile       string // haproxy.cfg
	ErrorDir         string // JSON error pages
	BlocklistDefault string // the image's JA4 blocklist
	BlocklistSite    string // the site's additions
	CertFile         string // certificate chain + key
	BackendCAFile    string // CA for verifying backends
	LuaFile          string // ja4.lua
	StatsSocket      string
	TermSocket       string // local socket between fe_tls and fe_api, e.g. unix@/run/haproxy/tls.sock
	LogTarget        string // /dev/log, or stdout in tests
	User             string // run as this user; empty keeps the starting user
	HTTPBind         string
	HTTPSBind        string
	K8sBind          string
	MgmtBind         string // empty: the VM's own address, port 8404
	MaxConn          int
	FrontendMaxConn  int
	// HTTPRequestTimeout bounds how long a client may take to send its
	// request headers (slow-loris defence), e.g. "10s".
	HTTPRequestTimeout string
}

// AppliancePaths returns the options used on a gateway appliance.
func AppliancePaths() Options {
	return Options{
		ConfigFile:       "/etc/haproxy/haproxy.cfg",
		ErrorDir:         "/etc/haproxy/errors",
		BlocklistDefault: "/usr/share/appliance/ja4-blocklist.default",
		BlocklistSite:    "/etc/haproxy/ja4-blocklist.site",
		CertFile:         filepath.Join(values.Dir, values.ServerPEMFile),
		BackendCAFile:    filepath.Join(values.Dir, values.BackendCAFile),
		LuaFile:          "/usr/share/appliance/lua/ja4.lua",
		StatsSocket:      "/run/haproxy/admin.sock",
		TermSocket:       "unix@/run/haproxy/tls-term.sock",
		LogTarget:        "/dev/log",
		User:             "haproxy",
		HTTPBind:         ":80",
		HTTPSBind:        ":443",
		K8sBind:          ":6443",
		MaxConn:          20000,
		FrontendMaxConn:  10000,
		// Ten seconds is generous for headers on a LAN or the internet.
		HTTPRequestTimeout: "10s",
	}
}

// File is one rendered file.
type File struct {
	Path string
	Mode uint32
	Data []byte
}

// errorCodes are the statuses HAProxy itself may answer with; each gets a
// JSON body, so a client never sees an HTML error page.
var errorCodes = []int{400, 403, 404, 405, 408, 413, 429, 500, 502, 503, 504}

var statusText = map[int]string{
	400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
	408: "request_timeout", 413: "payload_too_large", 429: "too_many_requests",
	500: "internal_error", 502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout",
}

var reason = map[int]string{
	400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	408: "Request Timeout", 413: "Payload Too Large", 429: "Too Many Requests",
	500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}

type haproxyData struct {
	Site         *values.Site
	Gateway      *values.Gateway
	Secrets      *values.GatewaySecrets
	Opts         Options
	ErrorCodes   []int
	LoginPaths   []string
	PublicPaths  []string
	Management   []string
	BackendHost  string
	ServerTLS    string
	GlobalExpire int
	LoginExpire  int
}

// Render renders HAProxy's configuration and the files it reads.
func Render(site *values.Site, sec *values.GatewaySecrets, opts Options) ([]File, error) {
	g := site.Gateway
	if g == nil {
		return nil, fmt.Errorf("site.json has no gateway values; is this VM's role gateway?")
	}
	if opts.MgmtBind == "" {
		opts.MgmtBind = netip.AddrPortFrom(site.Network.Address.Addr(), 8404).String()
	}
	d := haproxyData{
		Site: site, Gateway: g, Secrets: sec, Opts: opts, ErrorCodes: errorCodes,
		LoginPaths:   normPaths(g.RateLimits.Login.Paths),
		PublicPaths:  normPaths(g.API.PublicPaths),
		GlobalExpire: max(60, 2*g.RateLimits.Global.PeriodSeconds),
		LoginExpire:  max(60, 2*g.RateLimits.Login.PeriodSeconds),
	}
	for _, p := range site.Management {
		d.Management = append(d.Management, p.String())
	}
	if len(g.ServerNames) > 0 {
		d.BackendHost = g.ServerNames[0]
	}
	tlsOpts := []string{"ssl", "check-ssl", "alpn http/1.1"}
	if g.BackendTLS.Verify {
		tlsOpts = append(tlsOpts, "verify required", "ca-file \""+opts.BackendCAFile+"\"")
		if g.BackendTLS.ServerName != "" {
			tlsOpts = append(tlsOpts, "sni str("+g.BackendTLS.ServerName+")", "check-sni "+g.BackendTLS.ServerName, "verifyhost "+g.BackendTLS.ServerName)
		}
	} else {
		// Without a CA from the seed the link is encrypted but not
		// authenticated; docs/gateway.md says how to turn verification on.
		tlsOpts = append(tlsOpts, "verify none")
	}
	d.ServerTLS = strings.Join(tlsOpts, " ")

	tmpl, err := template.New("haproxy.cfg.tmpl").Funcs(template.FuncMap{
		"addrport": func(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() },
	}).ParseFS(templates, "templates/haproxy.cfg.tmpl")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("rendering haproxy.cfg: %w", err)
	}
	files := []File{{Path: opts.ConfigFile, Mode: 0o640, Data: buf.Bytes()}}
	if g.Mode == values.ModeHTTP {
		for _, code := range errorCodes {
			files = append(files, File{Path: filepath.Join(opts.ErrorDir, fmt.Sprintf("%d.http", code)), Mode: 0o644, Data: errorPage(code)})
		}
		files = append(files, File{Path: opts.BlocklistSite, Mode: 0o644, Data: Blocklist(g.JA4.Blocklist)})
	}
	return files, nil
}

// Blocklist renders a JA4 list file for HAProxy's -f: one fingerprint a line.
func Blocklist(fps []string) []byte {
	s := append([]string(nil), fps...)
	sort.Strings(s)
	var b bytes.Buffer
	b.WriteString("# JA4 fingerprints blocked at this site (from the seed), one per line.\n")
	for _, fp := range s {
		b.WriteString(fp)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// normPaths gives paths in the form the config compares them in: lower
// case, without trailing slashes (the request path gets the same treatment).
func normPaths(ps []string) []string {
	var out []string
	for _, p := range ps {
		p = strings.TrimRight(strings.ToLower(p), "/")
		if p == "" {
			p = "/"
		}
		out = append(out, p)
	}
	return out
}

func errorPage(code int) []byte {
	body := fmt.Sprintf("{\"error\":%q,\"status\":%d}\n", statusText[code], code)
	return []byte(fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n%s", code, reason[code], len(body), body))
}
