package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// forbiddenInSidecar are the modules the production binary must not link:
// test clusters and Kafka client libraries (with their Kerberos stack). They
// belong to cmd/kproxy-dev; in a sidecar they are dead weight and scanner
// findings in every pod.
var forbiddenInSidecar = []string{
	"github.com/IBM/sarama",
	"github.com/jcmturner/gokrb5",
	"github.com/twmb/franz-go/pkg/kgo",
	"github.com/twmb/franz-go/pkg/kadm",
	"github.com/twmb/franz-go/pkg/kfake",
	"github.com/segmentio/kafka-go",
}

func TestBinaryLinksOnlyTheSidecar(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %d packages: %q", len(deps), deps)
	}
	for _, dep := range deps {
		for _, bad := range forbiddenInSidecar {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("cmd/kproxy links %s; move what needs it to cmd/kproxy-dev", dep)
			}
		}
	}
}

// TestStrippedBinarySize holds the README's promise: the static stripped
// build stays at or under 14 MiB.
func TestStrippedBinarySize(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const limit = 14 << 20
	bin := filepath.Join(t.TempDir(), "kproxy")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("static stripped binary: %d bytes (%.1f MiB)", fi.Size(), float64(fi.Size())/(1<<20))
	if fi.Size() > limit {
		t.Errorf("static stripped binary is %.1f MiB, over the 14 MiB limit", float64(fi.Size())/(1<<20))
	}
}
