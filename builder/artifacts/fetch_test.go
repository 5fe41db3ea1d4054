package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry is go-containerregistry's in-process registry on loopback,
// behind a hook that can tamper with responses.
type testRegistry struct {
	srv  *httptest.Server
	host string
	// tamper, when set, may answer a request itself; it returns false to
	// let the registry answer.
	tamper func(w http.ResponseWriter, r *http.Request, reg http.Handler) bool
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tr.tamper != nil && tr.tamper(w, r, reg) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

// push builds a random linux/amd64 image with two layers and pushes it as
// repo:tag, returning it.
func (tr *testRegistry) push(t *testing.T, repo, tag string) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(tr.host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func imageEntry(t *testing.T, source string, img v1.Image) Artifact {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	sz, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	return Artifact{Kind: KindImage, Name: "app", Version: "v1", Source: source, Digest: d.String(), Size: sz}
}

func testLock(as ...Artifact) *Lock {
	return &Lock{File: "test.lock", Role: "node", Artifacts: as}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// cacheEntries lists the finished entries in the cache (not temporaries).
func cacheEntries(t *testing.T, c *Cache) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(c.Dir, "artifacts", "sha256"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestFetchImageFromRegistryAndVerifyOnRead(t *testing.T) {
	tr := newTestRegistry(t)
	img := tr.push(t, "test/app", "v1")
	a := imageEntry(t, tr.host+"/test/app:v1", img)
	c := &Cache{Dir: t.TempDir()}
	f := &Fetcher{Cache: c}
	if err := f.Fetch(ctxT(t), testLock(a)); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if err := c.Verify(a); err != nil {
		t.Fatalf("fetched image does not verify: %v", err)
	}
	if got := cacheEntries(t, c); len(got) != 1 || "sha256:"+got[0] != a.Digest {
		t.Fatalf("cache holds %v, want exactly the manifest digest %s", got, a.Digest)
	}
	// Every layer must be in the archive, not just the manifest.
	layers, _ := img.Layers()
	arch, _ := os.ReadFile(c.Path(a.Digest))
	for _, l := range layers {
		d, _ := l.Digest()
		if !bytes.Contains(arch, []byte("blobs/sha256/"+d.Hex)) {
			t.Errorf("archive lacks layer %s", d)
		}
	}

	// Rot on disk: flip one byte inside a layer.
	corruptLayer(t, c.Path(a.Digest), img)
	if err := c.Verify(a); err == nil {
		t.Fatal("a corrupted cache entry verified")
	} else {
		t.Logf("corrupted entry rejected: %v", err)
	}
}

func TestFetchRejectsDigestMismatch(t *testing.T) {
	tr := newTestRegistry(t)
	img := tr.push(t, "test/app", "v1")
	other := tr.push(t, "test/app", "v2")
	a := imageEntry(t, tr.host+"/test/app:v1", img)
	od, _ := other.Digest()
	// The registry answers the pinned digest with another image's manifest.
	tr.tamper = func(w http.ResponseWriter, r *http.Request, reg http.Handler) bool {
		if strings.Contains(r.URL.Path, "/manifests/"+a.Digest) {
			r.URL.Path = strings.Replace(r.URL.Path, a.Digest, od.String(), 1)
		}
		return false
	}
	c := &Cache{Dir: t.TempDir()}
	err := (&Fetcher{Cache: c}).Fetch(ctxT(t), testLock(a))
	if err == nil {
		t.Fatal("a manifest that does not hash to the pinned digest was accepted")
	}
	if !strings.Contains(err.Error(), "image app") || !strings.Contains(err.Error(), "digest") {
		t.Errorf("error does not name the image and the digest problem: %v", err)
	}
	t.Logf("rejected: %v", err)
	if got := cacheEntries(t, c); len(got) != 0 {
		t.Errorf("cache holds %v after a rejected fetch", got)
	}
}

func TestFetchRejectsMissingImage(t *testing.T) {
	tr := newTestRegistry(t)
	tr.push(t, "test/app", "v1")
	ghost, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	a := imageEntry(t, tr.host+"/test/app:v1", ghost)
	c := &Cache{Dir: t.TempDir()}
	err = (&Fetcher{Cache: c}).Fetch(ctxT(t), testLock(a))
	if err == nil {
		t.Fatal("fetching a digest the registry does not have succeeded")
	}
	if !strings.Contains(err.Error(), a.Digest) || !strings.Contains(strings.ToLower(err.Error()), "manifest") {
		t.Errorf("error does not name the missing manifest: %v", err)
	}
	t.Logf("rejected: %v", err)
	if got := cacheEntries(t, c); len(got) != 0 {
		t.Errorf("cache holds %v after a failed fetch", got)
	}
}

func TestFetchRejectsTruncatedBlob(t *testing.T) {
	tr := newTestRegistry(t)
	img := tr.push(t, "test/app", "v1")
	a := imageEntry(t, tr.host+"/test/app:v1", img)
	layers, _ := img.Layers()
	ld, _ := layers[1].Digest()
	// The registry sends only the first half of one layer, with a length
	// header that matches what it sends, so only the digest can tell.
	tr.tamper = func(w http.ResponseWriter, r *http.Request, reg http.Handler) bool {
		if !strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) || r.Method != http.MethodGet {
			return false
		}
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		body = body[:len(body)/2]
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body)
		return true
	}
	c := &Cache{Dir: t.TempDir()}
	err := (&Fetcher{Cache: c}).Fetch(ctxT(t), testLock(a))
	if err == nil {
		t.Fatal("an image with a truncated layer was accepted")
	}
	t.Logf("rejected: %v", err)
	if !strings.Contains(err.Error(), "image app") {
		t.Errorf("error does not name the image: %v", err)
	}
	if got := cacheEntries(t, c); len(got) != 0 {
		t.Errorf("cache holds %v after a rejected fetch", got)
	}
}

func TestFetchChartOverHTTPSChecksDigest(t *testing.T) {
	chart := []byte("a chart archive's bytes\n")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/traefik-1.0.0.tgz" {
			http.NotFound(w, r)
			return
		}
		w.Write(chart)
	}))
	defer srv.Close()
	sum := sha256.Sum256(chart)
	a := Artifact{Kind: KindChart, Name: "traefik", Source: srv.URL + "/traefik-1.0.0.tgz", Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(chart))}
	c := &Cache{Dir: t.TempDir()}
	f := &Fetcher{Cache: c, HTTP: srv.Client()}
	if err := f.Fetch(ctxT(t), testLock(a)); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if b, _ := os.ReadFile(c.Path(a.Digest)); !bytes.Equal(b, chart) {
		t.Fatalf("cached chart is %q", b)
	}

	chart = []byte("the server now sends other bytes\n")
	c2 := &Cache{Dir: t.TempDir()}
	err := (&Fetcher{Cache: c2, HTTP: srv.Client()}).Fetch(ctxT(t), testLock(a))
	if err == nil || !strings.Contains(err.Error(), "the lock pins "+a.Digest) {
		t.Fatalf("changed chart: got %v, want a digest mismatch naming the pin", err)
	}
	if got := cacheEntries(t, c2); len(got) != 0 {
		t.Errorf("cache holds %v after a rejected chart", got)
	}
}

func TestFetchSnapWithoutStoreSaysHowToGetIt(t *testing.T) {
	// This host has no snap store; with or without the snap command the
	// fetch must fail and say how to get the snaps another way.
	t.Setenv("PATH", t.TempDir())
	a := Artifact{Kind: KindSnap, Name: "microk8s", Channel: "1.35/stable", Revision: 1, Source: "snapstore",
		Digest: "sha256:" + strings.Repeat("a", 64), Size: 1, Assertions: "sha256:" + strings.Repeat("b", 64)}
	c := &Cache{Dir: t.TempDir()}
	err := (&Fetcher{Cache: c}).Fetch(ctxT(t), testLock(a))
	if err == nil {
		t.Fatal("fetching a snap without the snap command succeeded")
	}
	for _, want := range []string{"snap microk8s", "snapd", "--bundle"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// corruptLayer flips one byte inside the first layer's content in a file
// holding it (an archive or a bundle), so the corruption is in data a
// digest covers, not in tar padding.
func corruptLayer(t *testing.T, path string, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 64)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, head)
	if i < 0 {
		t.Fatalf("%s does not contain the layer", path)
	}
	b[i+32] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
