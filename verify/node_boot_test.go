package verify_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/roles/node"
	"github.com/applbuild/applbuild/seeds"
	"github.com/applbuild/applbuild/verify"
	"github.com/applbuild/applbuild/verify/qemu"
	"github.com/applbuild/applbuild/verify/testenv"
)

// Environment of the node boot test: a bundle made by
// `applbuild fetch node --bundle FILE` on a machine that reaches the snap
// store and the registries, and optionally the lock it was made from when
// that is not roles/node/artifacts.lock.
const (
	envNodeBundle = "APPLBUILD_NODE_BUNDLE"
	envNodeLock   = "APPLBUILD_NODE_LOCK"
)

const nodeSiteTemplate = `site: nodeboot
domain: verify.test
network:
  cidr: 10.0.2.0/24
  gateway: 10.0.2.2
  dns: [10.0.2.3]
# The probe's forwarded connections arrive from the site router (10.0.2.2);
# the node's firewall admits the ingress port from management networks.
management:
  cidrs: [10.0.2.0/24]
ssh:
  authorized_keys:
    - %s
vms:
  - { name: gwnode, role: gateway, ip: 10.0.2.10, mac: "52:54:00:0a:00:0a" }
  - { name: nodeboot, role: node, ip: 10.0.2.15, mac: "52:54:00:0a:00:0f" }
gateway:
  server_names: [api.verify.test]
  tls: { certificate: nodeboot/api.crt, key: nodeboot/api.key }
secrets: nodeboot/secrets.yaml
`

// TestNodeImageBootsAndServesRealSnaps bakes the node image from a bundle
// of the real MicroK8s snaps and images, boots it with a node's seed, and
// asks APIServer2's health path through Traefik on the ingress port: the
// whole offline first boot (snap install, launch configuration, sideloaded
// images, Traefik's chart, the manifests, the agent's ready marker). It
// needs real snaps, which only a machine that reaches the snap store can
// fetch, so without a bundle it is skipped and says why.
func TestNodeImageBootsAndServesRealSnaps(t *testing.T) {
	bundle := os.Getenv(envNodeBundle)
	if bundle == "" {
		t.Skipf("needs the real MicroK8s snaps, which come only from the snap store (unreachable from this machine): "+
			"run `applbuild fetch node --bundle node-artifacts.tar` on a connected machine, then set %s to that file "+
			"(and %s to its lock if it is not roles/node/artifacts.lock)", envNodeBundle, envNodeLock)
	}
	testenv.RequireRoot(t)
	for _, tool := range []string{"mmdebstrap", "qemu-system-x86_64", "qemu-img", "mkfs.ext4", "sgdisk"} {
		testenv.RequireTool(t, tool)
	}
	lockPath := os.Getenv(envNodeLock)
	if lockPath == "" {
		lockPath = filepath.Join("..", "roles", "node", "artifacts.lock")
	}
	agent := buildAgent(t)
	out := t.TempDir()
	c := &builder.Config{Role: "node", Formats: []string{"qcow2"}, OutputDir: out, AgentPath: agent, Version: "nodeboot",
		Bundle: bundle, ArtifactsLock: lockPath}
	if err := c.Prepare(); err != nil {
		t.Fatalf("the bundle in %s does not serve the lock %s: %v", envNodeBundle, lockPath, err)
	}
	lg := logrus.New()
	lg.SetOutput(testWriter{t})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	res, err := builder.Run(ctx, c, lg)
	if err != nil {
		t.Fatalf("baking the node image: %v", err)
	}

	dir := t.TempDir()
	iso := writeNodeSeed(t, dir, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlsHPMCCPdpRZ9kwwuxpRvi0d2Ec92z9jlHZ+y7sjsE ops@verify.test")

	// MicroK8s installs and starts its pods at first boot; under emulation
	// that takes many minutes, so the agent and the probe get long bounds.
	r, err := verify.Boot(ctx, verify.Options{Image: res.Outputs[0].Path, Seed: iso, WorkDir: filepath.Join(dir, "vm"),
		Timeout: 75 * time.Minute, ServeTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatalf("booting the node image: %v", err)
	}
	defer r.VM.Stop()
	t.Log(r.String())
	for _, p := range r.Probes {
		if !p.OK {
			t.Errorf("probe %s failed: %s (console: %s)", p.Name, p.Detail, r.SerialLog)
		}
	}
}

// writeNodeSeed writes the node boot site (operator key sshKey) and the
// seed of its node, nodeboot; it returns the ISO.
func writeNodeSeed(t *testing.T, dir, sshKey string) string {
	t.Helper()
	site := filepath.Join(dir, "nodeboot.yaml")
	if err := os.WriteFile(site, []byte(fmt.Sprintf(nodeSiteTemplate, sshKey)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := seeds.Keygen(site, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := seeds.Load(site, seeds.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, vm := range s.VMs {
		if vm.Name != "nodeboot" {
			continue
		}
		sd, err := seeds.Render(s, vm)
		if err != nil {
			t.Fatal(err)
		}
		iso := filepath.Join(dir, "nodeboot.iso")
		if _, err := sd.WriteISO(iso); err != nil {
			t.Fatal(err)
		}
		return iso
	}
	t.Fatal("the node boot site has no VM nodeboot")
	return ""
}

// nodeFirstBootWithStandInSnaps boots a node image baked from stand-in
// snaps with a node's seed. Everything before MicroK8s is real and must
// work: firmware, kernel, cloud-init applying the seed, the agent reading
// the values, rendering the launch configuration, Traefik's values and the
// manifests, checking and loading the firewall, and reaching snapd. The
// stand-in assertions must then be refused by the real snapd, and the agent
// must say so on the console with APPLIANCE-FAILED; nothing is installed.
func nodeFirstBootWithStandInSnaps(t *testing.T, image string) {
	for _, tool := range []string{"qemu-system-x86_64", "ssh", "ssh-keygen"} {
		testenv.RequireTool(t, tool)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nodeboot-test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	iso := writeNodeSeed(t, dir, strings.TrimSpace(string(pub)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	r, err := verify.Boot(ctx, verify.Options{Image: image, Seed: iso, WorkDir: filepath.Join(dir, "vm"), ExtraForwards: []int{22}, Timeout: 20 * time.Minute})
	if err != nil {
		t.Fatalf("booting the node image: %v", err)
	}
	defer r.VM.Stop()
	t.Log(r.String())
	// The agent got as far as snapd, which refused the stand-in
	// assertions; it said so and stopped.
	want := verify.FailedMarker + " role=node site=nodeboot vm=nodeboot: MicroK8s: snap ack " + node.ArtifactsDir + "/snaps/snapd.assert"
	if got := probeDetail(r, "agent"); !strings.HasPrefix(got, want) {
		t.Errorf("the agent's console line is %q; want it to start %q", got, want)
	}
	if p := probe(r, "hostname"); p == nil || !p.OK {
		t.Errorf("hostname: %+v", p)
	}
	// Only the agent's unit failed: everything the seed and the image
	// start before it came up.
	console, _ := os.ReadFile(r.SerialLog)
	for _, l := range strings.Split(string(console), "\n") {
		l = qemu.CleanLine(l)
		if strings.Contains(l, "[FAILED]") && !strings.Contains(l, "appliance-apply.service") {
			t.Errorf("a unit other than the agent's failed: %s", strings.TrimSpace(l))
		}
	}

	ssh := func(cmd string) string {
		t.Helper()
		_, port, _ := net.SplitHostPort(r.Forwards[22])
		var out []byte
		var err error
		for i := 0; i < 12; i++ {
			out, err = exec.CommandContext(ctx, "ssh", "-i", key, "-p", port, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
				"-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "ops@127.0.0.1", cmd).Output()
			if err == nil {
				return string(out)
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() != 255 {
				break // the command ran and failed; retrying will not help
			}
			time.Sleep(5 * time.Second)
		}
		t.Errorf("ssh %q: %v: %s", cmd, err, out)
		return ""
	}
	// The generation the agent installed, with the launch configuration
	// MicroK8s would read, written where it reads it, private.
	gen := "/var/lib/appliance/node/current"
	for _, f := range []string{"microk8s.yaml", "traefik-values.yaml", "manifests/traefik-namespace.yaml", "manifests/apiserver2.yaml", "nftables.conf"} {
		ssh("sudo test -s " + gen + "/" + f)
	}
	if mode := strings.TrimSpace(ssh("sudo stat -c %a /var/snap/microk8s/common/.microk8s.yaml")); mode != "600" {
		t.Errorf("the launch configuration for MicroK8s has mode %q; want 600 (it names the encryption key file)", mode)
	}
	lc, err := node.ParseLaunchConfig([]byte(ssh("sudo cat /var/snap/microk8s/common/.microk8s.yaml")))
	if err != nil {
		t.Errorf("the launch configuration on the node: %v", err)
	} else if sans := strings.Join(lc.ExtraSANs, ","); !strings.Contains(sans, "10.0.2.15") || !strings.Contains(sans, "nodeboot") {
		t.Errorf("extraSANs %q lack the node's address or name", sans)
	}
	// The node firewall is loaded (SSH came in through it from the
	// management network), and snapd refused the stand-in assertions:
	// nothing is installed.
	// (The site's management network holds the gateway, so it alone
	// admits both.)
	if out := ssh("sudo nft list table inet appliance_node"); !strings.Contains(out, "tcp dport 443 ip saddr @ingress_sources accept") ||
		!strings.Contains(out, "10.0.2.0/24") {
		t.Errorf("the node's firewall table is not loaded with the ingress rule and the site's sources:\n%s", out)
	}
	// The seed's secrets arrived, readable by root only.
	if mode := strings.TrimSpace(ssh("sudo stat -c %a /etc/appliance/secrets.json")); mode != "600" {
		t.Errorf("/etc/appliance/secrets.json has mode %q; want 600", mode)
	}
	if out := ssh("snap list 2>&1 || true"); strings.Contains(out, "microk8s") {
		t.Errorf("MicroK8s is installed from stand-in snaps:\n%s", out)
	}
}

func probe(r *verify.Report, name string) *verify.Probe {
	for i := range r.Probes {
		if r.Probes[i].Name == name {
			return &r.Probes[i]
		}
	}
	return nil
}

func probeDetail(r *verify.Report, name string) string {
	if p := probe(r, name); p != nil {
		return p.Detail
	}
	return ""
}
