package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Workloads over the relay and kproxy as processes of their own: the rows
// that give each one's own CPU per GB.
const (
	wProcProduce    = "produce 1 KiB records (kgo), relay and kproxy as processes"
	wProcConsume    = "consume 1 MiB batches (kgo), relay and kproxy as processes"
	wProcProduceTLS = "produce 1 KiB records (kgo), TLS both sides, relay and kproxy as processes"
	wProcConsumeTLS = "consume 1 MiB batches (kgo), TLS both sides, relay and kproxy as processes"
)

func isProcWorkload(name string) bool {
	switch name {
	case wProcProduce, wProcConsume, wProcProduceTLS, wProcConsumeTLS:
		return true
	}
	return false
}

// procEnv is a cluster of its own with a relay process and a kproxy
// process in front of it. With TLS the brokers and kproxy's listeners
// speak TLS, kproxy dials the brokers with TLS, and the relay carries the
// client's TLS to the brokers untouched: the direct path is a direct TLS
// connection.
type procEnv struct {
	cluster       *kfake.Cluster
	relay, kproxy *child
	dir           string
	paths         [3]path
}

func startProcEnv(useTLS bool) (_ *procEnv, err error) {
	pe := &procEnv{}
	defer func() {
		if err != nil {
			pe.close()
		}
	}()
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, topic),
		kfake.BlackholeProduce(),
		kfake.SyntheticFetch(kfake.SyntheticBatch{}),
	}
	var spec childSpec
	var clientTLS *tls.Config
	if useTLS {
		if pe.dir, err = os.MkdirTemp("", "kproxy-bench-tls-"); err != nil {
			return nil, err
		}
		cert, pool, certFile, keyFile, err := selfSigned(pe.dir)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
		spec.CertFile, spec.KeyFile = certFile, keyFile
		clientTLS = &tls.Config{RootCAs: pool}
	}
	if pe.cluster, err = kfake.NewCluster(opts...); err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	addrs := pe.cluster.ListenAddrs()
	spec.Upstreams = addrs
	if pe.relay, err = startChild("relay", childSpec{Upstreams: addrs}); err != nil {
		return nil, err
	}
	if pe.kproxy, err = startChild("kproxy", spec); err != nil {
		return nil, err
	}
	relayAddrs := make([]string, len(addrs))
	for i, a := range addrs {
		relayAddrs[i] = pe.relay.ready.Relay[a]
	}
	pe.paths = [3]path{
		{name: "direct", seeds: addrs, raw: addrs[0], tls: clientTLS},
		{name: "relay", seeds: relayAddrs, via: pe.relay.ready.Relay, raw: relayAddrs[0], tls: clientTLS, proc: pe.relay},
		{name: "kproxy", seeds: []string{pe.kproxy.ready.Bootstrap}, raw: pe.kproxy.ready.Broker0, tls: clientTLS, proc: pe.kproxy},
	}
	return pe, nil
}

func (pe *procEnv) close() {
	for _, c := range []*child{pe.kproxy, pe.relay} {
		if c != nil {
			c.stop()
		}
	}
	if pe.cluster != nil {
		pe.cluster.Close()
	}
	if pe.dir != "" {
		_ = os.RemoveAll(pe.dir)
	}
}

// procWorkloads measure the child process's CPU around a workload; the
// direct path has no child.
func (e *env) procWorkloads(useTLS bool) []workload {
	produce, consume := wProcProduce, wProcConsume
	if useTLS {
		produce, consume = wProcProduceTLS, wProcConsumeTLS
	}
	return []workload{
		{produce, withChildCPU(func(ctx context.Context, p path) (sample, error) { return e.produce(ctx, p, 1024) })},
		{consume, withChildCPU(e.consume)},
	}
}

func withChildCPU(run func(context.Context, path) (sample, error)) func(context.Context, path) (sample, error) {
	return func(ctx context.Context, p path) (sample, error) {
		if p.proc == nil {
			return run(ctx, p)
		}
		before, err := p.proc.cpu()
		if err != nil {
			return sample{}, err
		}
		s, err := run(ctx, p)
		if err != nil {
			return sample{}, err
		}
		after, err := p.proc.cpu()
		if err != nil {
			return sample{}, err
		}
		s.childCPU = after - before
		return s, nil
	}
}

// measureProcesses runs the process workloads, plain and then TLS.
func (e *env) measureProcesses(ctx context.Context, res *Results) error {
	for _, useTLS := range []bool{false, true} {
		pe, err := startProcEnv(useTLS)
		if err != nil {
			return err
		}
		for _, w := range e.procWorkloads(useTLS) {
			e.logf("workload: %s", w.name)
			if err := e.alternateOver(ctx, res, w, pe.paths); err != nil {
				pe.close()
				return fmt.Errorf("%s: %w", w.name, err)
			}
		}
		pe.close()
	}
	return nil
}

// selfSigned writes a certificate for 127.0.0.1 and localhost that is its
// own CA, and returns it with a pool that trusts it.
func selfSigned(dir string) (tls.Certificate, *x509.CertPool, string, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kproxy-bench"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, "", "", err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return tls.Certificate{}, nil, "", "", err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, nil, "", "", err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, "", "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return cert, pool, certFile, keyFile, nil
}
