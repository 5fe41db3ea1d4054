package roles

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File is one rendered file of a service configuration.
type File struct {
	Path string // absolute
	Mode os.FileMode
	Data []byte
}

// Generations installs rendered configurations atomically. Each apply
// renders into a fresh generation directory under Base; "current" is a
// symlink to the live one, switched with a rename, so a reader (or a service
// reload) sees the old set of files or the new one, never a mix. Services
// point at Base/current/... (the image links e.g. /etc/haproxy/haproxy.cfg
// there).
type Generations struct {
	Base string
	// Keep is how many earlier generations stay on disk beside the live one,
	// for inspection and rollback; at least 1 (the previous one).
	Keep int
}

// Current is the path through which services read the live generation.
func (g Generations) Current() string { return filepath.Join(g.Base, "current") }

// RenderFunc renders every file of a configuration with dir as the
// directory its files live in (paths inside the files refer to dir).
type RenderFunc func(dir string) ([]File, error)

// Result says what Apply did.
type Result struct {
	Changed    bool   // false when the rendered files equal the live ones
	Generation string // the live generation's directory after Apply
}

// Apply renders the configuration twice: once into a staging generation,
// with paths pointing at it, which validate checks (e.g. `haproxy -c`), and
// once with paths pointing at Current, which is what gets installed. If the
// result equals the live generation nothing changes. Otherwise the new
// generation becomes current and reload runs; if reload fails the previous
// generation is restored. A failure at any point leaves the live
// configuration as it was.
func (g Generations) Apply(ctx context.Context, render RenderFunc, validate func(ctx context.Context, dir string) error, reload func(ctx context.Context) error) (Result, error) {
	if err := os.MkdirAll(g.Base, 0o755); err != nil {
		return Result{}, err
	}
	id := time.Now().UTC().Format("20060102T150405") + "-" + randHex(4)
	stage := filepath.Join(g.Base, id)
	staged, err := render(stage)
	if err != nil {
		return Result{}, fmt.Errorf("render: %w", err)
	}
	if err := writeFiles(stage, staged); err != nil {
		os.RemoveAll(stage)
		return Result{}, err
	}
	if validate != nil {
		if err := validate(ctx, stage); err != nil {
			os.RemoveAll(stage)
			return Result{}, fmt.Errorf("the new configuration is invalid, nothing was changed: %w", err)
		}
	}
	final, err := render(g.Current())
	if err != nil {
		os.RemoveAll(stage)
		return Result{}, fmt.Errorf("render: %w", err)
	}
	prev, _ := os.Readlink(g.Current())
	if prev != "" && sameFiles(g.Current(), final) {
		os.RemoveAll(stage)
		return Result{Changed: false, Generation: filepath.Join(g.Base, prev)}, nil
	}
	// Replace the staged files by the ones that refer to Current.
	if err := os.RemoveAll(stage); err != nil {
		return Result{}, err
	}
	if err := writeFiles(stage, rebase(final, g.Current(), stage)); err != nil {
		os.RemoveAll(stage)
		return Result{}, err
	}
	if err := g.switchTo(id); err != nil {
		os.RemoveAll(stage)
		return Result{}, err
	}
	if reload != nil {
		if err := reload(ctx); err != nil {
			if prev != "" {
				if rerr := g.switchTo(prev); rerr != nil {
					return Result{}, fmt.Errorf("reload failed (%v) and restoring generation %s failed too: %w", err, prev, rerr)
				}
			}
			return Result{}, fmt.Errorf("reload failed, previous configuration restored: %w", err)
		}
	}
	g.prune(id, prev)
	return Result{Changed: true, Generation: stage}, nil
}

// rebase maps files rendered for dir onto the directory where they are
// stored (the generation directory behind Current).
func rebase(files []File, from, to string) []File {
	out := make([]File, len(files))
	for i, f := range files {
		out[i] = f
		if rel, err := filepath.Rel(from, f.Path); err == nil && !strings.HasPrefix(rel, "..") {
			out[i].Path = filepath.Join(to, rel)
		}
	}
	return out
}

// writeFiles writes the files that live under dir (others, such as files in
// the image, are not the generation's to write) and syncs them.
func writeFiles(dir string, files []File) error {
	for _, f := range files {
		rel, err := filepath.Rel(dir, f.Path)
		if err != nil || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("rendered file %s is outside the generation directory %s", f.Path, dir)
		}
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
			return err
		}
		fh, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, f.Mode)
		if err != nil {
			return err
		}
		_, werr := fh.Write(f.Data)
		serr := fh.Sync()
		cerr := fh.Close()
		if err := errors.Join(werr, serr, cerr); err != nil {
			return err
		}
		if err := os.Chmod(f.Path, f.Mode); err != nil {
			return err
		}
	}
	return nil
}

func sameFiles(dir string, files []File) bool {
	want := map[string]File{}
	for _, f := range files {
		want[f.Path] = f
	}
	n := 0
	err := filepath.WalkDir(dir+"/", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		rel, _ := filepath.Rel(dir+"/", p)
		f, ok := want[filepath.Join(dir, rel)]
		if !ok {
			return errors.New("extra file")
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, f.Data) {
			return errors.New("differs")
		}
		if fi, err := d.Info(); err != nil || fi.Mode().Perm() != f.Mode.Perm() {
			return errors.New("mode differs")
		}
		return nil
	})
	return err == nil && n == len(files)
}

func (g Generations) switchTo(id string) error {
	tmp := filepath.Join(g.Base, ".current-"+randHex(4))
	if err := os.Symlink(id, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, g.Current()); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(g.Base); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// prune removes old generations beyond Keep, never the live or previous one.
func (g Generations) prune(live, prev string) {
	keep := g.Keep
	if keep < 1 {
		keep = 1
	}
	entries, err := os.ReadDir(g.Base)
	if err != nil {
		return
	}
	var old []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != live && e.Name() != prev && !strings.HasPrefix(e.Name(), ".") {
			old = append(old, e.Name())
		}
	}
	sort.Strings(old) // names start with a UTC timestamp
	for len(old) > keep-1 && len(old) > 0 {
		os.RemoveAll(filepath.Join(g.Base, old[0]))
		old = old[1:]
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
