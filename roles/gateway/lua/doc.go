// Package lua holds the gateway's HAProxy Lua modules and the tests that
// hold them equal to their Go references. ja4.lua computes JA4 TLS client
// fingerprints from the raw ClientHello (reference: verify/ja4).
package lua

import "embed"

// Files holds the Lua modules to install into the gateway image (the
// directory's *.lua files; test drivers live under testdata and are not
// included).
//
//go:embed *.lua
var Files embed.FS
