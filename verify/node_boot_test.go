package verify_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/seeds"
	"github.com/applbuild/applbuild/verify"
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
    - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlsHPMCCPdpRZ9kwwuxpRvi0d2Ec92z9jlHZ+y7sjsE ops@verify.test
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
	site := filepath.Join(dir, "nodeboot.yaml")
	if err := os.WriteFile(site, []byte(nodeSiteTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := seeds.Keygen(site, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := seeds.Load(site, seeds.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var node seeds.VM
	for _, vm := range s.VMs {
		if vm.Name == "nodeboot" {
			node = vm
		}
	}
	sd, err := seeds.Render(s, node)
	if err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "nodeboot.iso")
	if _, err := sd.WriteISO(iso); err != nil {
		t.Fatal(err)
	}

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
