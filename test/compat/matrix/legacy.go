package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kproxy/kproxy/internal/proxytest/kafka4"
)

const (
	// legacyKafka is the broker the legacy clients meet: Kafka 4.0's
	// versions, with its floors enforced (package kafka4).
	legacyKafka = "4.0"
	// legacyAlias in -clients selects every legacy client.
	legacyAlias = "legacy"

	statusExpectedToFail = "fails as expected"

	// legacyDirectTimeout bounds each step of a direct legacy row, which
	// is expected to get nothing through.
	legacyDirectTimeout = 3 * time.Second
)

// legacyClients are clients pinned to the protocol of Kafka 0.8-0.10:
// straight at a Kafka 4 broker they fail, which their direct row shows;
// through kproxy the version bridge carries them.
func legacyClients() []client {
	kafkaPython := func(version string) client {
		return client{name: "kafka-python-" + version, legacy: true,
			run: script("/usr/bin/python3", "kafka_python_client.py", "--api-version", version)}
	}
	return []client{
		kafkaPython("0.10.1"),
		kafkaPython("0.9"),
		// No group membership before 0.9: the consumers are assigned
		// every partition and commit the group's offsets.
		kafkaPython("0.8.2"),
		{name: "kcat-fallback-0.9.0", legacy: true, idMatching: true,
			run: script("", "kcat_client.sh", "--rdkafka", "api.version.request=false", "--rdkafka", "broker.version.fallback=0.9.0")},
		// kafka-node 5.0.0: Produce v2 and Fetch v2 (message format v1,
		// gzip), ListOffsets v0, JoinGroup v0; it matches answers to
		// requests by correlation id.
		{name: "kafka-node", legacy: true, idMatching: true, run: script("node", "kafkanode/kafkanode_client.js")},
		// no-kafka 3.4.4: a Kafka 0.9 client with no ApiVersions, Produce
		// v1 with message format v0, Fetch v0, ListOffsets v0, JoinGroup v0;
		// it matches answers to requests by correlation id.
		{name: "no-kafka", legacy: true, idMatching: true, run: script("node", "nokafka/nokafka_client.js")},
	}
}

// legacyRows are a legacy client's rows: straight at the broker (the
// failure the bridge exists for), and through kproxy in each ordering
// mode it may use.
func legacyRows(o options, c client) []*row {
	rows := []*row{{client: c, kafka: legacyKafka, ordering: orderingDirect}}
	if o.direct {
		return rows
	}
	for _, ord := range o.orderings {
		if validFor(ord, c) {
			rows = append(rows, &row{client: c, kafka: legacyKafka, ordering: ord})
		}
	}
	return rows
}

// legacyCluster is Kafka 4.0 with its floors, the scenario's topic made
// (the 0.9 clients have no CreateTopics) and, for a direct row, the
// records already there (written by a current client), so that the
// consumer has something it fails to read.
func legacyCluster(ctx context.Context, r *row, s *scenario) (*kfake.Cluster, *kafka4.Broker, error) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.DefaultNumPartitions(3), kfake.MaxVersions(kversion.V4_0_0()))
	if err != nil {
		return nil, nil, fmt.Errorf("kfake: %w", err)
	}
	err = cluster.CreateTopic(s.topic, 3, nil)
	if err == nil && r.ordering == orderingDirect {
		err = seedRecords(ctx, cluster.ListenAddrs(), s.topic, s.count)
	}
	// The floors come after the seeding, so that what they count is the
	// legacy client's alone.
	var floors *kafka4.Broker
	if err == nil {
		floors, err = kafka4.Floors(cluster)
	}
	if err != nil {
		cluster.Close()
		return nil, nil, err
	}
	s.topicExists = true
	if r.ordering == orderingDirect {
		s.keepGoing, s.stepTimeout = true, legacyDirectTimeout
	}
	return cluster, floors, nil
}

func seedRecords(ctx context.Context, seeds []string, topic string, count int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, count)
	for i := range recs {
		recs[i] = &kgo.Record{Key: []byte(value(i)), Value: []byte(value(i))}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("seeding records with a current client: %w", err)
	}
	return nil
}

// legacyVerdict judges a legacy row. Straight at the broker the client
// must get nothing through and the broker must have closed connections on
// its requests; through kproxy it must pass the suite's exact counts
// without the broker rejecting anything.
func legacyVerdict(r *row, res result, count int, floors *kafka4.Broker) (status, detail string) {
	if r.ordering == orderingDirect {
		if res.produced != 0 || res.consumed != 0 || floors.Rejected() == 0 {
			return statusFail, fmt.Sprintf("expected to fail straight at Kafka 4: produced %d, consumed %d, the broker rejected %d requests",
				res.produced, res.consumed, floors.Rejected())
		}
		return statusExpectedToFail, fmt.Sprintf("the broker closed the connection on %d requests: %s", floors.Rejected(), floors.RejectedSummary())
	}
	if err := res.verdict(count); err != nil {
		return statusFail, oneLine(err.Error())
	}
	if n := floors.Rejected(); n != 0 {
		return statusFail, fmt.Sprintf("the broker rejected %d requests kproxy sent: %s", n, floors.RejectedSummary())
	}
	return statusPass, ""
}

// expandClients replaces the legacy alias in a -clients list by the legacy
// clients' names.
func expandClients(names []string) []string {
	var out []string
	for _, n := range names {
		if n != legacyAlias {
			out = append(out, n)
			continue
		}
		for _, c := range legacyClients() {
			out = append(out, c.name)
		}
	}
	return out
}
