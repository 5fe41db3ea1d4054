package node

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/applbuild/applbuild/roles"
	"github.com/applbuild/applbuild/roles/values"
)

// ArtifactsDir is where the image carries the node's snaps (snaps/),
// image archives (images/), chart archives (charts/), the lock and
// images.json (image name -> repository@digest). builder/artifacts
// installs them there.
const ArtifactsDir = "/var/lib/appliance/artifacts"

// ImagesFile is the image reference map under ArtifactsDir.
const ImagesFile = "images.json"

// SnapOrder is the order the carried snaps are installed in: snapd, then
// the base, then MicroK8s.
var SnapOrder = []string{"snapd", "core22", "microk8s"}

// Host is what apply needs from the machine. The agent uses SystemHost;
// the snap and MicroK8s parts cannot run on a build host without the snap
// store's files, so tests substitute them and say so.
type Host interface {
	// CheckNftables runs `nft -c -f file`.
	CheckNftables(ctx context.Context, file string) error
	// LoadFirewall loads the current generation's ruleset.
	LoadFirewall(ctx context.Context) error
	// EnsureMicroK8s installs the carried snaps (once; a no-op when
	// MicroK8s is installed) with launchConfig as its launch
	// configuration, holds refreshes, and waits until it is ready.
	EnsureMicroK8s(ctx context.Context, launchConfig string) error
	// ImportImages sideloads OCI archives into MicroK8s's containerd.
	ImportImages(ctx context.Context, archives []string) error
	// ApplyManifests applies manifest files with kubectl, idempotently.
	ApplyManifests(ctx context.Context, files []string) error
	// InstallChart installs or upgrades a Helm release from a local chart
	// archive with one values file, and waits until it is ready.
	InstallChart(ctx context.Context, release, namespace, chart, values string) error
}

// chartStampFile, beside the generations, records what the Traefik release
// was last installed from. It is outside every generation, so it does not
// make a generation differ from its render.
const chartStampFile = ".traefik-release"

// ApplyOptions configures Apply.
type ApplyOptions struct {
	// Root is prepended to every path read or written; "" means /.
	Root        string
	ValuesDir   string // default values.Dir
	Generations string // default GenerationsDir
	Artifacts   string // default ArtifactsDir
	Host        Host
}

// LoadImages reads images.json and returns the references of Traefik and
// APIServer2.
func LoadImages(file string) (Images, map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Images{}, nil, fmt.Errorf("the image carries no artifacts (%v); it was built without `applbuild fetch node` artifacts", err)
	}
	var refs map[string]string
	if err := json.Unmarshal(b, &refs); err != nil {
		return Images{}, nil, fmt.Errorf("%s: %w", file, err)
	}
	im := Images{Traefik: refs["traefik"], APIServer2: refs["apiserver2"]}
	return im, refs, im.check()
}

// Apply renders the node's configuration from the values directory,
// checks it, installs it as a new generation, loads the firewall, installs
// MicroK8s from the carried snaps if it is not installed yet, sideloads the
// images, applies the manifests and installs Traefik from the carried
// chart. Re-running it changes nothing that is already in place: the chart
// is installed again only when its archive or its values changed since the
// last successful install.
func Apply(ctx context.Context, o ApplyOptions) (roles.Result, error) {
	if o.ValuesDir == "" {
		o.ValuesDir = values.Dir
	}
	if o.Generations == "" {
		o.Generations = GenerationsDir
	}
	if o.Artifacts == "" {
		o.Artifacts = ArtifactsDir
	}
	host := func(p string) string { return filepath.Join("/", o.Root, p) }
	site, err := values.LoadSite(host(o.ValuesDir))
	if err != nil {
		return roles.Result{}, err
	}
	if site.Role != values.RoleNode {
		return roles.Result{}, fmt.Errorf("%s says this VM's role is %q; this is the node's apply", filepath.Join(o.ValuesDir, values.SiteFile), site.Role)
	}
	var sec values.NodeSecrets
	if err := values.LoadSecrets(host(o.ValuesDir), &sec); err != nil {
		return roles.Result{}, err
	}
	img, refs, err := LoadImages(host(filepath.Join(o.Artifacts, ImagesFile)))
	if err != nil {
		return roles.Result{}, err
	}
	chart := host(filepath.Join(o.Artifacts, TraefikChartFile))
	if _, err := os.Stat(chart); err != nil {
		return roles.Result{}, fmt.Errorf("the image carries no Traefik chart (%v); it was built from an artifacts lock without the chart entry (kind chart, name traefik; see roles/node/artifacts.lock)", err)
	}
	gens := roles.Generations{Base: host(o.Generations), Keep: 2}
	render := func(dir string) ([]roles.File, error) {
		files, err := Render(site, &sec, img)
		if err != nil {
			return nil, err
		}
		for i := range files {
			files[i].Path = filepath.Join(dir, files[i].Path)
		}
		return files, nil
	}
	validate := func(ctx context.Context, dir string) error {
		return o.Host.CheckNftables(ctx, filepath.Join(dir, NftablesFile))
	}
	res, err := gens.Apply(ctx, render, validate, o.Host.LoadFirewall)
	if err != nil {
		return res, err
	}
	cur := gens.Current()
	if err := o.Host.EnsureMicroK8s(ctx, filepath.Join(cur, LaunchConfigFile)); err != nil {
		return res, fmt.Errorf("MicroK8s: %w", err)
	}
	var names []string
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	var archives []string
	for _, n := range names {
		archives = append(archives, host(filepath.Join(o.Artifacts, "images", n+".tar")))
	}
	if err := o.Host.ImportImages(ctx, archives); err != nil {
		return res, fmt.Errorf("sideloading images: %w", err)
	}
	if err := o.Host.ApplyManifests(ctx, []string{filepath.Join(cur, TraefikNamespaceFile), filepath.Join(cur, APIServer2File)}); err != nil {
		return res, fmt.Errorf("applying manifests: %w", err)
	}
	valuesFile := filepath.Join(cur, TraefikValuesFile)
	stamp, err := chartStamp(chart, valuesFile)
	if err != nil {
		return res, err
	}
	stampPath := filepath.Join(gens.Base, chartStampFile)
	if old, err := os.ReadFile(stampPath); err == nil && string(old) == stamp {
		return res, nil
	}
	if err := o.Host.InstallChart(ctx, TraefikRelease, TraefikNamespace, chart, valuesFile); err != nil {
		return res, fmt.Errorf("installing the Traefik chart: %w", err)
	}
	return res, writeFileAtomic(stampPath, []byte(stamp), 0o644)
}

// chartStamp names a chart install by the sha256 of the chart archive and
// of the values file.
func chartStamp(chart, valuesFile string) (string, error) {
	var parts []string
	for _, p := range []string{chart, valuesFile} {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(b)
		parts = append(parts, filepath.Base(p)+" sha256:"+hex.EncodeToString(sum[:]))
	}
	return strings.Join(parts, "\n") + "\n", nil
}

// writeFileAtomic writes a temporary sibling, syncs it and renames it over
// path, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	merr := tmp.Chmod(mode)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, merr, serr, cerr); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Ready asks APIServer2's health path through Traefik on the node's own
// address and ingress port, over TLS, until it answers 200 or timeout
// passes. Traefik's certificate is not verified: this checks the path
// through the node, not the site's PKI (the node carries no CA).
func Ready(ctx context.Context, site *values.Site, timeout time.Duration) error {
	addr := net.JoinHostPort(site.Network.Address.Addr().String(), strconv.Itoa(site.Node.IngressPort))
	url := "https://" + addr + site.Node.HealthPath
	// With node.tls the gateway asks for the site's node name by SNI, so
	// ask the same way and reach the same router and certificate.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: site.Node.TLSServerName}}}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("APIServer2 does not answer through Traefik at %s: %w", url, last)
		case <-time.After(2 * time.Second):
		}
	}
}

// snapFiles lists the carried snaps in install order.
func snapFiles(artifacts string) ([][2]string, error) {
	var out [][2]string
	for _, n := range SnapOrder {
		s := filepath.Join(artifacts, "snaps", n+".snap")
		a := strings.TrimSuffix(s, ".snap") + ".assert"
		for _, p := range []string{s, a} {
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("carried snap file missing: %w", err)
			}
		}
		out = append(out, [2]string{s, a})
	}
	return out, nil
}
