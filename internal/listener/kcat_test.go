package listener_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
)

// TestKcatSASLSSLTerminate: a non-Go client (kcat, librdkafka) speaks
// SASL_SSL with SCRAM-SHA-256 and a client certificate to a terminating
// kproxy, which holds its own SCRAM-SHA-512 credentials upstream. It runs
// wherever kcat is installed and is required in CI (CI set), where
// .ci/install-compat-deps.sh installs kcat.
func TestKcatSASLSSLTerminate(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat not installed; CI requires it (.ci/install-compat-deps.sh)")
		}
		t.Skip("kcat not installed")
	}
	ca := proxytest.NewCA(t, "proxy-ca")
	_, certFile, keyFile := ca.Issue(t, "kproxy")
	clientCA := proxytest.NewCA(t, "client-ca")
	_, clientCert, clientKey := clientCA.Issue(t, "kcat")
	env := secureEnv(t, config.ListenTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCA.CAFile(t)})

	common := []string{
		"-b", env.Bootstrap(), "-t", "t",
		"-X", "security.protocol=SASL_SSL",
		"-X", "sasl.mechanisms=SCRAM-SHA-256",
		"-X", "sasl.username=app",
		"-X", "sasl.password=app-secret",
		"-X", "ssl.ca.location=" + ca.CAFile(t),
		"-X", "ssl.certificate.location=" + clientCert,
		"-X", "ssl.key.location=" + clientKey,
	}
	run := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append(args, common...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	run("one\ntwo\nthree\n", "-P", "-X", "acks=all")
	got := run("", "-C", "-o", "beginning", "-c", "3", "-e", "-f", "%s\n")
	for _, want := range []string{"one", "two", "three"} {
		if !strings.Contains(got, want+"\n") {
			t.Fatalf("kcat consumed %q, missing %q", got, want)
		}
	}
}
