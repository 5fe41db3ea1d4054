package hainfo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// DefaultTimeout bounds one exchange with the stats socket. HAProxy answers
// "show stat" in milliseconds; a stuck socket must not hang a watch loop.
const DefaultTimeout = 5 * time.Second

// maxReply caps what is read from the socket. A "show stat" of thousands of
// servers is a few megabytes; anything bigger is not a stat reply.
const maxReply = 64 << 20

// Client talks to one HAProxy stats socket, one command per connection: the
// CLI's default non-interactive mode answers one command line and closes, so
// a reply ends at EOF and needs no framing.
type Client struct {
	// Address is the socket to dial.
	Address Address
	// Timeout bounds each command, dial included; DefaultTimeout when zero.
	Timeout time.Duration
}

// Command sends one command line to the socket and returns the full reply.
// Errors name the socket.
func (c *Client) Command(ctx context.Context, command string) (string, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	logrus.Debugf("haproxy stats socket %s (%s %s): %q", c.Address, c.Address.Network, c.Address.Addr, command)
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.Address.Network, c.Address.Addr)
	if err != nil {
		return "", fmt.Errorf("connecting to HAProxy stats socket %s: %w%s", c.Address, err, dialHint(err))
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Closing on cancellation unblocks the read when the caller is
	// interrupted rather than timed out.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", fmt.Errorf("sending %q to HAProxy stats socket %s: %w", command, c.Address, err)
	}
	// Half-close: a worker's socket closes after one command anyway, but the
	// master CLI keeps the connection open until it sees end of input.
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	reply, err := io.ReadAll(io.LimitReader(conn, maxReply+1))
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("reading reply to %q from HAProxy stats socket %s: no complete answer within %s: %w", command, c.Address, timeout, ctx.Err())
		}
		return "", fmt.Errorf("reading reply to %q from HAProxy stats socket %s: %w", command, c.Address, err)
	}
	if len(reply) > maxReply {
		return "", fmt.Errorf("reply to %q from HAProxy stats socket %s is larger than %d MiB; this is not a stats reply", command, c.Address, maxReply>>20)
	}
	logrus.Debugf("haproxy stats socket %s: %q answered %d bytes", c.Address, command, len(reply))
	return string(reply), nil
}

// Stat runs "show stat" and parses the CSV reply.
func (c *Client) Stat(ctx context.Context) (*StatTable, error) {
	const cmd = "show stat"
	reply, err := c.Command(ctx, cmd)
	if err != nil {
		return nil, err
	}
	t, err := ParseStat(strings.NewReader(reply))
	if err != nil {
		return nil, c.replyError(cmd, reply, err)
	}
	return t, nil
}

// Info runs "show info" and parses the reply.
func (c *Client) Info(ctx context.Context) (Info, error) {
	const cmd = "show info"
	reply, err := c.Command(ctx, cmd)
	if err != nil {
		return Info{}, err
	}
	info, err := ParseInfo(reply)
	if err != nil {
		return Info{}, c.replyError(cmd, reply, err)
	}
	return info, nil
}

// replyError explains an answer that is not the expected data. The CLI
// answers errors in plain text on the same connection, so the first line is
// the message.
func (c *Client) replyError(cmd, reply string, parseErr error) error {
	line := firstLine(reply)
	var hint string
	switch {
	case strings.TrimSpace(reply) == "":
		return fmt.Errorf("HAProxy stats socket %s closed without answering %q; check that it is a stats socket (\"stats socket\" in the global section)", c.Address, cmd)
	case strings.HasPrefix(line, "Unknown command"):
		hint = "; this looks like the master CLI (-S) or a socket of another program: point --socket at a worker's \"stats socket\""
	case strings.Contains(line, "Permission denied"):
		hint = "; the socket's \"level\" is too low for this command: use a socket with \"level operator\" or \"level admin\""
	}
	return fmt.Errorf("HAProxy stats socket %s answered %q to %q%s: %w", c.Address, line, cmd, hint, parseErr)
}

func dialHint(err error) string {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return " (no such socket: is HAProxy running with a \"stats socket\" line at that path?)"
	case errors.Is(err, syscall.EACCES):
		return " (permission denied: run as root or as a member of the socket's group)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return " (nothing listens there: HAProxy is stopped or the socket file is stale)"
	}
	return ""
}
