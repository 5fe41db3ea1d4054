package builder

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// DatasourceConfig pins cloud-init to the seed ISO. It is one line so that
// a grep of the image finds it as written.
const DatasourceConfig = "datasource_list: [ NoCloud, None ]\n"

// stepSeal removes everything that would make clones of the image share an
// identity or carry the build machine's state: the machine id, SSH host
// keys, cloud-init's state and logs, apt lists and caches, the random seed,
// logs; it pins cloud-init to NoCloud and locks every password.
// TestSealedImage inspects the finished disk for each of these.
//
// Uses: tree.
type stepSeal struct{}

func (stepSeal) Run(ctx context.Context, st multistep.StateBag) multistep.StepAction {
	tree := st.Get(stateTree).(string)
	if err := Seal(tree); err != nil {
		return halt(st, "sealing: %v", err)
	}
	return multistep.ActionContinue
}

func (stepSeal) Cleanup(multistep.StateBag) {}

// Seal seals a root file system tree in place, as the image builder does
// before writing the disk.
func Seal(tree string) error {
	in := func(p string) string { return filepath.Join(tree, p) }
	// An empty machine-id makes systemd generate a new one at first boot
	// (and treat the boot as the first: units' presets apply).
	if err := os.WriteFile(in("/etc/machine-id"), nil, 0o444); err != nil {
		return err
	}
	os.Remove(in("/var/lib/dbus/machine-id"))
	for _, glob := range []string{
		"/etc/ssh/ssh_host_*",
		"/var/lib/cloud/*",
		"/var/log/cloud-init*",
		"/var/lib/apt/lists/*",
		"/var/cache/apt/*.bin",
		"/var/cache/apt/archives/*.deb",
		"/var/cache/debconf/*-old",
		"/var/lib/systemd/random-seed",
		"/var/lib/systemd/credential.secret",
		"/var/log/journal/*",
		"/tmp/*",
		"/var/tmp/*",
		"/etc/appliance",
		"/root/.bash_history",
	} {
		m, _ := filepath.Glob(in(glob))
		for _, p := range m {
			if filepath.Base(p) == "partial" || filepath.Base(p) == "lock" {
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	// Logs stay as empty files so their owners and modes survive.
	logs, _ := filepath.Glob(in("/var/log/*.log"))
	for _, p := range logs {
		os.Truncate(p, 0)
	}
	if err := os.MkdirAll(in("/etc/cloud/cloud.cfg.d"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(in("/etc/cloud/cloud.cfg.d/99-applbuild-datasource.cfg"), []byte(DatasourceConfig), 0o644); err != nil {
		return err
	}
	os.WriteFile(in("/etc/hostname"), []byte("localhost\n"), 0o644)
	// The build host's resolver has no place in the image; systemd-resolved
	// provides the stub at boot.
	os.Remove(in("/etc/resolv.conf"))
	os.Symlink("../run/systemd/resolve/stub-resolv.conf", in("/etc/resolv.conf"))
	if err := lockPasswords(in("/etc/shadow")); err != nil {
		return err
	}
	return markUpdated(tree)
}

// markUpdated records that /etc and /var are current with /usr, as
// systemd-update-done does after a boot. Without the stamps every clone's
// first boot rebuilds what the build already made (ldconfig's cache, the
// hardware database, the journal catalog, system users): seconds of work
// under ConditionNeedsUpdate for nothing. The stamp's time is /usr's own
// modification time, in the file and as its mtime, so the condition finds
// them equal; the finished disk keeps both (mke2fs -d copies mtimes).
func markUpdated(tree string) error {
	usr, err := os.Stat(filepath.Join(tree, "usr"))
	if err != nil {
		return err
	}
	// What the stamp vouches for must exist: the packages' triggers built
	// the linker cache during the build.
	if _, err := os.Stat(filepath.Join(tree, "etc/ld.so.cache")); err != nil {
		return fmt.Errorf("no /etc/ld.so.cache in the tree: the dynamic linker cache was not built")
	}
	// Whole seconds, set on /usr too: mke2fs -d may drop nanoseconds, and
	// the stamp must agree with /usr on the finished disk.
	t := usr.ModTime().Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(tree, "usr"), t, t); err != nil {
		return err
	}
	body := fmt.Sprintf("# Written when the image was sealed: /etc and /var are current with /usr\n# (see systemd-update-done.service(8)).\nTIMESTAMP_NSEC=%d\n", t.UnixNano())
	for _, dir := range []string{"etc", "var"} {
		p := filepath.Join(tree, dir, ".updated")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
		if err := os.Chtimes(p, t, t); err != nil {
			return err
		}
	}
	return nil
}

// lockPasswords replaces every password field that could authenticate
// (a hash, or empty) with "!*", locking the account for password logins;
// SSH keys from the seed are the only way in.
func lockPasswords(shadow string) error {
	b, err := os.ReadFile(shadow)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 2 && !strings.HasPrefix(f[1], "!") && f[1] != "*" {
			f[1] = "!*"
		}
		out.WriteString(strings.Join(f, ":"))
		out.WriteByte('\n')
	}
	fi, err := os.Stat(shadow)
	if err != nil {
		return err
	}
	if err := os.WriteFile(shadow, out.Bytes(), fi.Mode().Perm()); err != nil {
		return fmt.Errorf("locking passwords: %w", err)
	}
	return nil
}
