package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"github.com/applbuild/applbuild/builder"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/builder/rootfs"
	"github.com/applbuild/applbuild/images"
	"github.com/applbuild/applbuild/roles"
	"github.com/applbuild/applbuild/seeds"
	"github.com/applbuild/applbuild/verify"
	"github.com/applbuild/applbuild/verify/qemu"
)

// BootResult compares three ways to reach a serving gateway under the same
// emulator in the same run.
type BootResult struct {
	// Floor is the gateway image with no seed, to the console login
	// prompt (systemd's default target reached, getty started).
	Floor []BootRun `json:"floor"`
	// Seeded is the gateway image with a site seed, to the first 200
	// through HAProxy to a backend on this host.
	Seeded []BootRun `json:"seeded"`
	// Install is the base system without the role, with a cloud-init
	// runcmd that installs HAProxy from the Debian archive and writes its
	// config, to the first 200 through it.
	Install []BootRun `json:"install"`
	// InstallBase says exactly what the install-at-first-boot image holds.
	InstallBase string `json:"install_base"`
	// BaseBuild is how long the install-at-first-boot image took to make.
	BaseBuild float64 `json:"base_build_s,omitempty"`
	// Where is the seeded boot's time split by what the console showed:
	// the slowest units and the longest silent gaps.
	Where *Timeline `json:"where,omitempty"`
	Error string    `json:"error,omitempty"`
}

// BootRun is one boot: its milestones in seconds from QEMU's start, the
// total (the last milestone, or 0 when the boot failed) and how the
// emulator ran it.
type BootRun struct {
	Milestones map[string]float64 `json:"milestones"`
	Total      float64            `json:"total_s"`
	Accel      string             `json:"accel"`
	CPU        string             `json:"cpu"`
	Attempts   int                `json:"attempts"`
	Error      string             `json:"error,omitempty"`
}

// Totals are the totals of the boots that finished.
func Totals(runs []BootRun) Seconds {
	var s Seconds
	for _, r := range runs {
		if r.Error == "" && r.Total > 0 {
			s = append(s, r.Total)
		}
	}
	return s
}

// BootOptions says what to boot and how often.
type BootOptions struct {
	// Image is the gateway qcow2 to boot.
	Image string
	// Work holds seeds, consoles and the install-at-first-boot image.
	Work string
	// Cache is the rootfs cache for the base image (warm from the
	// gateway builds, so only the packages that differ are new).
	Cache string
	// Runs is how many rounds of (floor, seeded, install) to boot;
	// InstallRuns, when smaller, limits the install-at-first-boot boots
	// (the slowest) to the first rounds.
	Runs, InstallRuns int
	// Accel is auto, kvm or tcg.
	Accel string
	// Timeout bounds each boot.
	Timeout time.Duration
	// Progress, when set, is called after each boot with the results so
	// far, so an interrupted run keeps what it measured.
	Progress func(*BootResult)
}

// removedForInstall are the gateway packages the install-at-first-boot
// image leaves out: what the runcmd installs, and what the role adds
// around it.
var removedForInstall = []string{"haproxy", "lua5.4", "keepalived"}

// MeasureBoots boots, in rounds, the gateway image without a seed, the
// gateway image with a site seed, and a base image that installs HAProxy
// at first boot, each bounded by o.Timeout, and records their milestones.
func MeasureBoots(ctx context.Context, o BootOptions, log logrus.FieldLogger) *BootResult {
	r := &BootResult{}
	if err := os.MkdirAll(o.Work, 0o755); err != nil {
		r.Error = err.Error()
		return r
	}
	port, stop, err := backend()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer stop()
	key, pub, err := benchKey(ctx, o.Work, log)
	if err != nil {
		r.Error = fmt.Sprintf("SSH key for the boot analysis: %v", err)
		return r
	}
	seedISO, netcfg, err := siteSeed(o.Work, port, pub)
	if err != nil {
		r.Error = fmt.Sprintf("site seed: %v", err)
		return r
	}
	start := time.Now()
	base, desc, err := buildInstallBase(ctx, o.Work, o.Cache, log)
	r.InstallBase = desc
	if err != nil {
		r.Error = fmt.Sprintf("install-at-first-boot image: %v", err)
		return r
	}
	r.BaseBuild = time.Since(start).Seconds()
	installISO, err := installSeed(o.Work, port, netcfg)
	if err != nil {
		r.Error = fmt.Sprintf("install seed: %v", err)
		return r
	}
	progress := func() {
		if o.Progress != nil {
			o.Progress(r)
		}
	}
	if o.InstallRuns <= 0 || o.InstallRuns > o.Runs {
		o.InstallRuns = o.Runs
	}
	for i := 0; i < o.Runs && ctx.Err() == nil; i++ {
		dir := func(kind string) string { return filepath.Join(o.Work, fmt.Sprintf("%s-%d", kind, i+1)) }
		r.Floor = append(r.Floor, bootFloor(ctx, o, dir("floor"), log))
		progress()
		// The first seeded boot that serves is also analysed from inside;
		// the SSH session starts after its first 200, so the figure is
		// not affected.
		analyse := ""
		if r.Where == nil {
			analyse = key
		}
		run, tl := bootSeeded(ctx, o, seedISO, dir("seeded"), analyse, log)
		r.Seeded = append(r.Seeded, run)
		if r.Where == nil && run.Error == "" {
			r.Where = tl
		}
		progress()
		if i < o.InstallRuns {
			r.Install = append(r.Install, bootInstall(ctx, o, base, installISO, dir("install"), log))
			progress()
		}
	}
	return r
}

func fromVM(vm *qemu.VM) BootRun {
	b := BootRun{Milestones: map[string]float64{}, Accel: vm.Accel, CPU: vm.CPUModel, Attempts: len(vm.Attempts)}
	for _, ev := range vm.Events() {
		if _, ok := b.Milestones[ev.Name]; !ok {
			b.Milestones[ev.Name] = ev.At.Seconds()
		}
	}
	return b
}

func bootFloor(ctx context.Context, o BootOptions, dir string, log logrus.FieldLogger) BootRun {
	log.Info("boot: gateway image, no seed, to the login prompt")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return BootRun{Error: err.Error()}
	}
	vm, err := qemu.Boot(ctx, qemu.BootOptions{Disk: o.Image, Accel: o.Accel, Snapshot: true, WorkDir: dir, Timeout: o.Timeout})
	if err != nil {
		return BootRun{Error: err.Error()}
	}
	defer vm.Stop()
	b := fromVM(vm)
	b.Total = b.Milestones[qemu.EventLogin]
	log.Infof("boot: floor %.1fs (%s)", b.Total, vm.Accel)
	return b
}

// bootSeeded boots the gateway with the site seed; with an SSH key it
// then runs systemd-analyze and cloud-init analyze in the guest.
func bootSeeded(ctx context.Context, o BootOptions, seed, dir, sshKey string, log logrus.FieldLogger) (BootRun, *Timeline) {
	log.Info("boot: gateway image with a site seed, to the first 200")
	rec := recordConsole(filepath.Join(dir, "serial.log"))
	rep, err := verify.Boot(ctx, verify.Options{Image: o.Image, Seed: seed, Accel: o.Accel, WorkDir: dir, Timeout: o.Timeout, ExtraForwards: []int{22}})
	lines := rec.stop()
	if err != nil {
		return BootRun{Error: err.Error()}, nil
	}
	defer rep.VM.Stop()
	b := fromVM(rep.VM)
	for _, m := range rep.Milestones {
		b.Milestones[m.Name] = m.At.Seconds()
	}
	b.Total = b.Milestones["first 200"]
	if b.Total == 0 {
		b.Error = "no 200 through the gateway: " + failedProbes(rep)
	}
	log.Infof("boot: seeded %.1fs (%s)", b.Total, rep.VM.Accel)
	tl := Analyse(lines)
	if sshKey != "" && b.Error == "" {
		tl.Guest, err = analyseGuest(ctx, rep.Forwards[22], rep.Seed.SSHUser, sshKey, 3*time.Minute, log)
		if err != nil {
			tl.GuestError = err.Error()
			log.Warnf("boot analysis: %v", err)
		}
	}
	return b, tl
}

func failedProbes(r *verify.Report) string {
	var s []string
	for _, p := range r.Probes {
		if !p.OK {
			s = append(s, p.Name+": "+p.Detail)
		}
	}
	return strings.Join(s, "; ")
}

// installReady is what the install-at-first-boot runcmd prints on the
// console once HAProxy runs with its config.
const installReady = "BENCH-HAPROXY-INSTALLED"

func bootInstall(ctx context.Context, o BootOptions, image, seed, dir string, log logrus.FieldLogger) BootRun {
	log.Info("boot: base image installing HAProxy at first boot, to the first 200")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return BootRun{Error: err.Error()}
	}
	hp, err := qemu.FreeLocalPort()
	if err != nil {
		return BootRun{Error: err.Error()}
	}
	vm, err := qemu.Boot(ctx, qemu.BootOptions{
		Disk: image, SeedISO: seed, Accel: o.Accel, Snapshot: true, WorkDir: dir,
		// The prefix ends the wait on success and on failure alike.
		Timeout: o.Timeout, HangTimeout: 10 * time.Minute, ReadyMarker: "BENCH-HAPROXY-",
		HostForwards: []qemu.Forward{{HostPort: hp, GuestPort: 80}},
		Network:      siteNetwork(),
	})
	if err != nil {
		return BootRun{Error: err.Error()}
	}
	defer vm.Stop()
	b := fromVM(vm)
	if console, _ := os.ReadFile(vm.SerialLog); !strings.Contains(string(console), installReady) {
		b.Error = "the runcmd could not install or start HAProxy (BENCH-HAPROXY-FAILED on the console " + vm.SerialLog + ")"
		return b
	}
	at, err := first200(ctx, fmt.Sprintf("http://127.0.0.1:%d/api/health", hp), vm.Started, 2*time.Minute)
	if err != nil {
		b.Error = err.Error()
		return b
	}
	b.Milestones["first 200"] = at.Seconds()
	b.Total = at.Seconds()
	log.Infof("boot: install-at-first-boot %.1fs (%s)", b.Total, vm.Accel)
	return b
}

// first200 polls url once a second until it answers 200 or wait passes,
// and returns the time of the 200 since started.
func first200(ctx context.Context, url string, started time.Time, wait time.Duration) (time.Duration, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(wait)
	last := ""
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(started), nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(time.Second)
	}
	return 0, fmt.Errorf("GET %s never answered 200 within %s (last: %s)", url, wait, last)
}

// backend is the node behind the gateway: an HTTPS server on this host's
// loopback that the guest reaches at the site router (QEMU's user network
// maps 10.0.2.2 to the host).
func backend() (int, func(), error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return 0, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return 0, nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		return 0, nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"path\":%q}\n", r.URL.Path)
	})}
	go srv.Serve(ln)
	return ln.Addr().(*net.TCPAddr).Port, func() { srv.Close() }, nil
}

const benchSite = `site: bench
domain: bench.test
network:
  cidr: 10.0.2.0/24
  gateway: 10.0.2.2
  dns: [10.0.2.3]
management:
  cidrs: [10.0.2.0/24]
ssh:
  authorized_keys:
    - %s
vms:
  - { name: gwbench, role: gateway, ip: 10.0.2.15, mac: "52:54:00:0a:00:0f" }
gateway:
  server_names: [api.bench.test]
  tls: { certificate: bench/api.crt, key: bench/api.key }
  backends:
    - { name: host, address: 10.0.2.2, port: %d }
secrets: bench/secrets.yaml
`

// siteSeed writes a one-gateway site whose backend is this host and its
// seed; it returns the ISO and the seed's network-config, which the
// install-at-first-boot seed reuses so both guests get the same network.
func siteSeed(dir string, port int, sshKey string) (string, []byte, error) {
	site := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(site, []byte(fmt.Sprintf(benchSite, sshKey, port)), 0o644); err != nil {
		return "", nil, err
	}
	if _, err := seeds.Keygen(site, time.Now()); err != nil {
		return "", nil, err
	}
	s, err := seeds.Load(site, seeds.LoadOptions{})
	if err != nil {
		return "", nil, err
	}
	sd, err := seeds.Render(s, s.VMs[0])
	if err != nil {
		return "", nil, err
	}
	iso := filepath.Join(dir, "gwbench.iso")
	if _, err := sd.WriteISO(iso); err != nil {
		return "", nil, err
	}
	return iso, sd.NetworkConfig, nil
}

func siteNetwork() *qemu.UserNetwork {
	return &qemu.UserNetwork{Prefix: netip.MustParsePrefix("10.0.2.0/24"), Router: netip.MustParseAddr("10.0.2.2"),
		GuestIP: netip.MustParseAddr("10.0.2.15"), DNS: netip.MustParseAddr("10.0.2.3"), MAC: "52:54:00:0a:00:0f"}
}

// installUserData is what the seed scripts of the install-at-first-boot
// approach do: install HAProxy from the archive at boot, write its config,
// restart it. The backend is the same host server the gateway uses.
const installUserData = `#cloud-config
write_files:
  - path: /etc/haproxy/haproxy.cfg
    content: |
      global
        log stdout format raw local0
      defaults
        mode http
        timeout connect 5s
        timeout client 30s
        timeout server 30s
      frontend api
        bind :80
        default_backend nodes
      backend nodes
        server host 10.0.2.2:%d ssl verify none
runcmd:
  - [ sh, -c, 'export DEBIAN_FRONTEND=noninteractive; apt-get update && apt-get install -y -o Dpkg::Options::=--force-confold haproxy && systemctl restart haproxy && echo %s > /dev/console || echo BENCH-HAPROXY-FAILED > /dev/console' ]
`

func installSeed(dir string, port int, netcfg []byte) (string, error) {
	sd := &seeds.Seed{
		InstanceID:    "bench-install-1",
		MetaData:      []byte("instance-id: bench-install-1\nlocal-hostname: gwinstall\n"),
		UserData:      []byte(fmt.Sprintf(installUserData, port, installReady)),
		NetworkConfig: netcfg,
	}
	iso := filepath.Join(dir, "install.iso")
	_, err := sd.WriteISO(iso)
	return iso, err
}

// buildInstallBase makes the install-at-first-boot image: the gateway's
// package list without HAProxy, Lua and keepalived, none of the role's
// files or agent, sealed as the builder seals (empty machine-id, no SSH
// host keys, no cloud-init state, no apt lists), as a qcow2 like the
// gateway's.
func buildInstallBase(ctx context.Context, work, cache string, log logrus.FieldLogger) (string, string, error) {
	role, err := roles.Load("gateway")
	if err != nil {
		return "", "", err
	}
	spec, err := rootfs.FromRole(role, "")
	if err != nil {
		return "", "", err
	}
	var kept []string
	for _, p := range spec.Packages {
		if !contains(removedForInstall, p) {
			kept = append(kept, p)
		}
	}
	spec.Packages = kept
	ms, err := rootfs.MirrorsFromEnv()
	if err != nil {
		return "", "", err
	}
	spec = spec.WithMirrors(ms)
	desc := fmt.Sprintf("%s (%s) with the gateway role's sources and pins and its package list minus %s: %s; no role files, no agent; sealed by the gateway's own seal (empty machine-id, no SSH host keys, no cloud-init state, no apt lists, datasource NoCloud, passwords locked, /etc and /var marked current) but none of the role's boot trimming",
		spec.Suite, spec.Variant, strings.Join(removedForInstall, ", "), strings.Join(kept, " "))
	log.Info("building the install-at-first-boot base image")
	tar, err := rootfs.Build(ctx, spec, cache)
	if err != nil {
		return "", desc, err
	}
	tree := filepath.Join(work, "base-tree")
	defer os.RemoveAll(tree)
	if err := rootfs.Extract(ctx, tar, tree); err != nil {
		return "", desc, err
	}
	if err := builder.Seal(tree); err != nil {
		return "", desc, err
	}
	raw := filepath.Join(work, "base.raw")
	defer os.Remove(raw)
	if _, err := images.Assemble(ctx, images.AssembleOptions{RootTree: tree, Out: raw, Size: 8 << 30}); err != nil {
		return "", desc, err
	}
	out := filepath.Join(work, "base.qcow2")
	if err := images.Convert(ctx, raw, images.Format("qcow2"), out); err != nil {
		return "", desc, err
	}
	return out, desc, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
