package listener_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/proxytest"
)

// Shutdown returns once every session has ended, its close logged. A
// drained session closes from the lane whose answer was the last it owed;
// its reader used to count the session as ended as soon as that close
// began, so Shutdown could return (and the process exit, or a test end)
// while the close was still releasing lanes and logging.
func TestShutdownWaitsForEverySessionsEnd(t *testing.T) {
	const sessions = 50
	for round := range 10 {
		log, logs := observed(t, zap.InfoLevel)
		env := proxytest.Start(t, proxytest.Options{Brokers: 1, Logger: log, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")}})
		release := make(chan struct{})
		var held sync.WaitGroup
		held.Add(sessions)
		env.Cluster.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
			env.Cluster.KeepControl()
			held.Done()
			env.Cluster.SleepControl(func() { <-release })
			return nil, nil, false
		})
		for range sessions {
			c := dialRaw(t, env.Bootstrap(), "client")
			req := kmsg.NewPtrListOffsetsRequest()
			topic := kmsg.NewListOffsetsRequestTopic()
			topic.Topic = "t"
			p := kmsg.NewListOffsetsRequestTopicPartition()
			p.Timestamp = -1
			topic.Partitions = append(topic.Partitions, p)
			req.Topics = append(req.Topics, topic)
			if _, err := c.Send(req); err != nil {
				t.Fatal(err)
			}
		}
		held.Wait() // every session owes an answer the broker holds

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		shutdown := make(chan error, 1)
		go func() { shutdown <- env.Proxy.Shutdown(ctx) }()
		waitFor(t, "the listeners to close", func() bool {
			c, err := net.Dial("tcp", env.Bootstrap())
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		time.Sleep(50 * time.Millisecond) // the sessions are drained right after
		close(release)
		err := <-shutdown
		cancel()
		if err != nil {
			t.Fatalf("round %d: shutdown: %v", round, err)
		}
		if n := logs.FilterMessage("session closed").FilterField(zap.String("client_id", "client")).Len(); n != sessions {
			t.Fatalf("round %d: Shutdown returned with %d of %d sessions' closes logged", round, n, sessions)
		}
	}
}
