package haproxytest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// httpConfig answers every request on port with body (a quoted string is
// not allowed to hold a newline here, so the body is one word).
func httpConfig(port int, body string) string {
	return fmt.Sprintf(`global
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 5s
    timeout server 5s

frontend web
    bind 127.0.0.1:%d
    http-request return status 200 content-type text/plain string "%s"
`, port, body)
}

// get fetches url on a fresh connection, so a reload can not hide behind a
// kept-alive connection to the old worker.
func get(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestServesReloadsUnderLoadAndLogs(t *testing.T) {
	root := Rootfs(t)
	port := FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/hello", port)
	inst := Start(t, root, httpConfig(port, "one"), nil)

	code, body, err := get(url)
	if err != nil || code != 200 || body != "one" {
		t.Fatalf("GET %s: %d %q %v; want 200 \"one\"", url, code, body, err)
	}
	// The request log goes to haproxy's stdout.
	inst.WaitLog(`"GET /hello HTTP/1\.1"`, 5*time.Second)

	before, err := inst.Worker()
	if err != nil {
		t.Fatal(err)
	}

	// Requests keep coming while the configuration changes and the master
	// reloads; every one of them must be answered.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed, fromOld, fromNew atomic.Int64
	var firstErr atomic.Value
	loadEnd := time.Now().Add(30 * time.Second)
	for c := 0; c < 3; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 100000 && time.Now().Before(loadEnd); n++ {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := get(url)
				if err == nil && code == 200 && (body == "one" || body == "two") {
					ok.Add(1)
					if body == "one" {
						fromOld.Add(1)
					} else {
						fromNew.Add(1)
					}
					continue
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", code, body, err))
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	inst.WriteFile(ConfigFile, []byte(httpConfig(port, "two")))
	if err := inst.Reload(); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	after, err := inst.Worker()
	if err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Fatalf("worker is still %d after reload", before)
	}
	if fromOld.Load() == 0 || fromNew.Load() == 0 {
		t.Errorf("the load did not span the reload: %d answers from the old config, %d from the new", fromOld.Load(), fromNew.Load())
	}
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed across the reload, first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	t.Logf("worker %d -> %d; answers during the reload: %d old, %d new", before, after, fromOld.Load(), fromNew.Load())

	code, body, err = get(url)
	if err != nil || code != 200 || body != "two" {
		t.Fatalf("after reload GET: %d %q %v; want the new config's \"two\"", code, body, err)
	}
	// The old worker is gone from the host, not only from show proc.
	deadline := time.Now().Add(5 * time.Second)
	for processExists(before) {
		if time.Now().After(deadline) {
			t.Fatalf("old worker %d still runs 5 s after the reload", before)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

func TestLuaFileFromTheInstanceDirectory(t *testing.T) {
	root := Rootfs(t)
	port := FreePort(t)
	cfg := fmt.Sprintf(`global
    tune.lua.bool-sample-conversion normal
    lua-load lua/hello.lua

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s

frontend web
    bind 127.0.0.1:%d
    http-request use-service lua.hello
`, port)
	lua := `core.register_service("hello", "http", function(applet)
  local body = "lua " .. _VERSION .. " path " .. applet.path
  applet:set_status(200)
  applet:add_header("content-length", tostring(#body))
  applet:start_response()
  applet:send(body)
end)
`
	Start(t, root, cfg, map[string][]byte{"lua/hello.lua": []byte(lua)})
	code, body, err := get(fmt.Sprintf("http://127.0.0.1:%d/x", port))
	if err != nil || code != 200 || body != "lua Lua 5.4 path /x" {
		t.Fatalf("Lua service answered %d %q %v; want 200 \"lua Lua 5.4 path /x\"", code, body, err)
	}
}

func TestInvalidConfigIsRejectedWithHAProxysMessage(t *testing.T) {
	root := Rootfs(t)
	cfg := "frontend web\n    bind 127.0.0.1:1\n    frobnicate yes\n"
	_, err := start(t, root, cfg, nil)
	if err == nil {
		t.Fatal("a config with an unknown keyword started")
	}
	for _, want := range []string{"ALERT", "haproxy.cfg:3", "frobnicate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q (haproxy's own message):\n%v", want, err)
		}
	}
}

func TestCheck(t *testing.T) {
	root := Rootfs(t)
	// The agent validates files it rendered into the tree; do the same.
	if err := os.MkdirAll(root+RunDir, 0o755); err != nil {
		t.Fatal(err)
	}
	inTree, err := os.MkdirTemp(root+RunDir, "check")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(inTree)
	name := strings.TrimPrefix(inTree, root)
	good := "defaults\n    mode http\n    timeout client 1s\n    timeout server 1s\n    timeout connect 1s\nfrontend f\n    bind 127.0.0.1:1\n    http-request return status 200\n"
	if err := os.WriteFile(inTree+"/good.cfg", []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Check(root, name+"/good.cfg"); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	bad := strings.Replace(good, "status 200", "status 200 frobnicate", 1)
	if err := os.WriteFile(inTree+"/bad.cfg", []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Check(root, name+"/bad.cfg")
	if err == nil || !strings.Contains(err.Error(), "bad.cfg:8") {
		t.Fatalf("invalid config: want haproxy's error naming bad.cfg:8, got %v", err)
	}
	if err := Check(root, "relative.cfg"); err == nil {
		t.Fatal("a relative config path was accepted")
	}
}

func TestKillStopsServing(t *testing.T) {
	root := Rootfs(t)
	port := FreePort(t)
	inst := Start(t, root, httpConfig(port, "up"), nil)
	worker, err := inst.Worker()
	if err != nil {
		t.Fatal(err)
	}
	inst.Kill()
	select {
	case <-inst.Exited():
	default:
		t.Fatal("Kill returned before the master exited")
	}
	deadline := time.Now().Add(5 * time.Second)
	for processExists(worker) {
		if time.Now().After(deadline) {
			t.Fatalf("worker %d survived the master's SIGKILL", worker)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Fatal("port still accepts connections after Kill")
	}
}

func TestReloadWithBrokenConfigKeepsTheOldWorker(t *testing.T) {
	root := Rootfs(t)
	port := FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	inst := Start(t, root, httpConfig(port, "old"), nil)
	before, err := inst.Worker()
	if err != nil {
		t.Fatal(err)
	}
	inst.WriteFile(ConfigFile, []byte(httpConfig(port, "new")+"    frobnicate yes\n"))
	err = inst.Reload()
	if err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("reload of a broken config: want haproxy's complaint about frobnicate, got %v", err)
	}
	if after, err := inst.Worker(); err != nil || after != before {
		t.Fatalf("after a refused reload the worker is %d (%v), want the old %d", after, err, before)
	}
	if code, body, err := get(url); err != nil || code != 200 || body != "old" {
		t.Fatalf("after a refused reload GET: %d %q %v; want the old config's answer", code, body, err)
	}
}
