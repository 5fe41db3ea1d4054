package seeds

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kdomanski/iso9660"

	"github.com/applbuild/applbuild/roles/values"
	"github.com/applbuild/applbuild/verify/testenv"
)

func loadGood(t testing.TB, name string) *Site {
	t.Helper()
	dir := corpusDir(t, "good")
	s, err := Load(filepath.Join(dir, name), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func renderAll(t testing.TB, s *Site) []*Seed {
	t.Helper()
	var out []*Seed
	for _, vm := range s.VMs {
		sd, err := Render(s, vm)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sd)
	}
	return out
}

// readISO returns name -> content of the files in the image's root, as the
// iso9660 library reads them.
func readISO(t *testing.T, img []byte) (string, map[string][]byte) {
	t.Helper()
	r, err := iso9660.OpenImage(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	label, err := r.Label()
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	kids, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, k := range kids {
		b, err := io.ReadAll(k.Reader())
		if err != nil {
			t.Fatal(err)
		}
		files[k.Name()] = b
	}
	return label, files
}

func TestISORoundTripLibrary(t *testing.T) {
	s := loadGood(t, "basic.yaml")
	for _, sd := range renderAll(t, s) {
		img, err := sd.ISO()
		if err != nil {
			t.Fatal(err)
		}
		label, files := readISO(t, img)
		if label != VolumeLabel {
			t.Errorf("%s: label %q, want %q", sd.VM.Name, label, VolumeLabel)
		}
		want := map[string][]byte{MetaDataName: sd.MetaData, UserDataName: sd.UserData, NetworkConfigName: sd.NetworkConfig}
		if len(files) != len(want) {
			t.Errorf("%s: files %v, want exactly meta-data, network-config, user-data", sd.VM.Name, keys(files))
		}
		for name, data := range want {
			if !bytes.Equal(files[name], data) {
				t.Errorf("%s: %s read back differs from what was rendered", sd.VM.Name, name)
			}
		}
	}
}

// TestISONamesWithXorriso reads the written ISO with a real tool: the names it
// shows (ISO 9660 names with the ";1" version stripped, as Linux mounts them)
// must be exactly the three cloud-init looks for, and the content must match.
func TestISONamesWithXorriso(t *testing.T) {
	xorriso := testenv.RequireTool(t, "xorriso")
	s := loadGood(t, "basic.yaml")
	sd, err := Render(s, s.VMs[0])
	if err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(t.TempDir(), "seeds", "gw1.iso")
	if _, err := sd.WriteISO(iso); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xorriso, "-indev", iso, "-find", "/", "-type", "f").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "'/") {
			names = append(names, strings.Trim(l, "'/"))
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "meta-data,network-config,user-data" {
		t.Fatalf("xorriso lists %q; want exactly meta-data, network-config, user-data\n%s", names, out)
	}
	if !strings.Contains(string(out), "Volume id    : 'cidata'") {
		t.Errorf("xorriso does not report volume id cidata:\n%s", out)
	}
	dest := t.TempDir()
	if out, err := exec.Command(xorriso, "-osirrox", "on", "-indev", iso, "-extract", "/", dest).CombinedOutput(); err != nil {
		t.Fatalf("xorriso extract: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dest, "user-data"))
	if err != nil || !bytes.Equal(got, sd.UserData) {
		t.Fatalf("user-data extracted by xorriso differs from the rendered one (err %v)", err)
	}
}

func TestISOFileModes(t *testing.T) {
	s := loadGood(t, "basic.yaml")
	sd, err := Render(s, s.VMs[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out", "corp")
	iso := filepath.Join(dir, "gw1.iso")
	if _, err := sd.WriteISO(iso); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(iso)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("ISO mode %04o, want 0600: it carries the private key", fi.Mode().Perm())
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Errorf("output dir mode %04o, want 0700", di.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestISOIsReproducible(t *testing.T) {
	s1 := loadGood(t, "basic.yaml")
	a, err := Render(s1, s1.VMs[0])
	if err != nil {
		t.Fatal(err)
	}
	img1, _ := a.ISO()
	// The volume dates would differ by the wall clock; wait past a
	// centisecond and a second so a leaked timestamp would show.
	time.Sleep(1100 * time.Millisecond)
	img2, _ := a.ISO()
	if !bytes.Equal(img1, img2) {
		t.Fatal("the same seed rendered twice gives different ISO bytes")
	}
	// A fresh load of the same site files (same secrets, same keys) must give
	// the same bytes too: rendering depends only on the inputs.
	dir := t.TempDir()
	src := filepath.Dir(s1.File)
	copyTree(t, src, dir)
	s2, err := Load(filepath.Join(dir, "basic.yaml"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Render(s2, s2.VMs[0])
	img3, _ := b.ISO()
	if !bytes.Equal(img1, img3) {
		t.Fatal("the same site loaded from a copy gives different ISO bytes")
	}
}

func TestInstanceIDFollowsContent(t *testing.T) {
	s := loadGood(t, "basic.yaml")
	a, _ := Render(s, s.VMs[0])
	b, _ := Render(s, s.VMs[0])
	if a.InstanceID != b.InstanceID {
		t.Fatal("instance-id changes although nothing changed")
	}
	s.Gateway.RateLimits.Global.Requests++
	c, _ := Render(s, s.VMs[0])
	if c.InstanceID == a.InstanceID {
		t.Fatal("instance-id unchanged although the rendered seed changed; cloud-init would not re-apply it")
	}
	if !strings.Contains(string(c.MetaData), "instance-id: "+c.InstanceID+"\n") || !strings.Contains(string(c.MetaData), "local-hostname: gw1\n") {
		t.Fatalf("meta-data lacks instance-id or local-hostname:\n%s", c.MetaData)
	}
}

// TestUserDataCarriesOnlyWhatTheVMNeeds decodes the write_files of each seed
// the way cloud-init will and checks who gets which secret.
func TestUserDataCarriesOnlyWhatTheVMNeeds(t *testing.T) {
	for _, name := range []string{"basic.yaml", "node-tls.yaml"} {
		s := loadGood(t, name)
		gwKey, nodeKey := pemLine(s.TLS.KeyPEM), pemLine(s.TLS.NodeKeyPEM)
		if name == "node-tls.yaml" && nodeKey == "" {
			t.Fatalf("%s has no node key", name)
		}
		for _, sd := range renderAll(t, s) {
			ud := string(sd.UserData)
			if !strings.HasPrefix(ud, "#cloud-config\n") {
				t.Fatalf("%s: user-data does not start with #cloud-config", sd.VM.Name)
			}
			hasJWT := strings.Contains(ud, s.Secrets.Node.JWTSecret)
			hasGWKey := strings.Contains(ud, gwKey)
			hasNodeKey := nodeKey != "" && strings.Contains(ud, nodeKey)
			hasStats := strings.Contains(ud, s.Secrets.Gateway.StatsPassword)
			switch sd.VM.Role {
			case values.RoleGateway:
				if hasJWT || strings.Contains(ud, s.Secrets.Node.EncryptionKey) || hasNodeKey {
					t.Errorf("%s: gateway seed carries APIServer2/MicroK8s secrets or the nodes' TLS key", name)
				}
				if !hasGWKey || !hasStats {
					t.Errorf("%s: gateway seed lacks its TLS key or stats password", name)
				}
			case values.RoleNode:
				if hasGWKey || hasStats {
					t.Errorf("%s: %s seed carries the gateway's TLS key or stats password", name, sd.VM.Name)
				}
				if !hasJWT {
					t.Errorf("%s: %s seed lacks the APIServer2 JWT secret", name, sd.VM.Name)
				}
				if nodeKey != "" && !hasNodeKey {
					t.Errorf("%s: %s seed lacks the nodes' TLS key (node.tls)", name, sd.VM.Name)
				}
			}
			if !strings.Contains(ud, "path: /etc/appliance/secrets.json\n    owner: root:root\n    permissions: \"0600\"") {
				t.Errorf("%s: secrets.json is not written with mode 0600:\n%s", sd.VM.Name, ud)
			}
		}
	}
}

// pemLine is the first base64 line of a PEM file's body: text that shows
// the key is in a seed whether it is written as PEM or inside JSON.
func pemLine(b []byte) string {
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 {
		return ""
	}
	return lines[1]
}

// TestValuesRoundTrip writes each seed's /etc/appliance files as cloud-init
// would and loads them with the agent's reader.
func TestValuesRoundTrip(t *testing.T) {
	s := loadGood(t, "basic.yaml")
	for _, vm := range s.VMs {
		v, sec := s.Values(vm)
		dir := t.TempDir()
		b, _ := values.Marshal(v)
		os.WriteFile(filepath.Join(dir, values.SiteFile), b, 0o644)
		b, _ = values.Marshal(sec)
		os.WriteFile(filepath.Join(dir, values.SecretsFile), b, 0o600)
		got, err := values.LoadSite(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got.VM != vm.Name || got.Network.Address.Addr() != vm.IP || got.Network.Address.Bits() != 24 {
			t.Errorf("loaded %s/%s, want %s at %s/24", got.VM, got.Network.Address, vm.Name, vm.IP)
		}
		if vm.Role == values.RoleGateway {
			var gs values.GatewaySecrets
			if err := values.LoadSecrets(dir, &gs); err != nil || gs.StatsPassword != s.Secrets.Gateway.StatsPassword {
				t.Errorf("gateway secrets round trip: %v", err)
			}
			j, _ := json.Marshal(got.Gateway.Backends)
			if !strings.Contains(string(j), `"address":"10.30.0.21"`) {
				t.Errorf("gateway backends lost: %s", j)
			}
		}
	}
}

// TestCloudInitAcceptsSeeds runs Debian's cloud-init over every rendered
// user-data (schema check) and network-config (the network-state parser
// behind `devel net-convert`, the newest network check cloud-init 22.4 has),
// and checks the rendered networkd unit holds the VM's address.
func TestCloudInitAcceptsSeeds(t *testing.T) {
	ci := testenv.RequireTool(t, "cloud-init")
	for _, name := range goodSites(t) {
		s := loadGood(t, name)
		for _, sd := range renderAll(t, s) {
			dir := t.TempDir()
			ud := filepath.Join(dir, "user-data")
			nc := filepath.Join(dir, "network-config")
			os.WriteFile(ud, sd.UserData, 0o600)
			os.WriteFile(nc, sd.NetworkConfig, 0o600)
			out, err := exec.Command(ci, "schema", "-c", ud).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
				t.Errorf("%s/%s: cloud-init schema rejects user-data: %v\n%s", name, sd.VM.Name, err, out)
			}
			outDir := filepath.Join(dir, "net")
			out, err = exec.Command(ci, "devel", "net-convert", "-p", nc, "-k", "yaml", "-d", outDir, "-D", "debian", "-O", "networkd", "-m", "eth0,"+macOr(sd.VM.MAC)).CombinedOutput()
			if err != nil {
				t.Errorf("%s/%s: cloud-init rejects network-config: %v\n%s", name, sd.VM.Name, err, out)
				continue
			}
			units, _ := filepath.Glob(filepath.Join(outDir, "etc/systemd/network/*.network"))
			var all []byte
			for _, u := range units {
				b, _ := os.ReadFile(u)
				all = append(all, b...)
			}
			if !strings.Contains(string(all), "Address="+sd.VM.IP.String()+"/") || !strings.Contains(string(all), "Gateway="+s.Network.Gateway.String()) {
				t.Errorf("%s/%s: networkd config lacks the VM address or gateway:\n%s", name, sd.VM.Name, all)
			}
		}
	}
}

func macOr(m string) string {
	if m == "" {
		return "52:54:00:00:00:01"
	}
	return m
}

func goodSites(t testing.TB) []string {
	m, _ := filepath.Glob("testdata/good/*.yaml")
	var out []string
	for _, p := range m {
		out = append(out, filepath.Base(p))
	}
	if len(out) == 0 {
		t.Fatal("no good sites in testdata/good")
	}
	return out
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSeedISO renders and writes one VM's seed ISO, the unit of work of
// `applbuild seed`. Target: under 50 ms per VM.
func BenchmarkSeedISO(b *testing.B) {
	s := loadGood(b, "basic.yaml")
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sd, err := Render(s, s.VMs[0])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sd.WriteISO(filepath.Join(dir, "gw1.iso")); err != nil {
			b.Fatal(err)
		}
	}
}
