package node

import (
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// traefikOptions are the Traefik static-configuration CLI options the
// node's Traefik may use, transcribed from Traefik's generated CLI
// reference (docs/content/reference/static-configuration/cli-ref.md in
// github.com/traefik/traefik) and, for entryPoints.<name>.http.tls, the
// v2.1+ EntryPoints routing reference. Traefik matches option names
// without regard to case, so they are compared in lower case.
var traefikOptions = map[string]bool{
	"--entrypoints.<name>.address":                     true,
	"--entrypoints.<name>.http.tls":                    true,
	"--entrypoints.<name>.forwardedheaders.trustedips": true,
	"--entrypoints.<name>.forwardedheaders.insecure":   true,
	"--entrypoints.<name>.proxyprotocol.trustedips":    true,
	"--ping":                        true,
	"--ping.entrypoint":             true,
	"--providers.kubernetesingress": true,
	"--providers.kubernetesingress.ingressclass": true,
	"--log.level": true,
	"--accesslog": true,
}

var entryPointRe = regexp.MustCompile(`^--entrypoints\.[a-z0-9_-]+\.`)

// checkTraefikArgs refuses an option Traefik does not have, and the
// insecure forwarded-headers mode that would trust every client.
func checkTraefikArgs(args []string) []string {
	var bad []string
	for _, a := range args {
		key, _, _ := strings.Cut(strings.ToLower(a), "=")
		key = entryPointRe.ReplaceAllString(key, "--entrypoints.<name>.")
		if !traefikOptions[key] || strings.HasSuffix(key, ".insecure") {
			bad = append(bad, a)
		}
	}
	return bad
}

func TestTraefikArgumentsAreKnownOptions(t *testing.T) {
	s, nodes := testSite(t)
	files, _, _ := renderVM(t, s, nodes[0])
	objs, err := decodeAll(files[TraefikFile].Data)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, o := range objs {
		if d, ok := o.(*appsv1.Deployment); ok {
			args = d.Spec.Template.Spec.Containers[0].Args
		}
	}
	if len(args) == 0 {
		t.Fatal("no Traefik arguments rendered")
	}
	if bad := checkTraefikArgs(args); len(bad) > 0 {
		t.Errorf("unknown or unsafe Traefik options: %v", bad)
	}
	// The check itself must catch a misspelt option and the insecure mode.
	if bad := checkTraefikArgs([]string{"--entryPoints.websecure.forwardedHeader.trustedIPs=1.2.3.4/32", "--entryPoints.websecure.forwardedHeaders.insecure=true"}); len(bad) != 2 {
		t.Errorf("the option check let through %v", bad)
	}
}
