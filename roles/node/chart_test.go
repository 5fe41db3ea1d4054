package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/dirhash"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/applbuild/applbuild/roles/values"
	"github.com/applbuild/applbuild/seeds"
	"github.com/applbuild/applbuild/seeds/seedstest"
	"github.com/applbuild/applbuild/verify/testenv"
)

// The official Traefik chart, as the Go module proxy serves the chart's
// repository. The checksum database vouches for this hash of the module's
// files; the test recomputes it over the files it reads.
const (
	chartModule     = "github.com/traefik/traefik-helm-chart"
	chartModuleVers = "v41.6.0+incompatible"
	chartModuleSum  = "h1:S2hlx62RaB97UEDu0NE2tSoNTWp7cOyHmI5zpdEHBH0="
	// nodeKubeVersion is the Kubernetes of MicroK8s 1.35.
	nodeKubeVersion = "v1.35.0"
)

var (
	chartOnce sync.Once
	chartDir  string
	chartErr  error
	// chartUnreachable: the download failed, as opposed to a download
	// that does not verify, which always fails the test.
	chartUnreachable bool
)

// traefikChartSource returns the chart's folder in the module download,
// after checking the module's hash. Without the proxy and without the
// module in the cache the test is skipped, or fails under
// APPLBUILD_REQUIRE_TOOLS=1.
func traefikChartSource(t *testing.T) string {
	t.Helper()
	goTool := testenv.RequireTool(t, "go")
	chartOnce.Do(func() {
		cmd := exec.Command(goTool, "mod", "download", "-json", chartModule+"@"+chartModuleVers)
		cmd.Dir = os.TempDir() // outside any module: only this module is asked for
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var dl struct{ Dir, Sum, Error string }
		if jerr := json.Unmarshal(out, &dl); jerr != nil && err == nil {
			err = jerr
		}
		if err != nil || dl.Error != "" {
			chartErr = fmt.Errorf("go mod download %s@%s: %v %s %s", chartModule, chartModuleVers, err, dl.Error, strings.TrimSpace(stderr.String()))
			chartUnreachable = true
			return
		}
		if dl.Sum != chartModuleSum {
			chartErr = fmt.Errorf("module %s@%s has sum %s, want %s", chartModule, chartModuleVers, dl.Sum, chartModuleSum)
			return
		}
		h, err := dirhash.HashDir(dl.Dir, chartModule+"@"+chartModuleVers, dirhash.Hash1)
		if err != nil || h != chartModuleSum {
			chartErr = fmt.Errorf("the files in %s hash to %s (%v), want %s", dl.Dir, h, err, chartModuleSum)
			return
		}
		chartDir = filepath.Join(dl.Dir, "traefik")
	})
	if chartErr != nil {
		if chartUnreachable {
			why := "the Traefik chart is neither in the Go module cache nor reachable through the module proxy: " + chartErr.Error()
			if testenv.Strict() {
				t.Fatalf("required by APPLBUILD_REQUIRE_TOOLS=1: %s", why)
			}
			t.Skip(why)
		}
		t.Fatal(chartErr)
	}
	return chartDir
}

// packTraefikChart packs the chart folder into an archive the way `helm
// package` does and loads that archive back, as `helm upgrade --install`
// loads charts/traefik.tgz on the node.
func packTraefikChart(t *testing.T) (*chart.Chart, string) {
	t.Helper()
	src, err := loader.LoadDir(traefikChartSource(t))
	if err != nil {
		t.Fatal(err)
	}
	archive, err := chartutil.Save(src, t.TempDir())
	if err != nil {
		t.Fatalf("packing the chart: %v", err)
	}
	ch, err := loader.Load(archive)
	if err != nil {
		t.Fatalf("loading the packed chart %s: %v", archive, err)
	}
	return ch, archive
}

// renderTraefikChart does what `helm upgrade --install` does before it
// talks to the cluster: check the chart's Kubernetes range, merge the
// values over the chart's defaults, validate them against
// values.schema.json, and render the templates for release traefik in
// namespace traefik.
func renderTraefikChart(ch *chart.Chart, valuesYAML []byte) (map[string]string, error) {
	vals, err := chartutil.ReadValues(valuesYAML)
	if err != nil {
		return nil, fmt.Errorf("%s does not parse: %w", TraefikValuesFile, err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	kv, err := chartutil.ParseKubeVersion(nodeKubeVersion)
	if err != nil {
		return nil, err
	}
	caps.KubeVersion = *kv
	if !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart %s needs Kubernetes %s, the node runs %s", ch.Metadata.Version, ch.Metadata.KubeVersion, nodeKubeVersion)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: TraefikRelease, Namespace: TraefikNamespace, IsInstall: true, Revision: 1}, caps)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, rv)
}

// chartDecoder decodes into the upstream Go types of every built-in kind
// the chart can render, strictly.
func chartDecoder() runtime.Decoder {
	sch := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, networkingv1.AddToScheme, rbacv1.AddToScheme, policyv1.AddToScheme, autoscalingv2.AddToScheme} {
		if err := add(sch); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDeserializer()
}

// decodeRendered decodes every object of a rendered release. An object
// that does not decode strictly into a built-in type is an error; one of
// Traefik's own kinds is named as such, because the node installs the
// chart with --skip-crds and Traefik's CRD provider off, so such an
// object could not be applied.
func decodeRendered(ch *chart.Chart, rendered map[string]string) ([]runtime.Object, error) {
	crdKinds, err := chartCRDKinds(ch)
	if err != nil {
		return nil, err
	}
	dec := chartDecoder()
	var names []string
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	var objs []runtime.Object
	var errs []error
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		r := k8syaml.NewYAMLReader(bufio.NewReader(strings.NewReader(rendered[name])))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			obj, _, err := dec.Decode(doc, nil, nil)
			if err == nil {
				objs = append(objs, obj)
				continue
			}
			var tm metav1.TypeMeta
			yaml.Unmarshal(doc, &tm)
			if gvk := tm.GroupVersionKind(); strings.HasSuffix(gvk.Group, "traefik.io") {
				if crdKinds[gvk.GroupKind()] {
					err = fmt.Errorf("renders a Traefik %s, but the node installs the chart with --skip-crds and the CRD provider off", gvk.Kind)
				} else {
					err = fmt.Errorf("renders %s, which no CRD in the chart's crds/ defines", gvk)
				}
			}
			errs = append(errs, fmt.Errorf("%s document %d: %w", name, i, err))
		}
	}
	return objs, errors.Join(errs...)
}

// chartCRDKinds lists the kinds the chart's crds/ defines.
func chartCRDKinds(ch *chart.Chart) (map[schema.GroupKind]bool, error) {
	kinds := map[schema.GroupKind]bool{}
	for _, c := range ch.CRDObjects() {
		r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(c.File.Data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.Name, err)
			}
			var crd struct {
				Kind string
				Spec struct {
					Group string
					Names struct{ Kind string }
				}
			}
			if err := yaml.Unmarshal(doc, &crd); err != nil {
				return nil, fmt.Errorf("%s: %w", c.Name, err)
			}
			if crd.Kind == "CustomResourceDefinition" {
				kinds[schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}] = true
			}
		}
	}
	if len(kinds) == 0 {
		return nil, errors.New("the chart's crds/ defines no kinds")
	}
	return kinds, nil
}

// nodeVM is one node of a site the chart is rendered for.
type nodeVM struct {
	name string
	site *seeds.Site
	vm   seeds.VM
}

// chartTestNodes returns the nodes of the example site and of every good
// test site.
func chartTestNodes(t *testing.T) []nodeVM {
	t.Helper()
	var out []nodeVM
	add := func(label string, s *seeds.Site) {
		for _, vm := range s.VMs {
			if vm.Role == values.RoleNode {
				out = append(out, nodeVM{label + "/" + vm.Name, s, vm})
			}
		}
	}
	// The example site, with the secrets and certificate keygen makes.
	exFile := seedstest.ExampleSite(t)
	if _, err := seeds.Keygen(exFile, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := seeds.Load(exFile, seeds.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	add("examples/bank1", s)
	good := filepath.Join("..", "..", "seeds", "testdata", "good")
	dir := seedstest.Corpus(t, good)
	files, _ := filepath.Glob(filepath.Join(good, "*.yaml"))
	for _, f := range files {
		s, err := seeds.Load(filepath.Join(dir, filepath.Base(f)), seeds.LoadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		add(filepath.Base(f), s)
	}
	if len(out) < 4 {
		t.Fatalf("only %d node VMs in the example and the good test sites", len(out))
	}
	return out
}

// traefikRelease is what a rendered release holds that a user would notice.
type traefikRelease struct {
	deployment    *appsv1.Deployment
	services      []*corev1.Service
	ingressClass  *networkingv1.IngressClass
	serviceAcct   *corev1.ServiceAccount
	clusterRole   *rbacv1.ClusterRole
	roleBinding   *rbacv1.ClusterRoleBinding
	kinds         []string
	wrongNamspace []string
}

func collectRelease(objs []runtime.Object) traefikRelease {
	var r traefikRelease
	for _, o := range objs {
		acc, _ := o.(interface {
			GetNamespace() string
			GetName() string
		})
		kind := fmt.Sprintf("%T", o)
		r.kinds = append(r.kinds, kind)
		switch x := o.(type) {
		case *appsv1.Deployment:
			r.deployment = x
		case *corev1.Service:
			r.services = append(r.services, x)
		case *networkingv1.IngressClass:
			r.ingressClass = x
		case *corev1.ServiceAccount:
			r.serviceAcct = x
		case *rbacv1.ClusterRole:
			r.clusterRole = x
		case *rbacv1.ClusterRoleBinding:
			r.roleBinding = x
		}
		switch o.(type) {
		case *networkingv1.IngressClass, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
		default:
			if acc != nil && acc.GetNamespace() != TraefikNamespace {
				r.wrongNamspace = append(r.wrongNamspace, kind+" "+acc.GetName()+" in "+acc.GetNamespace())
			}
		}
	}
	return r
}

// traefikProblems lists what is wrong with a rendered release for a node:
// everything a user of the node would notice if it were different.
func traefikProblems(r traefikRelease, site *values.Site, image string) []string {
	var bad []string
	badf := func(f string, a ...any) { bad = append(bad, fmt.Sprintf(f, a...)) }
	if len(r.wrongNamspace) > 0 {
		badf("objects outside namespace %s: %v", TraefikNamespace, r.wrongNamspace)
	}
	for _, s := range r.services {
		badf("the release has Service %s of type %q; the hostPort publishes Traefik, a Service (above all a LoadBalancer) is not wanted", s.Name, s.Spec.Type)
	}
	if r.ingressClass == nil || r.ingressClass.Name != IngressClass || r.ingressClass.Spec.Controller != "traefik.io/ingress-controller" {
		badf("IngressClass %+v, want %s for traefik.io/ingress-controller", r.ingressClass, IngressClass)
	} else if r.ingressClass.Annotations["ingressclass.kubernetes.io/is-default-class"] != "false" {
		badf("IngressClass %s is a default class; only APIServer2's Ingress names it", r.ingressClass.Name)
	}
	if r.serviceAcct == nil || r.clusterRole == nil || r.roleBinding == nil {
		badf("RBAC incomplete: service account %v, cluster role %v, binding %v", r.serviceAcct != nil, r.clusterRole != nil, r.roleBinding != nil)
	} else {
		if r.roleBinding.RoleRef.Name != r.clusterRole.Name || len(r.roleBinding.Subjects) != 1 || r.roleBinding.Subjects[0].Name != r.serviceAcct.Name || r.roleBinding.Subjects[0].Namespace != TraefikNamespace {
			badf("cluster role binding %+v does not bind %s to %s", r.roleBinding, r.clusterRole.Name, r.serviceAcct.Name)
		}
		if !grants(r.clusterRole, "networking.k8s.io", "ingresses", "watch") || !grants(r.clusterRole, "networking.k8s.io", "ingressclasses", "list") || !grants(r.clusterRole, "discovery.k8s.io", "endpointslices", "watch") {
			badf("cluster role %s does not let Traefik watch ingresses, ingress classes and endpoint slices: %+v", r.clusterRole.Name, r.clusterRole.Rules)
		}
		// The node certificate reaches Traefik as the Secret APIServer2's
		// Ingress names in its tls section.
		if !grants(r.clusterRole, "", "secrets", "get") || !grants(r.clusterRole, "", "secrets", "watch") {
			badf("cluster role %s does not let Traefik read the Ingress TLS secret %s: %+v", r.clusterRole.Name, NodeTLSSecret, r.clusterRole.Rules)
		}
	}
	d := r.deployment
	if d == nil {
		return append(bad, "no Deployment rendered")
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		badf("replicas %v, want 1: a second pod could not bind the host port", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		badf("update strategy %q; with a host port a surge pod never starts, want Recreate", d.Spec.Strategy.Type)
	}
	ps := d.Spec.Template.Spec
	if d.Spec.Template.Labels["app.kubernetes.io/name"] != "traefik" {
		badf("pod labels %v lack app.kubernetes.io/name=traefik, which APIServer2's network policy admits", d.Spec.Template.Labels)
	}
	if ps.HostNetwork {
		badf("Traefik runs in the host network; only its ingress port may reach the node")
	}
	if ps.ServiceAccountName == "" || r.serviceAcct != nil && ps.ServiceAccountName != r.serviceAcct.Name {
		badf("pod service account %q is not the release's", ps.ServiceAccountName)
	}
	if len(ps.Containers) != 1 || len(ps.InitContainers) != 0 {
		return append(bad, fmt.Sprintf("%d containers and %d init containers, want Traefik alone", len(ps.Containers), len(ps.InitContainers)))
	}
	c := ps.Containers[0]
	if c.Image != image || c.ImagePullPolicy != corev1.PullNever {
		badf("image %q pull policy %q; want the pinned digest %q, never pulled", c.Image, c.ImagePullPolicy, image)
	}
	// Ports: exactly one on the host, the ingress port, serving websecure.
	var hostPorts []string
	pingPortOK := false
	for _, p := range c.Ports {
		if p.HostPort != 0 || p.HostIP != "" {
			hostPorts = append(hostPorts, fmt.Sprintf("%s %d->%d", p.Name, p.HostPort, p.ContainerPort))
		}
		if p.ContainerPort == pingPort && p.HostPort == 0 {
			pingPortOK = true
		}
	}
	if want := []string{fmt.Sprintf("websecure %d->%d", site.Node.IngressPort, traefikPort)}; !reflect.DeepEqual(hostPorts, want) {
		badf("host ports %v, want exactly %v", hostPorts, want)
	}
	var trusted []string
	for _, a := range site.Node.TrustedProxies {
		trusted = append(trusted, a.String()+"/32")
	}
	args := c.Args
	want := []string{
		fmt.Sprintf("--entryPoints.websecure.address=:%d/tcp", traefikPort),
		"--entryPoints.websecure.http.tls=true",
		"--entryPoints.websecure.forwardedHeaders.trustedIPs=" + strings.Join(trusted, ","),
		fmt.Sprintf("--entryPoints.traefik.address=:%d/tcp", pingPort),
		"--ping=true",
		"--providers.kubernetesingress",
		"--providers.kubernetesingress.ingressClass=" + IngressClass,
		"--providers.kubernetesingress.ingressendpoint.ip=" + site.Network.Address.Addr().String(),
		"--global.checkNewVersion=false",
		"--log.level=INFO",
		"--accesslog=true",
	}
	for _, w := range want {
		if !contains(args, w) {
			badf("Traefik argument %q missing", w)
		}
	}
	for _, a := range args {
		key, _, _ := strings.Cut(strings.ToLower(a), "=")
		switch {
		case strings.Contains(key, "trustedips") && a != "--entryPoints.websecure.forwardedHeaders.trustedIPs="+strings.Join(trusted, ","):
			badf("%s: only the gateways %v may be trusted, on websecure", a, trusted)
		case strings.HasSuffix(key, ".insecure"):
			badf("%s trusts every client", a)
		case strings.HasPrefix(key, "--entrypoints.") && !strings.HasPrefix(key, "--entrypoints.websecure.") && !strings.HasPrefix(key, "--entrypoints.traefik."):
			badf("%s: an entry point other than websecure and traefik (ping)", a)
		case strings.HasPrefix(key, "--api"):
			badf("%s: the API and dashboard are not served", a)
		case strings.HasPrefix(key, "--providers.") && !strings.HasPrefix(key, "--providers.kubernetesingress"):
			badf("%s: the only provider is kubernetesingress", a)
		case strings.HasPrefix(key, "--global.sendanonymoususage"), strings.HasPrefix(key, "--global.checknewversion") && a != "--global.checkNewVersion=false":
			badf("%s: the node sends nothing home", a)
		case strings.HasSuffix(key, ".filepath"):
			badf("%s: logs go to stdout", a)
		case strings.HasPrefix(key, "--metrics"), strings.HasPrefix(key, "--tracing"), strings.HasPrefix(key, "--hub"), strings.HasPrefix(key, "--experimental"):
			badf("%s: not wanted on the node", a)
		}
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ping" || p.HTTPGet.Port.IntValue() != pingPort || !pingPortOK {
			badf("probe %+v does not ask /ping on the unpublished port %d", p, pingPort)
		}
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		badf("no resource requests/limits: %+v", c.Resources)
	}
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		badf("pod security context %+v is not non-root with the RuntimeDefault seccomp profile", psc)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Privileged != nil && *sc.Privileged || sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
		sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		badf("container security context %+v is not read-only, unprivileged, without capabilities", sc)
	}
	return bad
}

func grants(r *rbacv1.ClusterRole, group, resource, verb string) bool {
	for _, rule := range r.Rules {
		if contains(rule.APIGroups, group) && contains(rule.Resources, resource) && contains(rule.Verbs, verb) {
			return true
		}
	}
	return false
}

// The lock carries the chart this test renders, and the image tag is the
// chart's appVersion: the chart's version checks and labels follow it.
func TestLockCarriesTheTestedTraefikChart(t *testing.T) {
	ch, _ := packTraefikChart(t)
	var lock struct {
		Artifacts []struct{ Kind, Name, Version, Source string }
	}
	if err := yaml.Unmarshal(LockFile(), &lock); err != nil {
		t.Fatal(err)
	}
	var chartEntry, imageEntry string
	for _, a := range lock.Artifacts {
		if a.Name != "traefik" {
			continue
		}
		switch a.Kind {
		case "chart":
			chartEntry = a.Version + " " + a.Source
		case "image":
			imageEntry = a.Source
		}
	}
	wantChart := ch.Metadata.Version + " https://traefik.github.io/charts/traefik/traefik-" + ch.Metadata.Version + ".tgz"
	if chartEntry != wantChart {
		t.Errorf("lock's traefik chart is %q, want %q", chartEntry, wantChart)
	}
	if want := "docker.io/library/traefik:" + ch.Metadata.AppVersion; imageEntry != want {
		t.Errorf("lock's traefik image is %q, want the chart's appVersion %q", imageEntry, want)
	}
}

func TestTraefikChartRendersForEveryNodeSite(t *testing.T) {
	ch, archive := packTraefikChart(t)
	t.Logf("chart %s %s (appVersion %s) packed to %s", ch.Name(), ch.Metadata.Version, ch.Metadata.AppVersion, filepath.Base(archive))
	for _, n := range chartTestNodes(t) {
		t.Run(n.name, func(t *testing.T) {
			v, sec := n.site.Values(n.vm)
			files, err := Render(v, sec.(*values.NodeSecrets), testImages)
			if err != nil {
				t.Fatal(err)
			}
			var vf, nsf, appf []byte
			for _, f := range files {
				switch f.Path {
				case TraefikValuesFile:
					vf = f.Data
				case TraefikNamespaceFile:
					nsf = f.Data
				case APIServer2File:
					appf = f.Data
				}
			}
			rendered, err := renderTraefikChart(ch, vf)
			if err != nil {
				t.Fatalf("%v\n%s", err, vf)
			}
			objs, err := decodeRendered(ch, rendered)
			if err != nil {
				t.Fatal(err)
			}
			rel := collectRelease(objs)
			t.Logf("release objects: %v", rel.kinds)
			if bad := traefikProblems(rel, v, testImages.Traefik); len(bad) > 0 {
				t.Errorf("%d problems:\n%s", len(bad), strings.Join(bad, "\n"))
			}
			// The chart's objects meet the manifests around them: the
			// namespace they are installed into, the Ingress naming the
			// class, the network policy admitting Traefik's pods.
			nsObjs, err := decodeAll(nsf)
			if err != nil || len(nsObjs) != 1 {
				t.Fatalf("%s: %v (%d objects)", TraefikNamespaceFile, err, len(nsObjs))
			}
			ns, ok := nsObjs[0].(*corev1.Namespace)
			if !ok || ns.Name != TraefikNamespace || ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
				t.Errorf("%s holds %+v; want namespace %s allowing host ports", TraefikNamespaceFile, nsObjs[0], TraefikNamespace)
			}
			appObjs, err := decodeAll(appf)
			if err != nil {
				t.Fatal(err)
			}
			admitted := false
			for _, o := range appObjs {
				switch x := o.(type) {
				case *networkingv1.Ingress:
					if x.Spec.IngressClassName == nil || rel.ingressClass == nil || *x.Spec.IngressClassName != rel.ingressClass.Name {
						t.Errorf("APIServer2's Ingress names class %v, the chart creates %v", x.Spec.IngressClassName, rel.ingressClass)
					}
				case *networkingv1.NetworkPolicy:
					for _, in := range x.Spec.Ingress {
						for _, from := range in.From {
							if from.PodSelector == nil || from.NamespaceSelector == nil || rel.deployment == nil {
								continue
							}
							podOK := true
							for k, val := range from.PodSelector.MatchLabels {
								podOK = podOK && rel.deployment.Spec.Template.Labels[k] == val
							}
							nsOK := true
							for k, val := range from.NamespaceSelector.MatchLabels {
								nsOK = nsOK && (k == "kubernetes.io/metadata.name" && val == TraefikNamespace || ns.Labels[k] == val)
							}
							admitted = admitted || podOK && nsOK
						}
					}
				}
			}
			if !admitted {
				t.Error("no network policy of APIServer2 admits the chart's Traefik pods")
			}
		})
	}
}

// The checks above must be able to fail: values a careless edit could
// produce are rendered through the real chart, and each is caught, by the
// chart's schema or by the release checks.
func TestTraefikChartChecksCatchBadValues(t *testing.T) {
	ch, _ := packTraefikChart(t)
	s, nodes := testSite(t)
	files, v, _ := renderVM(t, s, nodes[0])
	good := string(files[TraefikValuesFile].Data)
	ingress := fmt.Sprintf("hostPort: %d", v.Node.IngressPort)
	for _, c := range []struct {
		name   string
		edits  [][2]string // from, to
		schema bool        // refused by values.schema.json
		want   string
	}{
		{"typo in a port key", [][2]string{{"    forwardedHeaders:\n", "    forwardedHeader:\n"}}, true, "forwardedHeader"},
		{"unknown top-level key", [][2]string{{"hostNetwork: false", "hostNetwrok: false"}}, true, "hostNetwrok"},
		{"tag instead of digest", [][2]string{{`digest: "sha256:`, `digest: "v3.7.13:`}}, true, "digest"},
		{"trust everyone", [][2]string{{"      insecure: false\n    proxyProtocol", "      insecure: true\n    proxyProtocol"}}, false, "trusts every client"},
		{"another host port", [][2]string{{ingress, "hostPort: 16443"}}, false, "host ports"},
		// The chart makes a Service only with a port exposed through it.
		{"a LoadBalancer", [][2]string{
			{"service:\n  enabled: false", "service:\n  enabled: true"},
			{ingress + "\n    expose:\n      default: false", ingress + "\n    expose:\n      default: true"},
		}, false, `of type "LoadBalancer"`},
		{"plain HTTP entry point", [][2]string{{"  web: null", "  web:\n    port: 8000\n    hostPort: 80"}}, false, "entry point other than websecure"},
		{"dashboard", [][2]string{{"api: null", "api:\n  dashboard: true"}}, false, "dashboard are not served"},
		{"writable root", [][2]string{{"  readOnlyRootFilesystem: true", "  readOnlyRootFilesystem: false"}}, false, "not read-only"},
		{"root user", [][2]string{{"  runAsUser: 65532", "  runAsUser: 0"}}, false, "not non-root"},
		{"telemetry", [][2]string{{"  sendAnonymousUsage: false", "  sendAnonymousUsage: true"}}, false, "sends nothing home"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := good
			for _, e := range c.edits {
				next := strings.Replace(bad, e[0], e[1], 1)
				if next == bad {
					t.Fatalf("the values do not contain %q; the test no longer changes anything", e[0])
				}
				bad = next
			}
			rendered, err := renderTraefikChart(ch, []byte(bad))
			if c.schema {
				if err == nil || !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("schema validation: got %v, want a refusal naming %q", err, c.want)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			objs, err := decodeRendered(ch, rendered)
			if err != nil {
				t.Fatal(err)
			}
			problems := traefikProblems(collectRelease(objs), v, testImages.Traefik)
			if !strings.Contains(strings.Join(problems, "\n"), c.want) {
				t.Fatalf("not caught (want %q): %v", c.want, problems)
			}
			t.Logf("caught: %v", problems)
		})
	}
}

// A kind the chart renders that is neither built in nor Traefik's must
// fail decoding, as must one of Traefik's own kinds.
func TestRenderedKindsMustDecode(t *testing.T) {
	ch, _ := packTraefikChart(t)
	for _, doc := range []string{
		"apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: x, namespace: traefik}\nspec: {}\n",
		"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
		"apiVersion: traefik.io/v1alpha1\nkind: NoSuchKind\nmetadata: {name: x}\n",
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x, namespace: traefik}\nautomountToken: true\n",
	} {
		if _, err := decodeRendered(ch, map[string]string{"traefik/templates/x.yaml": doc}); err == nil {
			t.Errorf("accepted:\n%s", doc)
		} else {
			t.Logf("refused: %v", err)
		}
	}
}
