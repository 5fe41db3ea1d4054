package rootfs

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockMakesASecondBuilderWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	// A second open of the file is a second flock owner, as another
	// process's would be.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := lock(ctx, path); err == nil || !strings.Contains(err.Error(), "waiting for another build") {
		t.Fatalf("second lock while the first is held: got %v, want a wait that ends with the context", err)
	}
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		u, err := lock(ctx, path)
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("lock not taken after the holder released it: %v", err)
	}
}
