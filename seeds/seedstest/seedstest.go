// Package seedstest makes the certificates, keys and secrets files that the
// test site files in seeds/testdata refer to, fresh for every run, so no key
// is ever committed and no test certificate expires in the tree.
package seedstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// PKI writes into dir the certificates, keys and secrets files the test
// site files refer to: pki/{api,other,expired,ca}.{crt,key}, the node CA
// pki/nodes-ca.crt with the certificate it signed, pki/nodes.{crt,key},
// and secrets*.yaml.
func PKI(t testing.TB, dir string) {
	t.Helper()
	now := time.Now()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "pki"), 0o700))
	write := func(name string, data []byte, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
	}
	cert := func(name string, names []string, notBefore, notAfter time.Time) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names, NotBefore: notBefore, NotAfter: notAfter}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		must(err)
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		must(err)
		write("pki/"+name+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		write("pki/"+name+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	}
	cert("api", []string{"api.corp.example.net"}, now.Add(-time.Hour), now.AddDate(1, 0, 0))
	cert("other", []string{"api.corp.example.net"}, now.Add(-time.Hour), now.AddDate(1, 0, 0))
	cert("expired", []string{"api.corp.example.net"}, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0))
	cert("ca", []string{"nodes-ca.corp.example.net"}, now.Add(-time.Hour), now.AddDate(1, 0, 0))

	// pki/nodes-ca is a real CA; pki/nodes is the nodes' certificate it
	// signed for nodes.corp.example.net (node.tls).
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano() + 1), Subject: pkix.Name{CommonName: "corp node CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	caCert, err := x509.ParseCertificate(caDER)
	must(err)
	write("pki/nodes-ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	nodeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	nodeTmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano() + 2), Subject: pkix.Name{CommonName: "nodes.corp.example.net"},
		DNSNames: []string{"nodes.corp.example.net"}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	nodeDER, err := x509.CreateCertificate(rand.Reader, nodeTmpl, caCert, &nodeKey.PublicKey, caKey)
	must(err)
	nkder, err := x509.MarshalPKCS8PrivateKey(nodeKey)
	must(err)
	write("pki/nodes.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: nodeDER}), 0o644)
	write("pki/nodes.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: nkder}), 0o600)
	key := make([]byte, 32)
	rand.Read(key)
	ek := base64.StdEncoding.EncodeToString(key)
	good := `gateway:
  stats_user: stats
  stats_password: 9vVq2mXcT7pLrW4bZs8dNk
apiserver2:
  jwt_secret: Hq7rP2xWm9KcL4vT8nB3yJ6fD1sA5gZe0uQiRtYw
  api_key: k3J8mN2pQ5rT7vX9zB4c
  db_connections:
    main: "Host=db.corp.internal;Database=api;Username=api;Password=R4nd0m-Only-In-Tests"
microk8s:
  encryption_key: ` + ek + "\n"
	write("secrets.yaml", []byte(good), 0o600)
	write("secrets-open.yaml", []byte(good), 0o644)
	write("secrets-empty.yaml", []byte(strings.NewReplacer(
		"stats_password: 9vVq2mXcT7pLrW4bZs8dNk", `stats_password: ""`,
		"jwt_secret: Hq7rP2xWm9KcL4vT8nB3yJ6fD1sA5gZe0uQiRtYw", `jwt_secret: ""`).Replace(good)), 0o600)
	write("secrets-weak.yaml", []byte(strings.Replace(good, "encryption_key: "+ek, `encryption_key: "c2hvcnQ="`, 1)), 0o600)
}

// Corpus copies the site files of folder src into a fresh directory next
// to a generated PKI and returns that directory.
func Corpus(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	PKI(t, dir)
	return dir
}

// ExampleSite copies the shipped example site file,
// examples/sites/bank1.yaml, into a fresh folder and returns the copy's
// path; its certificates, keys and secrets are not there yet (run
// seeds.Keygen on it, as the quickstart does).
func ExampleSite(t testing.TB) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository from seedstest")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "examples", "sites", "bank1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bank1.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
