package listener

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/kproxy/kproxy/internal/upstream"
)

// heldPort is the bootstrap port until kproxy is ready: bound, so the
// address is kproxy's from the start and a port in use fails Start, but (on
// Linux) not listening, so that a client that connects early is refused by
// the kernel ("connection refused") and retries, rather than being accepted
// and dropped, which clients read as a TLS or SASL misconfiguration.
type heldPort interface {
	Addr() net.Addr
	// Listen starts accepting on the held port; the heldPort is used up.
	Listen() (net.Listener, error)
	Close() error
}

// withoutUsers is err's text without the user names of upstream
// authentication failures in it: /readyz is read by whoever reaches the
// admin port, and says why without saying who.
func withoutUsers(err error) string {
	msg := err.Error()
	for _, user := range authUsers(err, nil) {
		msg = strings.ReplaceAll(msg, fmt.Sprintf(" as user %q", user), "")
		msg = strings.ReplaceAll(msg, strconv.Quote(user), `"[user]"`)
		if len(user) >= 3 {
			msg = strings.ReplaceAll(msg, user, "[user]")
		}
	}
	return msg
}

func authUsers(err error, out []string) []string {
	if ae, ok := err.(*upstream.AuthError); ok && ae.User != "" {
		out = append(out, ae.User)
	}
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			out = authUsers(inner, out)
		}
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil {
			out = authUsers(inner, out)
		}
	}
	return out
}
