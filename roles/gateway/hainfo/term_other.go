//go:build !linux

package hainfo

import "io"

// isTerminal is false off Linux: the tool runs on the gateway appliance, and
// plain output is always safe.
func isTerminal(io.Writer) bool { return false }
