package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
)

// MicroK8sLaunchConfigPath is where the microk8s snap looks for a launch
// configuration when it is installed.
const MicroK8sLaunchConfigPath = "/var/snap/microk8s/common/.microk8s.yaml"

// SystemHost runs the node's real programs: nft, snap and microk8s (with
// its kubectl, ctr and helm). Each is called through run, which logs the
// command line and returns the tail of stderr in its error.
type SystemHost struct {
	Log       logrus.FieldLogger
	Artifacts string // default ArtifactsDir
}

func (h SystemHost) run(ctx context.Context, stdin io.Reader, name string, args ...string) error {
	h.Log.Debugf("run: %s %s", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		t := strings.TrimSpace(stderr.String())
		if len(t) > 2000 {
			t = t[len(t)-2000:]
		}
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, t)
	}
	return nil
}

// CheckNftables implements Host.
func (h SystemHost) CheckNftables(ctx context.Context, file string) error {
	return h.run(ctx, nil, "nft", "-c", "-f", file)
}

// LoadFirewall implements Host.
func (h SystemHost) LoadFirewall(ctx context.Context) error {
	return h.run(ctx, nil, "nft", "-f", "/etc/nftables.conf")
}

// EnsureMicroK8s implements Host: on first boot it acknowledges the
// carried assertions and installs snapd, the base and MicroK8s from the
// image's files (no store access), with the launch configuration in place
// beforehand; refreshes are held so the two nodes never update on their
// own. Later runs only wait for MicroK8s to be ready.
func (h SystemHost) EnsureMicroK8s(ctx context.Context, launchConfig string) error {
	art := h.Artifacts
	if art == "" {
		art = ArtifactsDir
	}
	if _, err := os.Stat("/snap/bin/microk8s"); err != nil {
		snaps, err := snapFiles(art)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(launchConfig)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(MicroK8sLaunchConfigPath), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(MicroK8sLaunchConfigPath, data, 0o600); err != nil {
			return err
		}
		for _, s := range snaps {
			if err := h.run(ctx, nil, "snap", "ack", s[1]); err != nil {
				return err
			}
			args := []string{"install"}
			if strings.HasPrefix(filepath.Base(s[0]), "microk8s") {
				args = append(args, "--classic")
			}
			if err := h.run(ctx, nil, "snap", append(args, s[0])...); err != nil {
				return err
			}
		}
		if err := h.run(ctx, nil, "snap", append([]string{"refresh", "--hold"}, SnapOrder...)...); err != nil {
			return err
		}
	}
	return h.run(ctx, nil, "/snap/bin/microk8s", "status", "--wait-ready", "--timeout", "900")
}

// ImportImages implements Host with MicroK8s's containerd client, into
// the namespace the kubelet uses.
func (h SystemHost) ImportImages(ctx context.Context, archives []string) error {
	for _, a := range archives {
		if err := h.run(ctx, nil, "/snap/bin/microk8s", "ctr", "--namespace", "k8s.io", "images", "import", "--all-platforms", a); err != nil {
			return err
		}
	}
	return nil
}

// ApplyManifests implements Host. Server-side apply makes re-runs no-ops.
func (h SystemHost) ApplyManifests(ctx context.Context, files []string) error {
	for _, f := range files {
		if err := h.run(ctx, nil, "/snap/bin/microk8s", "kubectl", "apply", "--server-side", "--force-conflicts", "-f", f); err != nil {
			return err
		}
	}
	return nil
}

// chartTimeout bounds how long helm waits for the release's pods; the
// image is sideloaded, so this covers scheduling and probes, not pulls.
const chartTimeout = "10m"

// InstallChart implements Host with the Helm 3 client MicroK8s ships
// (`microk8s helm`), from the local archive, offline. `upgrade --install`
// makes one command serve the first boot and later changes; --reset-values
// means the release's values are exactly the chart's defaults plus the
// rendered file, never ones left from an earlier revision. --skip-crds
// because the routes are standard Ingress objects and Traefik's CRD
// provider is off. --wait turns a Traefik that never becomes ready into an
// error naming the release.
func (h SystemHost) InstallChart(ctx context.Context, release, namespace, chart, values string) error {
	return h.run(ctx, nil, "/snap/bin/microk8s", "helm", "upgrade", "--install", release, chart,
		"--namespace", namespace, "--values", values, "--reset-values", "--skip-crds",
		"--wait", "--timeout", chartTimeout)
}
