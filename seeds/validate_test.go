package seeds

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wants reads the "# want: LINE: text" (or "# want: text") header lines of a
// corpus file.
func wants(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w, ok := strings.CutPrefix(sc.Text(), "# want: ")
		if !ok {
			break
		}
		out = append(out, w)
	}
	return out
}

func TestBrokenSitesAreRejected(t *testing.T) {
	dir := corpusDir(t, "bad")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var n int
	for _, path := range files {
		if strings.HasPrefix(filepath.Base(path), "secrets") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			ws := wants(t, path)
			if len(ws) == 0 {
				t.Fatalf("%s has no '# want:' line", path)
			}
			_, err := Load(path, LoadOptions{})
			if err == nil {
				t.Fatalf("accepted; want errors %q", ws)
			}
			msg := err.Error()
			for _, w := range ws {
				// "12: text" means one reported problem must be at file:12
				// and contain text; a bare text may come from another file.
				loc, text := "", w
				if i := strings.Index(w, ": "); i > 0 && strings.Trim(w[:i], "0123456789") == "" {
					loc, text = filepath.Base(path)+":"+w[:i]+": ", w[i+2:]
				}
				found := false
				for _, line := range strings.Split(msg, "\n") {
					if strings.Contains(line, loc) && strings.Contains(line, text) {
						found = true
					}
				}
				if !found {
					t.Errorf("no problem reported at %q containing %q:\n%s", loc, text, msg)
				}
			}
		})
	}
	if n < 25 {
		t.Fatalf("corpus has %d broken sites; keep at least 25", n)
	}
}

func TestErrorsAreCollectedNotFirstOnly(t *testing.T) {
	dir := corpusDir(t, "bad")
	_, err := Load(filepath.Join(dir, "several-errors.yaml"), LoadOptions{})
	var es Errors
	if !errors.As(err, &es) || len(es) < 3 {
		t.Fatalf("want at least 3 collected errors, got %v", err)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Line < es[i-1].Line {
			t.Errorf("errors not in line order: %v", es)
		}
	}
}

func TestGoodSitesLoadWithDefaults(t *testing.T) {
	dir := corpusDir(t, "good")
	s, err := Load(filepath.Join(dir, "basic.yaml"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Gateway.Backends); got != 2 {
		t.Fatalf("backends derived from nodes: got %d, want 2", got)
	}
	if b := s.Gateway.Backends[1]; b.Name != "node2" || b.Address.String() != "10.30.0.22" || b.Port != 443 {
		t.Errorf("second backend = %+v, want node2 10.30.0.22:443", b)
	}
	if len(s.Node.TrustedProxies) != 1 || s.Node.TrustedProxies[0].String() != "10.30.0.10" {
		t.Errorf("trusted proxies = %v, want the gateway's 10.30.0.10", s.Node.TrustedProxies)
	}
	if s.SSHUser != "ops" || s.Gateway.RateLimits.Login.Requests != DefaultLoginRequests || s.Gateway.RateLimits.Login.PeriodSeconds != 60 {
		t.Errorf("defaults not applied: user %q, login %+v", s.SSHUser, s.Gateway.RateLimits.Login)
	}
	if s.Gateway.API.MaxBodyBytes != 10<<20 || !s.Gateway.JA4.Enabled {
		t.Errorf("defaults not applied: max body %d, ja4 %v", s.Gateway.API.MaxBodyBytes, s.Gateway.JA4.Enabled)
	}
}

func TestCertificateCheckedAgainstClock(t *testing.T) {
	dir := corpusDir(t, "good")
	if _, err := Load(filepath.Join(dir, "basic.yaml"), LoadOptions{Now: time.Now().AddDate(2, 0, 0)}); err == nil || !strings.Contains(err.Error(), "expired on") {
		t.Fatalf("a site checked two years on should report the expired certificate, got %v", err)
	}
}
