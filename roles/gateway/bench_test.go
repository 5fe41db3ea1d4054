package gateway_test

import (
	"crypto/tls"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/applbuild/applbuild/roles/gateway"
	"github.com/applbuild/applbuild/roles/values"
)

// handshakes runs full TLS handshakes (no resumption: a new connection
// each time) against addr from workers clients for d, and returns the rate.
func handshakes(b *testing.B, addr string, cfg *tls.Config, workers int, d time.Duration) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dialer := &net.Dialer{Timeout: 5 * time.Second}
			for time.Now().Before(stop) {
				c, err := tls.DialWithDialer(dialer, "tcp", addr, cfg)
				if err != nil {
					b.Error(err)
					return
				}
				c.Close()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkJA4HandshakeCost measures TLS handshakes per second through two
// gateways that differ only in JA4 (the TCP front and its hand-off stay;
// only the Lua action goes), alternating between them in rounds so that a
// busy machine slows both alike. It reports the median rates and, as
// on/off, the median of the per-round ratios: each ratio compares two
// measurements taken seconds apart, so a load that comes and goes on the
// machine moves both sides of it together.
//
//	make bench-ja4
func BenchmarkJA4HandshakeCost(b *testing.B) {
	b1 := startBackend(b, "node1", 0)
	start := func(on bool) *gw {
		return startGateway(b, []*backend{b1}, func(v *values.Site, _ *values.GatewaySecrets, _ *gateway.Options) {
			v.Gateway.JA4.Enabled = on
		})
	}
	off, on := start(false), start(true)
	cfg := func(g *gw) *tls.Config {
		return &tls.Config{RootCAs: g.pool, ServerName: serverName, NextProtos: []string{"http/1.1"}}
	}
	const rounds, per, workers = 8, 2 * time.Second, 4
	var offRates, onRates, ratios []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			first, second := off, on
			if r%2 == 1 {
				first, second = on, off
			}
			rf := handshakes(b, first.https, cfg(first), workers, per)
			rs := handshakes(b, second.https, cfg(second), workers, per)
			if first == off {
				offRates, onRates = append(offRates, rf), append(onRates, rs)
			} else {
				offRates, onRates = append(offRates, rs), append(onRates, rf)
			}
			ratios = append(ratios, onRates[len(onRates)-1]/offRates[len(offRates)-1])
		}
	}
	mo, mn := median(offRates), median(onRates)
	b.ReportMetric(mo, "off-handshakes/s")
	b.ReportMetric(mn, "on-handshakes/s")
	b.ReportMetric(median(ratios), "on/off")
	b.Logf("rounds off %v", offRates)
	b.Logf("rounds on  %v", onRates)
	b.Logf("rounds on/off %v", ratios)
}
