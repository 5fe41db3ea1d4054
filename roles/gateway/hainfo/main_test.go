package hainfo

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestFlagErrorsSayWhatIsValid(t *testing.T) {
	for _, c := range []struct {
		args    []string
		mention string
	}{
		{[]string{"--watch=10ms"}, "100ms or more"},
		{[]string{"--watch", "1s"}, "--watch=1s"},
		{[]string{"--count=2"}, "--count needs --watch"},
		{[]string{"--watch", "--count=-1"}, "negative"},
		{[]string{"--socket", "udp@127.0.0.1:1"}, "ipv4@HOST:PORT"},
		{[]string{"--timeout=0s"}, "must be positive"},
		{[]string{"extra"}, "takes only flags"},
		{[]string{"--nope"}, "unknown flag"},
	} {
		_, errs, code := runHainfo(t, c.args...)
		if code != 2 || !strings.Contains(errs, c.mention) {
			t.Errorf("hainfo %s: exit %d, stderr %q; want exit 2 mentioning %q", strings.Join(c.args, " "), code, errs, c.mention)
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	_, errs, code := runHainfo(t, "--help")
	if code != 0 || !strings.Contains(errs, "--socket") || !strings.Contains(errs, "sess/s") {
		t.Errorf("--help: exit %d, output %q; want 0 and the flag list with the unit legend", code, errs)
	}
}

func TestMissingSocketNamesIt(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	out, errs, code := runHainfo(t, "--socket", sock)
	if code != 1 || out != "" || !strings.Contains(errs, sock) || !strings.Contains(errs, "no such socket") {
		t.Errorf("missing socket: exit %d, stdout %q, stderr %q; want exit 1 and an error naming %s", code, out, errs, sock)
	}
}
