package verify_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
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
	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/artifacts"
	"github.com/applbuild/applbuild/builder/rootfs"
	"github.com/applbuild/applbuild/verify"
	"github.com/applbuild/applbuild/verify/testenv"
)

// nodeTestArtifacts is a pinned node lock with its bundle, made in the test.
// The snaps and their assertions are stand-ins: real snaps are squashfs
// files signed by the snap store, which this host cannot reach. The
// container images are real OCI images (random layers), served by an
// in-process registry on loopback and fetched through the same code that
// fetches real ones.
type nodeTestArtifacts struct {
	lock     *artifacts.Lock
	lockPath string
	bundle   string
	// files holds the exact bytes of each stand-in snap and assertion
	// file, by the path artifacts.Install gives it in the image.
	files map[string][]byte
	// images holds each image artifact's OCI archive as the cache keeps it.
	images map[string][]byte
}

// standInSnaps are the snaps a node carries; the bytes say what they are.
var standInSnaps = []struct {
	name, channel string
	revision      int
}{
	{"snapd", "latest/stable", 90001},
	{"core22", "latest/stable", 90002},
	{"microk8s", "1.35/stable", 90003},
}

func makeNodeTestArtifacts(t *testing.T) *nodeTestArtifacts {
	t.Helper()
	dir := t.TempDir()
	src := &artifacts.Cache{Dir: filepath.Join(dir, "cache")}
	na := &nodeTestArtifacts{files: map[string][]byte{}, images: map[string][]byte{}}
	var arts []artifacts.Artifact
	put := func(data []byte) (string, int64) {
		sum := sha256.Sum256(data)
		d := "sha256:" + hex.EncodeToString(sum[:])
		if err := os.MkdirAll(filepath.Dir(src.Path(d)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(src.Path(d), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return d, int64(len(data))
	}
	// A nonce keeps each run's digests its own, so entries this test puts
	// in the shared cache are never mistaken for another run's.
	nonce := time.Now().UTC().Format(time.RFC3339Nano)
	for _, s := range standInSnaps {
		snap := []byte(fmt.Sprintf("stand-in snap for tests, not a squashfs: %s revision %d (%s)\n", s.name, s.revision, nonce))
		assert := []byte(fmt.Sprintf("stand-in assertions for tests, not signed: %s revision %d (%s)\n", s.name, s.revision, nonce))
		sd, sn := put(snap)
		ad, _ := put(assert)
		a := artifacts.Artifact{Kind: artifacts.KindSnap, Name: s.name, Version: "stand-in", Channel: s.channel, Revision: s.revision, Source: "snapstore", Digest: sd, Size: sn, Assertions: ad}
		arts = append(arts, a)
		p := artifacts.TreePath(a)
		na.files[p] = snap
		na.files[strings.TrimSuffix(p, ".snap")+".assert"] = assert
	}

	// The chart is a stand-in too (the published archive is not
	// reachable); the agent needs one to get past its own checks.
	chart := []byte(fmt.Sprintf("stand-in chart archive for tests, not a .tgz (%s)\n", nonce))
	cd, cn := put(chart)
	chartArt := artifacts.Artifact{Kind: artifacts.KindChart, Name: "traefik", Version: "stand-in", Source: "https://charts.invalid/traefik-stand-in.tgz", Digest: cd, Size: cn}
	arts = append(arts, chartArt)
	na.files[artifacts.TreePath(chartArt)] = chart

	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	for _, n := range []string{"coredns", "traefik", "apiserver2"} {
		img := randomAMD64Image(t)
		source := host + "/test/" + n + ":stand-in"
		ref, err := name.ParseReference(source)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatalf("pushing %s to the loopback registry: %v", source, err)
		}
		d, _ := img.Digest()
		raw, _ := img.RawManifest()
		arts = append(arts, artifacts.Artifact{Kind: artifacts.KindImage, Name: n, Version: "stand-in", Source: source, Digest: d.String(), Size: int64(len(raw))})
	}
	na.lock = &artifacts.Lock{File: "node-test.lock", Role: "node", Artifacts: arts}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := (&artifacts.Fetcher{Cache: src}).Fetch(ctx, na.lock); err != nil {
		t.Fatalf("fetching the test images from the loopback registry: %v", err)
	}
	for _, a := range arts {
		if a.Kind == artifacts.KindImage {
			b, err := os.ReadFile(src.Path(a.Digest))
			if err != nil {
				t.Fatal(err)
			}
			na.images[a.Name] = b
		}
	}
	lockData, err := na.lock.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	na.lockPath = filepath.Join(dir, "node-test-artifacts.lock")
	if err := os.WriteFile(na.lockPath, lockData, 0o644); err != nil {
		t.Fatal(err)
	}
	na.bundle = filepath.Join(dir, "node-test-artifacts.tar")
	if err := artifacts.WriteBundle(na.bundle, src, na.lock); err != nil {
		t.Fatalf("writing the bundle: %v", err)
	}
	return na
}

// digests lists every cache entry the lock names.
func (na *nodeTestArtifacts) digests() []string {
	var ds []string
	for _, a := range na.lock.Artifacts {
		ds = append(ds, a.Digest)
		if a.Assertions != "" {
			ds = append(ds, a.Assertions)
		}
	}
	return ds
}

func randomAMD64Image(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func buildAgent(t *testing.T) string {
	t.Helper()
	agent := filepath.Join(t.TempDir(), "appliance")
	cmd := exec.Command("go", "build", "-o", agent, "github.com/applbuild/applbuild/cmd/appliance")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the agent: %v\n%s", err, b)
	}
	return agent
}

// TestNodeImageFromBundleWithStandInSnaps bakes the node image the way
// `applbuild image node --bundle FILE --artifacts-lock FILE` does, from a
// bundle of stand-in snaps (no snap store is reachable here) and real OCI
// images, then reads the finished raw disk: the artifacts are carried
// byte for byte, MicroK8s is not installed, the agent's first-boot unit is
// enabled, and the image is sealed as the gateway's is. Its FirstBoot
// subtest then boots that disk with a node's seed, as far as stand-in
// snaps allow.
func TestNodeImageFromBundleWithStandInSnaps(t *testing.T) {
	testenv.Short(t, "bakes the node image")
	testenv.RequireRoot(t)
	for _, tool := range []string{"mmdebstrap", "mkfs.ext4", "mkfs.vfat", "mcopy", "sgdisk", "qemu-img", "debugfs", "go"} {
		testenv.RequireTool(t, tool)
	}
	na := makeNodeTestArtifacts(t)
	agent := buildAgent(t)
	out := t.TempDir()

	// The rootfs cache is shared with other builds; the artifact entries
	// this run imports into it are removed afterwards.
	shared, err := rootfs.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := &artifacts.Cache{Dir: shared}
		for _, d := range na.digests() {
			os.Remove(c.Path(d))
		}
	})

	c := &builder.Config{Role: "node", Formats: []string{"raw"}, OutputDir: out, AgentPath: agent, Version: "nodetest",
		Bundle: na.bundle, ArtifactsLock: na.lockPath}
	if err := c.Prepare(); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	lg := logrus.New()
	lg.SetOutput(testWriter{t})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	res, err := builder.Run(ctx, c, lg)
	if err != nil {
		t.Fatalf("baking the node image: %v", err)
	}
	if len(res.Outputs) != 1 || res.Outputs[0].Format != "raw" {
		t.Fatalf("outputs %+v; want one raw image", res.Outputs)
	}
	img, err := verify.OpenRaw(res.Outputs[0].Path)
	if err != nil {
		t.Fatal(err)
	}

	// Snaps and assertions, byte-equal to what went into the bundle.
	for p, want := range na.files {
		got, err := img.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s holds %d bytes %q; want the bundle's %d bytes", p, len(got), truncate(got), len(want))
		}
	}
	// Sideload archives: present, byte-equal, and still valid OCI
	// archives of the pinned manifest after the trip through the disk.
	for _, a := range na.lock.Artifacts {
		if a.Kind != artifacts.KindImage {
			continue
		}
		p := artifacts.TreePath(a)
		local := filepath.Join(t.TempDir(), a.Name+".tar")
		if err := img.Dump(p, local); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		got, _ := os.ReadFile(local)
		if !bytes.Equal(got, na.images[a.Name]) {
			t.Errorf("%s is %d bytes and differs from the cached archive (%d bytes)", p, len(got), len(na.images[a.Name]))
		}
		if err := artifacts.VerifyImageArchive(local, a.Digest); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// The lock and the image reference map the agent reads at first boot.
	lockData, err := img.ReadFile(filepath.Join(artifacts.TreeDir, artifacts.TreeLock))
	if err != nil {
		t.Fatalf("carried lock: %v", err)
	}
	carried, err := artifacts.ParseLock("image:"+artifacts.TreeLock, lockData)
	if err != nil {
		t.Fatalf("carried lock: %v", err)
	}
	if len(carried.Artifacts) != len(na.lock.Artifacts) {
		t.Errorf("carried lock has %d artifacts, the build's %d", len(carried.Artifacts), len(na.lock.Artifacts))
	}
	for i, a := range carried.Artifacts {
		if i < len(na.lock.Artifacts) && a != na.lock.Artifacts[i] {
			t.Errorf("carried lock entry %d is %+v; want %+v", i, a, na.lock.Artifacts[i])
		}
	}
	refData, err := img.ReadFile(filepath.Join(artifacts.TreeDir, artifacts.TreeImages))
	if err != nil {
		t.Fatalf("image reference map: %v", err)
	}
	var refs map[string]string
	if err := json.Unmarshal(refData, &refs); err != nil {
		t.Fatalf("image reference map %q: %v", refData, err)
	}
	for _, a := range na.lock.Artifacts {
		if a.Kind == artifacts.KindImage {
			if want := strings.TrimSuffix(a.Source, ":stand-in") + "@" + a.Digest; refs[a.Name] != want {
				t.Errorf("%s maps %s to %q; want %q", artifacts.TreeImages, a.Name, refs[a.Name], want)
			}
		}
	}

	// MicroK8s is carried, not installed: a clone must get its own node
	// name, CA and certificates at first boot.
	for _, p := range []string{"/var/snap/microk8s", "/snap/microk8s", "/snap/bin/microk8s", "/var/lib/snapd/snaps/microk8s_90003.snap"} {
		if _, err := img.ReadDir(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists in the image (%v): MicroK8s state was baked in", p, err)
		}
	}
	if es, _ := img.ReadDir("/var/lib/snapd/snaps"); len(es) > 0 {
		for _, e := range es {
			if e.Name != "partial" {
				t.Errorf("/var/lib/snapd/snaps/%s is installed in the image", e.Name)
			}
		}
	}
	if st, err := img.ReadFile("/var/lib/snapd/state.json"); err == nil && bytes.Contains(st, []byte("microk8s")) {
		t.Errorf("/var/lib/snapd/state.json mentions microk8s: %s", truncate(st))
	}
	if es, _ := img.ReadDir("/etc/systemd/system"); len(es) > 0 {
		for _, e := range es {
			if strings.HasPrefix(e.Name, "snap-microk8s") || strings.HasPrefix(e.Name, "snap.microk8s") {
				t.Errorf("/etc/systemd/system/%s: a MicroK8s snap mount or service is baked in", e.Name)
			}
		}
	}

	if es, _ := img.ReadDir("/etc/systemd/system/multi-user.target.wants"); !hasEntry(es, "appliance-apply.service") {
		t.Error("appliance-apply.service is not enabled")
	}
	if es, _ := img.ReadDir("/usr/bin"); !hasEntry(es, "appliance") {
		t.Error("the appliance agent is missing from /usr/bin")
	}
	checkSealedImage(t, img)

	t.Run("FirstBoot", func(t *testing.T) {
		nodeFirstBootWithStandInSnaps(t, res.Outputs[0].Path)
	})
}

// checkSealedImage checks what every appliance image must not carry: an
// identity, host keys, cloud-init or apt state, a usable password; and
// that cloud-init reads only the seed.
func checkSealedImage(t *testing.T, img *verify.RawImage) {
	t.Helper()
	mid, err := img.ReadFile("/etc/machine-id")
	if err != nil || len(mid) != 0 {
		t.Errorf("/etc/machine-id holds %q (%v); want an empty file", mid, err)
	}
	if _, err := img.ReadFile("/var/lib/dbus/machine-id"); err == nil {
		t.Error("/var/lib/dbus/machine-id exists")
	}
	ssh, _ := img.ReadDir("/etc/ssh")
	if len(ssh) == 0 {
		t.Error("/etc/ssh is empty or missing: openssh-server is not installed, so the host key check proves nothing")
	}
	for _, e := range ssh {
		if strings.HasPrefix(e.Name, "ssh_host_") {
			t.Errorf("SSH host key /etc/ssh/%s is baked in", e.Name)
		}
	}
	for _, dir := range []string{"/var/lib/cloud", "/var/lib/apt/lists", "/var/cache/apt/archives", "/etc/appliance", "/var/log/journal"} {
		es, _ := img.ReadDir(dir)
		for _, e := range es {
			if e.Name != "partial" && e.Name != "lock" {
				t.Errorf("%s/%s is in the image", dir, e.Name)
			}
		}
	}
	logs, _ := img.ReadDir("/var/log")
	for _, e := range logs {
		if strings.HasPrefix(e.Name, "cloud-init") {
			t.Errorf("/var/log/%s is in the image", e.Name)
		}
	}
	ds, err := img.ReadFile("/etc/cloud/cloud.cfg.d/99-applbuild-datasource.cfg")
	if err != nil || string(ds) != "datasource_list: [ NoCloud, None ]\n" {
		t.Errorf("datasource config %q (%v)", ds, err)
	}
	checkFirstBootTrimmed(t, img)
	// The seed's operator logs in with a key and has no password, so sudo
	// is the only way to root for diagnosis; the image must carry it.
	if st, err := img.Stat("/usr/bin/sudo"); err != nil || st.Mode&os.ModeSetuid == 0 {
		t.Errorf("/usr/bin/sudo is missing or not setuid (%+v, %v): the seed's operator could never become root", st, err)
	}
	shadow, err := img.ReadFile("/etc/shadow")
	if err != nil || len(shadow) == 0 {
		t.Fatalf("reading /etc/shadow: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(shadow)), "\n") {
		f := strings.Split(l, ":")
		if len(f) < 2 || !(strings.HasPrefix(f[1], "!") || f[1] == "*") {
			t.Errorf("account %s can log in with a password (%q)", f[0], f[1])
		}
	}
}

// checkFirstBootTrimmed checks what keeps work out of every clone's first
// boot: /etc and /var stamped as current with /usr (so ldconfig, the hwdb
// and the journal catalog are not rebuilt; systemd compares the stamp
// with /usr's mtime), the units no appliance needs masked, and cloud-init
// limited to the modules the seed uses.
func checkFirstBootTrimmed(t *testing.T, img *verify.RawImage) {
	t.Helper()
	usr, err := img.Stat("/usr")
	if err != nil {
		t.Fatalf("stat /usr: %v", err)
	}
	for _, p := range []string{"/etc/.updated", "/var/.updated"} {
		st, err := img.Stat(p)
		if err != nil {
			t.Errorf("%s: %v; without it the first boot rebuilds the linker cache and more", p, err)
			continue
		}
		if st.ModTime.Before(usr.ModTime) {
			t.Errorf("%s is older (%s) than /usr (%s): systemd would treat /etc or /var as out of date", p, st.ModTime, usr.ModTime)
		}
		// systemd reads the line only when the file system kept no
		// nanoseconds for the stamp but did for /usr; it must be right
		// then too.
		body, _ := img.ReadFile(p)
		if want := fmt.Sprintf("TIMESTAMP_NSEC=%d\n", usr.ModTime.UnixNano()); !strings.Contains(string(body), want) {
			t.Errorf("%s says %q; want the line %q", p, body, want)
		}
	}
	for _, unit := range []string{"systemd-binfmt.service", "e2scrub_reap.service"} {
		st, err := img.Stat("/etc/systemd/system/" + unit)
		if err != nil || st.LinkTarget != "/dev/null" {
			t.Errorf("%s is not masked (%+v, %v)", unit, st, err)
		}
	}
	cfg, err := img.ReadFile("/etc/cloud/cloud.cfg.d/90-appliance.cfg")
	if err != nil {
		t.Fatalf("cloud-init's appliance configuration: %v", err)
	}
	var mods struct {
		Init   []string `yaml:"cloud_init_modules"`
		Config []string `yaml:"cloud_config_modules"`
		Final  []string `yaml:"cloud_final_modules"`
	}
	if err := yaml.Unmarshal(cfg, &mods); err != nil {
		t.Fatalf("90-appliance.cfg: %v", err)
	}
	all := strings.Join(append(append(mods.Init, mods.Config...), mods.Final...), " ")
	for _, need := range []string{"write_files", "users_groups", "ssh", "set_hostname", "growpart"} {
		if !strings.Contains(" "+all+" ", " "+need+" ") {
			t.Errorf("cloud-init module %s, which the seed needs, is not in the image's lists (%s)", need, all)
		}
	}
	for _, never := range []string{"runcmd", "package_update_upgrade_install", "apt_configure", "snap", "ntp"} {
		if strings.Contains(" "+all+" ", " "+never+" ") {
			t.Errorf("cloud-init module %s runs at boot; an appliance changes by a new image", never)
		}
	}
}

func truncate(b []byte) []byte {
	if len(b) > 120 {
		return b[:120]
	}
	return b
}

// TestNodeImageRefusesAlteredBundle alters one layer byte of an image
// archive inside an otherwise valid bundle (stand-in snaps, as above): the
// build must stop in Prepare, naming the entry, before any root file system
// or disk work, and the altered archive must not enter the cache.
func TestNodeImageRefusesAlteredBundle(t *testing.T) {
	testenv.RequireTool(t, "go")
	na := makeNodeTestArtifacts(t)
	agent := buildAgent(t)
	var target artifacts.Artifact
	for _, a := range na.lock.Artifacts {
		if a.Kind == artifacts.KindImage {
			target = a
			break
		}
	}
	bad := filepath.Join(t.TempDir(), "altered.tar")
	alterImageLayer(t, na.bundle, bad, target.Digest)

	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	c := &builder.Config{Role: "node", Formats: []string{"raw"}, OutputDir: out, AgentPath: agent, CacheDir: cache,
		Bundle: bad, ArtifactsLock: na.lockPath}
	err := c.Prepare()
	if err == nil {
		t.Fatal("Prepare accepted a bundle whose image archive was altered")
	}
	t.Logf("refused: %v", err)
	msg := err.Error()
	for _, want := range []string{"artifacts/sha256/" + strings.TrimPrefix(target.Digest, "sha256:"), "image " + target.Name, "corrupt"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not mention %q", want)
		}
	}
	// Nothing was built or imported.
	for _, p := range []string{out, filepath.Join(cache, "rootfs"), filepath.Join(cache, "work")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a refused Prepare (%v)", p, err)
		}
	}
	ac := &artifacts.Cache{Dir: cache}
	for _, d := range na.digests() {
		if d == target.Digest && ac.Has(d) {
			t.Errorf("the altered archive %s entered the cache", d)
		}
	}

	// The same bundle unaltered passes, so the refusal is the alteration's.
	c2 := &builder.Config{Role: "node", Formats: []string{"raw"}, OutputDir: out, AgentPath: agent, CacheDir: t.TempDir(),
		Bundle: na.bundle, ArtifactsLock: na.lockPath}
	if err := c2.Prepare(); err != nil {
		t.Errorf("the unaltered bundle was refused: %v", err)
	}
}

// alterImageLayer copies bundle src to dst, flipping one byte in a layer
// blob of the image archive stored under digest.
func alterImageLayer(t *testing.T, src, dst, digest string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&out)
	altered := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "artifacts/sha256/"+strings.TrimPrefix(digest, "sha256:") {
			body = flipLayerByte(t, body, digest)
			altered = true
		}
		hdr.Size = int64(len(body))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if !altered {
		t.Fatalf("the bundle has no entry for %s", digest)
	}
	if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// flipLayerByte rewrites an OCI layout archive with one byte of the first
// blob that is neither the manifest nor JSON (a gzip layer) changed.
func flipLayerByte(t *testing.T, archive []byte, manifest string) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	done := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		// gzip streams start with 1f 8b; the manifest, config and index are JSON.
		if !done && strings.HasPrefix(hdr.Name, "blobs/sha256/") && hdr.Name != "blobs/sha256/"+strings.TrimPrefix(manifest, "sha256:") &&
			len(body) > 100 && body[0] == 0x1f && body[1] == 0x8b {
			body = append([]byte(nil), body...)
			body[len(body)/2] ^= 0xff
			done = true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if !done {
		t.Fatal("the image archive has no gzip layer to alter")
	}
	return out.Bytes()
}
