//go:build linux

package hainfo

import (
	"io"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether w is a terminal: colour and screen clearing
// would garble a pipe or a file.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
