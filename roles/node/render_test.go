package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"

	"github.com/applbuild/applbuild/roles"
	"github.com/applbuild/applbuild/roles/values"
	"github.com/applbuild/applbuild/seeds"
	"github.com/applbuild/applbuild/seeds/seedstest"
)

var testImages = Images{
	Traefik:    "docker.io/library/traefik@sha256:" + strings.Repeat("1", 64),
	APIServer2: "registry.example.com/apiserver2@sha256:" + strings.Repeat("2", 64),
}

// strictDecoder decodes Kubernetes objects into the upstream Go types and
// fails on unknown or duplicate fields and on wrong types.
func strictDecoder() runtime.Decoder {
	sch := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, networkingv1.AddToScheme, rbacv1.AddToScheme, apiserverv1.AddToScheme} {
		if err := add(sch); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDeserializer()
}

// decodeAll decodes every document of a multi-document YAML file.
func decodeAll(data []byte) ([]runtime.Object, error) {
	dec := strictDecoder()
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, &docError{i, gvk, err}
		}
		objs = append(objs, obj)
	}
}

type docError struct {
	i   int
	gvk any
	err error
}

func (e *docError) Error() string {
	b, _ := json.Marshal(e.gvk)
	return fmt.Sprintf("document %d %s: %v", e.i, b, e.err)
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

// testSite loads the seeds' good corpus and returns it with its node VMs.
func testSite(t *testing.T) (*seeds.Site, []seeds.VM) {
	t.Helper()
	dir := seedstest.Corpus(t, filepath.Join("..", "..", "seeds", "testdata", "good"))
	s, err := seeds.Load(filepath.Join(dir, "basic.yaml"), seeds.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []seeds.VM
	for _, vm := range s.VMs {
		if vm.Role == values.RoleNode {
			nodes = append(nodes, vm)
		}
	}
	if len(nodes) != 2 {
		t.Fatalf("basic.yaml has %d nodes, the tests need 2", len(nodes))
	}
	return s, nodes
}

func renderVM(t *testing.T, s *seeds.Site, vm seeds.VM) (map[string]roles.File, *values.Site, *values.NodeSecrets) {
	t.Helper()
	v, sec := s.Values(vm)
	ns, ok := sec.(*values.NodeSecrets)
	if !ok {
		t.Fatalf("%s: secrets are %T, want *values.NodeSecrets", vm.Name, sec)
	}
	files, err := Render(v, ns, testImages)
	if err != nil {
		t.Fatalf("%s: %v", vm.Name, err)
	}
	m := map[string]roles.File{}
	for _, f := range files {
		m[f.Path] = f
	}
	return m, v, ns
}

func TestManifestsDecodeStrictlyIntoKubernetesTypes(t *testing.T) {
	s, nodes := testSite(t)
	files, v, sec := renderVM(t, s, nodes[0])
	var all []runtime.Object
	for _, name := range []string{TraefikNamespaceFile, APIServer2File} {
		objs, err := decodeAll(files[name].Data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, files[name].Data)
		}
		all = append(all, objs...)
	}
	if files[APIServer2File].Mode != 0o600 || files[LaunchConfigFile].Mode != 0o600 {
		t.Errorf("files holding secrets are not 0600: apiserver2 %o, launch %o", files[APIServer2File].Mode, files[LaunchConfigFile].Mode)
	}
	var (
		appNS, traefikNS *corev1.Namespace
		app              *appsv1.Deployment
		secret           *corev1.Secret
		policies         []*networkingv1.NetworkPolicy
		ingress          *networkingv1.Ingress
		pvc              *corev1.PersistentVolumeClaim
	)
	for _, o := range all {
		switch x := o.(type) {
		case *corev1.Namespace:
			switch x.Name {
			case "apiserver2":
				appNS = x
			case TraefikNamespace:
				traefikNS = x
			}
		case *appsv1.Deployment:
			if x.Name == "apiserver2" {
				app = x
			}
		case *corev1.Secret:
			if x.Name == "apiserver2-env" {
				secret = x
			}
		case *networkingv1.NetworkPolicy:
			policies = append(policies, x)
		case *networkingv1.Ingress:
			ingress = x
		case *corev1.PersistentVolumeClaim:
			pvc = x
		}
	}
	if appNS == nil || appNS.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("apiserver2 namespace does not enforce the restricted pod security level: %+v", appNS)
	}
	// Host ports are refused at the baseline level; Traefik's namespace
	// holds nothing else.
	if traefikNS == nil || traefikNS.Labels["pod-security.kubernetes.io/enforce"] != "privileged" || traefikNS.Labels["pod-security.kubernetes.io/warn"] != "restricted" {
		t.Errorf("traefik namespace does not allow host ports and warn at restricted: %+v", traefikNS)
	}
	if app == nil || secret == nil || ingress == nil || pvc == nil {
		t.Fatalf("missing objects: deployment %v secret %v ingress %v pvc %v", app != nil, secret != nil, ingress != nil, pvc != nil)
	}
	if app.Spec.Replicas == nil || *app.Spec.Replicas != 2 {
		t.Errorf("apiserver2 replicas = %v, want 2", app.Spec.Replicas)
	}
	c := app.Spec.Template.Spec.Containers[0]
	if c.Image != testImages.APIServer2 || c.ImagePullPolicy != corev1.PullNever {
		t.Errorf("apiserver2 image %q policy %q; want the pinned digest, never pulled", c.Image, c.ImagePullPolicy)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != v.Node.HealthPath {
			t.Errorf("probe %+v does not check the health path %s", p, v.Node.HealthPath)
		}
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("apiserver2 has no resource requests/limits: %+v", c.Resources)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("apiserver2 container security context is not read-only, non-root, no escalation: %+v", sc)
	}
	var mountsUploads bool
	for _, m := range c.VolumeMounts {
		mountsUploads = mountsUploads || m.Name == "uploads"
	}
	if !mountsUploads {
		t.Error("apiserver2 does not mount the upload volume")
	}
	// Only Traefik may reach APIServer2.
	var denyAll, fromTraefik bool
	for _, p := range policies {
		if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.Ingress) == 0 && reflect.DeepEqual(p.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
			denyAll = true
		}
		for _, r := range p.Spec.Ingress {
			for _, from := range r.From {
				if from.PodSelector != nil && from.PodSelector.MatchLabels["app.kubernetes.io/name"] == "traefik" &&
					from.NamespaceSelector != nil && from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "traefik" {
					fromTraefik = true
				}
			}
		}
	}
	if !denyAll || !fromTraefik {
		t.Errorf("network policies: default deny %v, allow from traefik %v; want both", denyAll, fromTraefik)
	}
	// The Secret holds exactly the seed's values.
	want := map[string]string{"JWT_SECRET": sec.JWTSecret, "API_KEY": sec.APIKey}
	for k, val := range sec.DBConnections {
		want["DB_"+strings.ToUpper(nonAlnumRe.ReplaceAllString(k, "_"))] = val
	}
	for k, val := range sec.Env {
		want[k] = val
	}
	if !reflect.DeepEqual(secret.StringData, want) {
		t.Errorf("secret data %v, want %v", secret.StringData, want)
	}
	var paths []string
	for _, p := range ingress.Spec.Rules[0].HTTP.Paths {
		paths = append(paths, p.Path)
	}
	if !contains(paths, v.Node.APIPathPrefix) || !contains(paths, v.Node.HealthPath) {
		t.Errorf("ingress paths %v lack %s or %s", paths, v.Node.APIPathPrefix, v.Node.HealthPath)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestStrictDecodingCatchesTyposAndWrongTypes(t *testing.T) {
	s, nodes := testSite(t)
	files, _, _ := renderVM(t, s, nodes[0])
	good := string(files[APIServer2File].Data)
	for _, c := range []struct{ from, to string }{
		{"readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true"}, // unknown field
		{"replicas: 2", "replicas: two"},                                 // wrong type
		{"runAsNonRoot: true\n        runAsUser", "runAsNonRoot: yes-please\n        runAsUser"},
	} {
		bad := strings.Replace(good, c.from, c.to, 1)
		if bad == good {
			t.Fatalf("the manifest does not contain %q; the test no longer mutates anything", c.from)
		}
		if _, err := decodeAll([]byte(bad)); err == nil {
			t.Errorf("%q -> %q was accepted", c.from, c.to)
		} else {
			t.Logf("%q rejected: %v", c.to, err)
		}
	}
}

func TestLaunchConfigurationMatchesMicroK8sSchema(t *testing.T) {
	s, nodes := testSite(t)
	files, v, sec := renderVM(t, s, nodes[0])
	lc, err := ParseLaunchConfig(files[LaunchConfigFile].Data)
	if err != nil {
		t.Fatalf("%v\n%s", err, files[LaunchConfigFile].Data)
	}
	var addons []string
	for _, a := range lc.Addons {
		addons = append(addons, a.Name)
	}
	if !reflect.DeepEqual(addons, []string{"dns", "rbac", "hostpath-storage"}) {
		t.Errorf("addons %v, want dns, rbac and hostpath-storage (the upload volume's class)", addons)
	}
	if !contains(lc.ExtraSANs, v.Network.Address.Addr().String()) || !contains(lc.ExtraSANs, v.Hostname) {
		t.Errorf("extraSANs %v lack the node's IP %s or name %s", lc.ExtraSANs, v.Network.Address.Addr(), v.Hostname)
	}
	arg := lc.ExtraKubeAPIServerArgs["--encryption-provider-config"]
	if arg == nil || *arg != "${SNAP_DATA}/args/"+EncryptionConfigName {
		t.Fatalf("kube-apiserver is not given the encryption configuration: %v", arg)
	}
	encYAML, ok := lc.ExtraConfigFiles[EncryptionConfigName]
	if !ok {
		t.Fatalf("extraConfigFiles lacks %s", EncryptionConfigName)
	}
	objs, err := decodeAll([]byte(encYAML))
	if err != nil || len(objs) != 1 {
		t.Fatalf("encryption configuration: %v (%d objects)\n%s", err, len(objs), encYAML)
	}
	ec, ok := objs[0].(*apiserverv1.EncryptionConfiguration)
	if !ok {
		t.Fatalf("encryption configuration decoded as %T", objs[0])
	}
	r := ec.Resources[0]
	if !reflect.DeepEqual(r.Resources, []string{"secrets"}) || r.Providers[0].Secretbox == nil {
		t.Fatalf("secrets are not encrypted with secretbox first: %+v", r)
	}
	if got := r.Providers[0].Secretbox.Keys[0].Secret; got != sec.EncryptionKey {
		t.Errorf("secretbox key %q is not the seed's", got)
	}
	for _, p := range r.Providers {
		if p.AESCBC != nil {
			t.Error("aescbc is configured; Kubernetes recommends against it")
		}
	}

	for _, bad := range []string{
		strings.Replace(string(files[LaunchConfigFile].Data), "extraSANs:", "extraSAN:", 1),
		strings.Replace(string(files[LaunchConfigFile].Data), "version: 0.1.0", "version: 0.2.0", 1),
		strings.Replace(string(files[LaunchConfigFile].Data), "  - name: dns", "  - name: [dns]", 1),
	} {
		if _, err := ParseLaunchConfig([]byte(bad)); err == nil {
			t.Errorf("accepted a broken launch configuration:\n%s", bad)
		} else {
			t.Logf("rejected: %v", err)
		}
	}
}

// The schema transcription must accept every field of the upstream format,
// or a launch configuration using them would be refused here.
func TestLaunchConfigurationSchemaKnowsEveryField(t *testing.T) {
	full := `version: 0.1.0
persistentClusterToken: "0123456789abcdef0123456789abcdef"
join: {url: "10.0.0.1:25000/0123456789abcdef0123456789abcdef", worker: true}
extraSANs: [10.0.0.2, n.example]
addonRepositories: [{name: core, url: /snap/microk8s/current/addons/core, reference: "1.35"}]
addons: [{name: dns}, {name: registry, disable: true}, {name: x, args: [a, b]}]
extraKubeletArgs: {--a: b}
extraKubeAPIServerArgs: {--event-ttl: null}
extraKubeProxyArgs: {--a: b}
extraKubeControllerManagerArgs: {--a: b}
extraKubeSchedulerArgs: {--a: b}
extraContainerdArgs: {-l: debug}
extraContainerdEnv: {http_proxy: "http://p:3128"}
extraDqliteArgs: {--disk-mode: "true"}
extraDqliteEnv: {LIBRAFT_TRACE: "1"}
extraConfigFiles: {f: "x"}
containerdRegistryConfigs: {docker.io: 'server = "http://m:5000"'}
`
	c, err := ParseLaunchConfig([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.ExtraKubeAPIServerArgs["--event-ttl"]; v != nil {
		t.Errorf("null argument decoded as %q; null removes an argument", *v)
	}
}

func TestBothNodesGetTheSameAPIServer2Secrets(t *testing.T) {
	s, nodes := testSite(t)
	a, _, _ := renderVM(t, s, nodes[0])
	b, _, _ := renderVM(t, s, nodes[1])
	secretOf := func(f roles.File) *corev1.Secret {
		objs, err := decodeAll(f.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if s, ok := o.(*corev1.Secret); ok {
				return s
			}
		}
		t.Fatal("no Secret")
		return nil
	}
	sa, sb := secretOf(a[APIServer2File]), secretOf(b[APIServer2File])
	if len(sa.StringData) == 0 || !reflect.DeepEqual(sa.StringData, sb.StringData) {
		t.Errorf("the nodes' APIServer2 secrets differ:\n%v\n%v", sa.StringData, sb.StringData)
	}
	// Their launch configurations differ where a node is itself.
	la, _ := ParseLaunchConfig(a[LaunchConfigFile].Data)
	lb, _ := ParseLaunchConfig(b[LaunchConfigFile].Data)
	if reflect.DeepEqual(la.ExtraSANs, lb.ExtraSANs) {
		t.Errorf("both nodes have extraSANs %v", la.ExtraSANs)
	}
	if !reflect.DeepEqual(la.ExtraConfigFiles, lb.ExtraConfigFiles) {
		t.Error("the nodes encrypt secrets at rest with different keys; the site has one")
	}
}

func TestNodeSeedCarriesNoGatewaySecret(t *testing.T) {
	s, nodes := testSite(t)
	var gw seeds.VM
	for _, vm := range s.VMs {
		if vm.Role == values.RoleGateway {
			gw = vm
		}
	}
	_, gsec := s.Values(gw)
	g := gsec.(*values.GatewaySecrets)
	for _, vm := range nodes {
		sd, err := seeds.Render(s, vm)
		if err != nil {
			t.Fatal(err)
		}
		ud := string(sd.UserData)
		for _, leak := range []string{g.StatsPassword, "stats_password", values.ServerPEMFile, "PRIVATE KEY"} {
			if leak != "" && strings.Contains(ud, leak) {
				t.Errorf("%s: the seed carries %q, a gateway secret", vm.Name, leak)
			}
		}
		// and it still renders the node completely
		v, sec := s.Values(vm)
		if _, err := Render(v, sec.(*values.NodeSecrets), testImages); err != nil {
			t.Errorf("%s: %v", vm.Name, err)
		}
	}
}

func TestRenderRefusesWhatWouldBreakOrDefault(t *testing.T) {
	s, nodes := testSite(t)
	v0, sec0 := s.Values(nodes[0])
	base := *sec0.(*values.NodeSecrets)
	cases := []struct {
		name string
		edit func(v *values.Site, sec *values.NodeSecrets, im *Images)
		want string
	}{
		{"no jwt secret", func(v *values.Site, sec *values.NodeSecrets, im *Images) { sec.JWTSecret = "" }, "jwt_secret is empty"},
		{"no api key", func(v *values.Site, sec *values.NodeSecrets, im *Images) { sec.APIKey = "" }, "api_key is empty"},
		{"short key", func(v *values.Site, sec *values.NodeSecrets, im *Images) { sec.EncryptionKey = "c2hvcnQ=" }, "32 random bytes"},
		{"port clash", func(v *values.Site, sec *values.NodeSecrets, im *Images) { v.Node.IngressPort = 16443 }, "kube-apiserver"},
		{"no gateways", func(v *values.Site, sec *values.NodeSecrets, im *Images) { v.Node.TrustedProxies = nil }, "trusted_proxies is empty"},
		{"tag not digest", func(v *values.Site, sec *values.NodeSecrets, im *Images) { im.Traefik = "traefik:v3" }, "repository@sha256"},
		{"no registry", func(v *values.Site, sec *values.NodeSecrets, im *Images) {
			im.Traefik = "library/traefik@sha256:" + strings.Repeat("1", 64)
		}, "does not name its registry"},
		{"env overrides secret", func(v *values.Site, sec *values.NodeSecrets, im *Images) {
			sec.Env = map[string]string{"JWT_SECRET": "x"}
		}, "already set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, _ := s.Values(nodes[0])
			node := *v.Node
			v.Node = &node
			sec := base
			im := testImages
			c.edit(v, &sec, &im)
			_, err := Render(v, &sec, im)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	_ = v0
}

// exampleSite is the shipped example site with the files keygen makes:
// the secrets, the gateway's certificate, the node CA and the nodes'
// certificate (node.tls).
func exampleSite(t *testing.T) *seeds.Site {
	t.Helper()
	p := seedstest.ExampleSite(t)
	if _, err := seeds.Keygen(p, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := seeds.Load(p, seeds.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tlsObjects returns the node-certificate Secret and APIServer2's Ingress.
func tlsObjects(t *testing.T, files map[string]roles.File) (*corev1.Secret, *networkingv1.Ingress) {
	t.Helper()
	objs, err := decodeAll(files[APIServer2File].Data)
	if err != nil {
		t.Fatal(err)
	}
	var sec *corev1.Secret
	var ing *networkingv1.Ingress
	for _, o := range objs {
		switch x := o.(type) {
		case *corev1.Secret:
			if x.Name == NodeTLSSecret {
				sec = x
			}
		case *networkingv1.Ingress:
			ing = x
		}
	}
	if ing == nil {
		t.Fatal("no Ingress rendered")
	}
	return sec, ing
}

// TestNodeCertificateServedForTheGatewaysName: with node.tls, each node's
// APIServer2 manifests carry the site's node certificate as a
// kubernetes.io/tls Secret, and the Ingress names it for the server name
// the gateway asks for, so Traefik presents it to the gateway. Without
// node.tls neither appears.
func TestNodeCertificateServedForTheGatewaysName(t *testing.T) {
	s := exampleSite(t)
	name := s.Gateway.BackendTLS.ServerName
	for _, vm := range s.ByRole(values.RoleNode) {
		files, v, _ := renderVM(t, s, vm)
		if v.Node.TLSServerName != name {
			t.Errorf("%s: site.json names %q for the node certificate; want the gateway's %q", vm.Name, v.Node.TLSServerName, name)
		}
		sec, ing := tlsObjects(t, files)
		if sec == nil {
			t.Fatalf("%s: no Secret %s", vm.Name, NodeTLSSecret)
		}
		if sec.Type != corev1.SecretTypeTLS || sec.Namespace != "apiserver2" ||
			sec.StringData[corev1.TLSCertKey] != string(s.TLS.NodeCertPEM) || sec.StringData[corev1.TLSPrivateKeyKey] != string(s.TLS.NodeKeyPEM) {
			t.Errorf("%s: Secret %s is type %q in %q and does not hold the site's node certificate and key", vm.Name, sec.Name, sec.Type, sec.Namespace)
		}
		want := []networkingv1.IngressTLS{{Hosts: []string{name}, SecretName: NodeTLSSecret}}
		if !reflect.DeepEqual(ing.Spec.TLS, want) {
			t.Errorf("%s: Ingress tls %+v; want %+v", vm.Name, ing.Spec.TLS, want)
		}
	}

	plain, nodes := testSite(t)
	files, _, _ := renderVM(t, plain, nodes[0])
	if sec, ing := tlsObjects(t, files); sec != nil || len(ing.Spec.TLS) != 0 {
		t.Errorf("a site without node.tls renders a node certificate Secret (%v) or Ingress tls %+v", sec != nil, ing.Spec.TLS)
	}
}

// TestRenderRefusesABrokenNodeCertificate: values that would make Traefik
// serve no certificate, or one the gateway must refuse, stop the render.
func TestRenderRefusesABrokenNodeCertificate(t *testing.T) {
	s := exampleSite(t)
	vm := s.ByRole(values.RoleNode)[0]
	for _, c := range []struct {
		name string
		edit func(*values.Node, *values.NodeSecrets)
		want string
	}{
		{"name without certificate", func(n *values.Node, sec *values.NodeSecrets) { sec.TLSCertificate, sec.TLSKey = "", "" }, "lacks tls_certificate or tls_key"},
		{"certificate without name", func(n *values.Node, sec *values.NodeSecrets) { n.TLSServerName = "" }, "no node.tls_server_name"},
		{"name the certificate does not cover", func(n *values.Node, sec *values.NodeSecrets) { n.TLSServerName = "other.bank1.example.net" }, "does not cover"},
		{"key of another certificate", func(n *values.Node, sec *values.NodeSecrets) { sec.TLSKey = string(s.TLS.KeyPEM) }, "node certificate and key"},
	} {
		v, sec := s.Values(vm)
		ns := sec.(*values.NodeSecrets)
		c.edit(v.Node, ns)
		if _, err := Render(v, ns, testImages); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Render returned %v; want an error containing %q", c.name, err, c.want)
		}
	}
}
