package gateway_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/applbuild/applbuild/roles/gateway"
	"github.com/applbuild/applbuild/roles/values"
)

// BenchmarkTLSHandshake measures full TLS handshakes (no resumption) per
// second through the gateway with JA4 on and off, the configuration
// otherwise identical (the TCP front and its hand-off stay; only the Lua
// action goes). Compare the two sub-benchmarks of one run:
//
//	make bench-ja4
//
// Each operation is a new connection, a complete TLS 1.3 handshake and a
// close, from parallel clients on loopback.
func BenchmarkTLSHandshake(b *testing.B) {
	b1 := startBackend(b, "node1", 0)
	for _, on := range []bool{false, true} {
		name := "ja4=off"
		if on {
			name = "ja4=on"
		}
		g := startGateway(b, []*backend{b1}, func(v *values.Site, _ *values.GatewaySecrets, _ *gateway.Options) {
			v.Gateway.JA4.Enabled = on
		})
		cfg := &tls.Config{RootCAs: g.pool, ServerName: serverName, NextProtos: []string{"http/1.1"}, ClientSessionCache: nil}
		b.Run(name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				d := &net.Dialer{Timeout: 5 * time.Second}
				for pb.Next() {
					c, err := tls.DialWithDialer(d, "tcp", g.https, cfg)
					if err != nil {
						b.Error(err)
						return
					}
					c.Close()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}
