package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The soak reads the topics back straight from the cluster once the load
// stops; a connection drop armed near the end must not fail that read.
func TestSoakFaultsAreDisarmedWhenTheLoadStops(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	s := &soak{cluster: cluster, faultEvery: time.Hour}
	listEnds := func() error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = kadm.NewClient(cl).ListEndOffsets(ctx, "t")
		return err
	}

	s.dropNext(kmsg.Metadata)
	var eof *kgo.ErrFirstReadEOF
	if err := listEnds(); !errors.As(err, &eof) {
		t.Fatalf("with a drop armed: %v, want the connection dropped", err)
	}

	s.dropNext(kmsg.Metadata)
	stopped, stop := context.WithCancel(context.Background())
	stop()
	s.injectFaults(stopped)
	if err := listEnds(); err != nil {
		t.Fatalf("after the faults stopped: %v", err)
	}
}

func TestSoakSummaryFailsWhatItCouldNotCheck(t *testing.T) {
	var out bytes.Buffer
	(&soakReport{}).print(&out, &soak{}, errors.New("list end offsets: EOF"))
	if !strings.Contains(out.String(), "FAIL: not checked: list end offsets: EOF") || strings.Contains(out.String(), "PASS") {
		t.Fatalf("summary:\n%s", out.String())
	}
}
