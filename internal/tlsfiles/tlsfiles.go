// Package tlsfiles loads certificates, keys and CA bundles from PEM files
// and re-reads them when they change on disk, so that a rotated Kubernetes
// secret takes effect on the next handshake without a restart and without
// touching established connections.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// stamp identifies one version of a file cheaply: a rewrite changes the
// modification time or the size (Kubernetes swaps a symlink, which changes
// both as seen through it).
type stamp struct {
	mod  time.Time
	size int64
}

func stat(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi.ModTime(), fi.Size()}, nil
}

// cached holds the value parsed from some files and the stamps it was
// parsed at. A reload that fails keeps the last good value: a half-written
// secret must not break new connections that the old one still serves. The
// failure is reported once per version of the files (onFail), and that
// version is not parsed again on every handshake.
type cached[T any] struct {
	paths  []string
	parse  func() (T, error)
	onFail FailureFunc

	mu     sync.Mutex
	stamps []stamp
	val    T
	failed []stamp // the version whose reload failed last; nil: none
}

// FailureFunc is told that changed files could not be loaded, so the last
// good certificate or CA bundle stays in service.
type FailureFunc func(err error)

func newCached[T any](parse func() (T, error), onFail FailureFunc, paths ...string) (*cached[T], error) {
	c := &cached[T]{paths: paths, parse: parse, onFail: onFail}
	if _, err := c.get(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *cached[T]) get() (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamps := make([]stamp, len(c.paths))
	changed := c.stamps == nil
	var statErr error
	for i, p := range c.paths {
		st, err := stat(p)
		if err != nil {
			if c.stamps == nil {
				return c.val, err
			}
			statErr = err // a zero stamp marks the missing file
		}
		stamps[i] = st
		if c.stamps != nil && st != c.stamps[i] {
			changed = true
		}
	}
	if !changed {
		c.failed = nil // back to the version in service
		return c.val, nil
	}
	if c.failed != nil && slices.Equal(stamps, c.failed) {
		return c.val, nil // this version failed already
	}
	err := statErr
	var v T
	if err == nil {
		v, err = c.parse()
	}
	if err != nil {
		if c.stamps == nil {
			return v, err
		}
		c.failed = stamps
		if c.onFail != nil {
			c.onFail(fmt.Errorf("%s: %w; the previous version stays in service", strings.Join(c.paths, ", "), err))
		}
		return c.val, nil // keep serving the last good value
	}
	c.val, c.stamps, c.failed = v, stamps, nil
	return v, nil
}

// KeyPair is a certificate and its key, re-read when either file changes.
type KeyPair struct{ c *cached[*tls.Certificate] }

// LoadKeyPair reads certFile and keyFile; it fails when they do not make a
// key pair. A later change that does not load is reported to onFail (may
// be nil).
func LoadKeyPair(certFile, keyFile string, onFail FailureFunc) (*KeyPair, error) {
	c, err := newCached(func() (*tls.Certificate, error) {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		return &cert, nil
	}, onFail, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &KeyPair{c}, nil
}

// Certificate returns the current certificate; it never fails once loaded.
func (k *KeyPair) Certificate() *tls.Certificate {
	cert, _ := k.c.get()
	return cert
}

// Pool is a CA bundle, re-read when its file changes.
type Pool struct{ c *cached[*x509.CertPool] }

// LoadPool reads a PEM bundle of CA certificates. A later change that does
// not load is reported to onFail (may be nil).
func LoadPool(file string, onFail FailureFunc) (*Pool, error) {
	c, err := newCached(func() (*x509.CertPool, error) {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate found", file)
		}
		return pool, nil
	}, onFail, file)
	if err != nil {
		return nil, err
	}
	return &Pool{c}, nil
}

// CertPool returns the current pool; it never fails once loaded.
func (p *Pool) CertPool() *x509.CertPool {
	pool, _ := p.c.get()
	return pool
}
