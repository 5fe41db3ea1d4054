package node

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/roles/values"
	"github.com/applbuild/applbuild/verify/testenv"
)

// fakeMicroK8sHost stands in for snapd and MicroK8s (with its kubectl and
// helm), which need the snap store's files and cannot run on this build
// host; the firewall check is the real nft.
type fakeMicroK8sHost struct {
	t         *testing.T
	nftErr    error
	installed int
	launch    []byte
	images    []string
	manifests []string
	charts    [][4]string
	chartErr  error
}

func (h *fakeMicroK8sHost) CheckNftables(ctx context.Context, file string) error {
	if h.nftErr != nil {
		return h.nftErr
	}
	return SystemHost{Log: testLog()}.CheckNftables(ctx, file)
}
func (h *fakeMicroK8sHost) LoadFirewall(context.Context) error { return nil }
func (h *fakeMicroK8sHost) EnsureMicroK8s(_ context.Context, lc string) error {
	b, err := os.ReadFile(lc)
	if err != nil {
		return err
	}
	h.launch = b
	h.installed++
	return nil
}
func (h *fakeMicroK8sHost) ImportImages(_ context.Context, a []string) error {
	h.images = a
	return nil
}
func (h *fakeMicroK8sHost) ApplyManifests(_ context.Context, f []string) error {
	for _, p := range f {
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	h.manifests = f
	return nil
}

func (h *fakeMicroK8sHost) InstallChart(_ context.Context, release, namespace, chart, values string) error {
	for _, p := range []string{chart, values} {
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	if h.chartErr != nil {
		return h.chartErr
	}
	h.charts = append(h.charts, [4]string{release, namespace, chart, values})
	return nil
}

func TestApplyWithFakeMicroK8sRendersChecksAndIsRepeatable(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "nft")
	s, nodes := testSite(t)
	root := t.TempDir()
	v, sec := s.Values(nodes[0])
	vdir := filepath.Join(root, values.Dir)
	os.MkdirAll(vdir, 0o755)
	sj, _ := values.Marshal(v)
	kj, _ := values.Marshal(sec)
	os.WriteFile(filepath.Join(vdir, values.SiteFile), sj, 0o644)
	os.WriteFile(filepath.Join(vdir, values.SecretsFile), kj, 0o600)
	h := &fakeMicroK8sHost{t: t}
	o := ApplyOptions{Root: root, Host: h}

	if _, err := Apply(context.Background(), o); err == nil || !strings.Contains(err.Error(), "applbuild fetch node") {
		t.Fatalf("without carried artifacts: got %v, want a message naming `applbuild fetch node`", err)
	}
	art := filepath.Join(root, ArtifactsDir)
	os.MkdirAll(art, 0o755)
	os.WriteFile(filepath.Join(art, ImagesFile), []byte(`{"apiserver2": "`+testImages.APIServer2+`", "coredns": "docker.io/coredns/coredns@sha256:`+strings.Repeat("3", 64)+`", "traefik": "`+testImages.Traefik+`"}`), 0o644)
	if _, err := Apply(context.Background(), o); err == nil || !strings.Contains(err.Error(), "carries no Traefik chart") {
		t.Fatalf("without the carried chart: got %v, want a message naming the chart", err)
	}
	if _, err := os.Lstat(filepath.Join(root, GenerationsDir, "current")); err == nil {
		t.Error("a generation went live although the chart is missing")
	}
	// The chart's bytes stand in for the archive: helm is part of the fake.
	chart := filepath.Join(art, TraefikChartFile)
	os.MkdirAll(filepath.Dir(chart), 0o755)
	os.WriteFile(chart, []byte("stand-in for traefik-41.6.0.tgz\n"), 0o644)

	res, err := Apply(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed {
		t.Error("first apply reports no change")
	}
	if _, err := ParseLaunchConfig(h.launch); err != nil {
		t.Errorf("MicroK8s was given an invalid launch configuration: %v", err)
	}
	if len(h.images) != 3 || !strings.HasSuffix(h.images[1], "/images/coredns.tar") {
		t.Errorf("sideloaded %v, want the three carried archives", h.images)
	}
	if len(h.manifests) != 2 || !strings.HasSuffix(h.manifests[0], TraefikNamespaceFile) || !strings.HasSuffix(h.manifests[1], APIServer2File) {
		t.Errorf("applied %v, want traefik's namespace then apiserver2", h.manifests)
	}
	wantChart := [4]string{TraefikRelease, TraefikNamespace, chart, filepath.Join(root, GenerationsDir, "current", TraefikValuesFile)}
	if len(h.charts) != 1 || h.charts[0] != wantChart {
		t.Errorf("chart installs %v, want one: %v", h.charts, wantChart)
	}
	st, err := os.Stat(filepath.Join(root, GenerationsDir, "current", LaunchConfigFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("launch configuration in the live generation: %v %v", st, err)
	}

	res, err = Apply(context.Background(), o)
	if err != nil || res.Changed {
		t.Fatalf("re-run: changed=%v err=%v; want no change", res.Changed, err)
	}
	if len(h.charts) != 1 {
		t.Errorf("an unchanged chart and values were installed again: %v", h.charts)
	}

	// A new chart in the image is installed even though the rendered
	// files are unchanged, and a failed install is retried on the next run.
	os.WriteFile(chart, []byte("stand-in for traefik-41.6.1.tgz\n"), 0o644)
	h.chartErr = errors.New("helm: timed out waiting for the condition")
	if _, err := Apply(context.Background(), o); err == nil || !strings.Contains(err.Error(), "Traefik chart") {
		t.Fatalf("failed chart install: got %v", err)
	}
	h.chartErr = nil
	if res, err = Apply(context.Background(), o); err != nil || res.Changed || len(h.charts) != 2 {
		t.Fatalf("after a failed install: changed=%v err=%v installs=%d; want the chart installed again, files unchanged", res.Changed, err, len(h.charts))
	}
	if _, err = Apply(context.Background(), o); err != nil || len(h.charts) != 2 {
		t.Fatalf("re-run after the retry: err=%v installs=%d, want no further install", err, len(h.charts))
	}

	// A ruleset the checker refuses leaves the live generation alone.
	before, _ := os.Readlink(filepath.Join(root, GenerationsDir, "current"))
	h.nftErr = errors.New("nft: syntax error")
	sec2 := *sec.(*values.NodeSecrets)
	sec2.APIKey = "another-key-for-this-test"
	kj, _ = values.Marshal(&sec2)
	os.WriteFile(filepath.Join(vdir, values.SecretsFile), kj, 0o600)
	if _, err := Apply(context.Background(), o); err == nil {
		t.Fatal("a refused ruleset was installed")
	}
	after, _ := os.Readlink(filepath.Join(root, GenerationsDir, "current"))
	if before != after {
		t.Errorf("live generation changed from %s to %s after a failed check", before, after)
	}
}

func testLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}
