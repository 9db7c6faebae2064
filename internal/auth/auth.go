// Package auth is the server side of SASL PLAIN and SCRAM-SHA-256/512
// (RFC 4616, RFC 5802, RFC 7677), for kproxy's listen.sasl.mode terminate:
// the proxy authenticates its clients itself. It follows what a Kafka
// broker accepts: no SASLprep, an authorization id must equal the user,
// SCRAM without channel binding, no delegation-token extension.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"sort"
)

// Mechanism names, as in SaslHandshake.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// scramIterations is the PBKDF2 work factor of the proxy's stored SCRAM
// credentials: RFC 7677's minimum and Kafka's default.
const scramIterations = 4096

// ErrFailed is wrapped by every authentication failure. Its details are
// for the proxy's log; the client is told only that it failed.
var ErrFailed = errors.New("authentication failed")

// Users holds what the proxy needs to check each user's password: a
// SHA-256 digest for PLAIN and SCRAM's salted keys. Passwords themselves
// are not kept.
type Users struct {
	mechanisms []string
	plain      map[string][32]byte
	scram      map[string]map[string]scramCred // mechanism -> user
}

type scramCred struct {
	salt       []byte
	storedKey  []byte
	serverKey  []byte
	iterations int
}

// NewUsers derives credentials for every user and enabled mechanism.
func NewUsers(passwords map[string]string, mechanisms []string) (*Users, error) {
	u := &Users{plain: map[string][32]byte{}, scram: map[string]map[string]scramCred{}}
	for _, m := range mechanisms {
		switch m {
		case Plain:
			for user, pw := range passwords {
				u.plain[user] = sha256.Sum256([]byte(pw))
			}
		case ScramSHA256, ScramSHA512:
			creds := map[string]scramCred{}
			for user, pw := range passwords {
				c, err := newScramCred(hashFor(m), pw)
				if err != nil {
					return nil, err
				}
				creds[user] = c
			}
			u.scram[m] = creds
		default:
			return nil, fmt.Errorf("sasl mechanism %q not supported", m)
		}
		u.mechanisms = append(u.mechanisms, m)
	}
	sort.Strings(u.mechanisms)
	return u, nil
}

// Mechanisms are the enabled mechanism names, sorted, for the
// SaslHandshake answer.
func (u *Users) Mechanisms() []string { return u.mechanisms }

// Session is one authentication conversation.
type Session interface {
	// Step takes the client's next message and returns the answer. done
	// is true when the client is authenticated; an error (wrapping
	// ErrFailed) ends the conversation.
	Step(msg []byte) (answer []byte, done bool, err error)
	// User is the user name the client claimed, once known.
	User() string
}

// Start begins a conversation, or reports that the mechanism is not
// enabled.
func (u *Users) Start(mechanism string) (Session, bool) {
	if mechanism == Plain {
		if !u.enabled(Plain) {
			return nil, false
		}
		return &plainSession{users: u}, true
	}
	creds, ok := u.scram[mechanism]
	if !ok {
		return nil, false
	}
	return &scramSession{creds: creds, hash: hashFor(mechanism), mechanism: mechanism}, true
}

func (u *Users) enabled(m string) bool {
	for _, have := range u.mechanisms {
		if have == m {
			return true
		}
	}
	return false
}

func hashFor(mechanism string) func() hash.Hash {
	if mechanism == ScramSHA512 {
		return sha512.New
	}
	return sha256.New
}

func hmacSum(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	mac := hmac.New(h, key)
	for _, p := range parts {
		mac.Write(p)
	}
	return mac.Sum(nil)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

func failed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFailed, fmt.Sprintf(format, args...))
}

// plainSession checks "authzid NUL user NUL password" (RFC 4616).
type plainSession struct {
	users *Users
	user  string
}

func (p *plainSession) User() string { return p.user }

func (p *plainSession) Step(msg []byte) ([]byte, bool, error) {
	var parts [3][]byte
	n := 0
	start := 0
	for i, c := range msg {
		if c == 0 {
			if n == 2 {
				return nil, false, failed("PLAIN message has more than two NUL separators")
			}
			parts[n] = msg[start:i]
			n++
			start = i + 1
		}
	}
	if n != 2 {
		return nil, false, failed("PLAIN message is not authzid NUL user NUL password")
	}
	parts[2] = msg[start:]
	authzid, user, pass := string(parts[0]), string(parts[1]), parts[2]
	p.user = user
	if authzid != "" && authzid != user {
		return nil, false, failed("authorization id %q is not the user name", authzid)
	}
	want, ok := p.users.plain[user]
	got := sha256.Sum256(pass)
	// Compare even for an unknown user, so timing does not tell users apart.
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !ok {
		return nil, false, failed("invalid user name or password")
	}
	return nil, true, nil
}
