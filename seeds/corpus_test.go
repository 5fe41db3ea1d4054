package seeds

import (
	"path/filepath"
	"testing"

	"github.com/applbuild/applbuild/seeds/seedstest"
)

func corpusDir(t testing.TB, sub string) string {
	return seedstest.Corpus(t, filepath.Join("testdata", sub))
}
