package seeds

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/seeds/seedstest"
)

func parseCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verifyNodeCert checks the nodes' certificate the way the gateway will:
// against the node CA, for the server name it asks by SNI; and that it
// also names each node, so an operator can reach one directly.
func verifyNodeCert(t *testing.T, s *Site, dir string) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, filepath.Join(dir, "nodes-ca.crt")))
	leaf := parseCert(t, filepath.Join(dir, "nodes.crt"))
	names := []string{s.Gateway.BackendTLS.ServerName}
	for _, vm := range s.ByRole("node") {
		names = append(names, s.FQDN(vm.Name), vm.IP.String())
	}
	for _, n := range names {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: n, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the nodes' certificate does not verify for %s against the node CA: %v", n, err)
		}
	}
}

// TestKeygenMakesTheNodeCAAndCertificate: on the example site keygen makes
// the node CA and the nodes' certificate it signs, keys private; the site
// then validates, and a second run changes nothing.
func TestKeygenMakesTheNodeCAAndCertificate(t *testing.T) {
	site := seedstest.ExampleSite(t)
	dir := filepath.Join(filepath.Dir(site), "bank1")
	made, err := Keygen(site, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range made {
		paths = append(paths, filepath.Base(c.Path))
	}
	for _, want := range []string{"nodes-ca.crt", "nodes-ca.key", "nodes.crt", "nodes.key"} {
		if !strings.Contains(" "+strings.Join(paths, " ")+" ", " "+want+" ") {
			t.Errorf("keygen made %v; want %s among them", paths, want)
		}
	}
	for _, k := range []string{"nodes-ca.key", "nodes.key"} {
		if fi, err := os.Stat(filepath.Join(dir, k)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", k, err, fi.Mode().Perm())
		}
	}
	if ca := parseCert(t, filepath.Join(dir, "nodes-ca.crt")); !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("the node CA is not a CA limited to signing leaves: IsCA %v, MaxPathLen %d", ca.IsCA, ca.MaxPathLen)
	}
	s, err := Load(site, LoadOptions{})
	if err != nil {
		t.Fatalf("the example site after keygen: %v", err)
	}
	verifyNodeCert(t, s, dir)
	before, _ := os.ReadFile(filepath.Join(dir, "nodes.crt"))
	again, err := Keygen(site, time.Now())
	if err != nil || len(again) != 0 {
		t.Errorf("a second keygen made %v (%v); want nothing", again, err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "nodes.crt")); !bytes.Equal(before, after) {
		t.Error("a second keygen rewrote nodes.crt")
	}
}

// TestKeygenSignsWithTheSitesExistingCA: with the CA and its key in place
// (a node certificate about to expire was removed), keygen issues a new
// certificate from the same CA, so the gateways need no new seed.
func TestKeygenSignsWithTheSitesExistingCA(t *testing.T) {
	site := seedstest.ExampleSite(t)
	dir := filepath.Join(filepath.Dir(site), "bank1")
	if _, err := Keygen(site, time.Now()); err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "nodes-ca.crt"))
	old, _ := os.ReadFile(filepath.Join(dir, "nodes.crt"))
	os.Remove(filepath.Join(dir, "nodes.crt"))
	os.Remove(filepath.Join(dir, "nodes.key"))
	made, err := Keygen(site, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != 2 {
		t.Errorf("keygen made %v; want only the nodes' certificate and key", made)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, "nodes-ca.crt")); !bytes.Equal(ca, now) {
		t.Error("keygen replaced the existing node CA")
	}
	if now, _ := os.ReadFile(filepath.Join(dir, "nodes.crt")); bytes.Equal(old, now) {
		t.Error("the new certificate is the old one")
	}
	s, err := Load(site, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	verifyNodeCert(t, s, dir)
}

// TestKeygenWillNotSignWithoutTheCAKey: a CA whose key is not beside it
// (an operator's own PKI) is never replaced or bypassed; keygen says what
// to issue and makes nothing.
func TestKeygenWillNotSignWithoutTheCAKey(t *testing.T) {
	site := seedstest.ExampleSite(t)
	dir := filepath.Join(filepath.Dir(site), "bank1")
	if _, err := Keygen(site, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"nodes.crt", "nodes.key", "nodes-ca.key"} {
		os.Remove(filepath.Join(dir, f))
	}
	_, err := Keygen(site, time.Now())
	if err == nil || !strings.Contains(err.Error(), "cannot sign") || !strings.Contains(err.Error(), "nodes.bank1.example.net") {
		t.Fatalf("keygen with a CA but no CA key: %v; want it to refuse and name what to issue", err)
	}
	for _, f := range []string{"nodes.crt", "nodes.key", "nodes-ca.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s was created", f)
		}
	}
}
