package config

import "time"

const envPrefix = "KPROXY"

// Defaults returns the configuration used for every key the file and the
// environment leave unset.
func Defaults() Config {
	return Config{
		Upstream: Upstream{
			BootstrapServers: []string{},
			DialTimeout:      10 * time.Second,
			IdleTimeout:      5 * time.Minute,
			DialBackoffMax:   5 * time.Second,
			Pool:             UpstreamPool{MaxIdlePerBroker: 0, IdleTimeout: time.Minute},
		},
		Listen: Listen{
			Bootstrap:      "127.0.0.1:9092",
			AdvertisedHost: "127.0.0.1",
			BrokerPortBase: 19092,
			BrokerPorts:    map[int32]int{},
			SASL: ListenSASL{
				Mode:       SASLModeReject,
				Mechanisms: []string{SASLPlain, SASLScram256, SASLScram512},
				Users:      map[string]string{},
			},
		},
		Routing: Routing{
			Groups:          DefaultGroups(),
			Ordering:        OrderingAuto,
			ClientRules:     []ClientRule{},
			FetchWaitBudget: 200 * time.Millisecond,
			HolWindow:       60 * time.Second,
		},
		Admin:           Admin{Listen: "127.0.0.1:9644"},
		Log:             Log{Level: "info", Format: "json"},
		Limits:          Limits{MaxFrameBytes: 100 << 20, MaxInflightPerConnection: 256, MaxClientConnections: 1024, UpstreamAnswerGrace: 30 * time.Second},
		ShutdownTimeout: 15 * time.Second,
	}
}

// DefaultGroups is DESIGN §3: which APIs get their own upstream connection.
func DefaultGroups() map[string][]string {
	return map[string][]string{
		"produce": {"Produce"},
		"fetch":   {"Fetch", "ShareFetch", "ShareAcknowledge"},
		"group":   {"JoinGroup", "SyncGroup"},
		"coordination": {
			"Heartbeat", "LeaveGroup", "OffsetCommit", "OffsetFetch",
			"ConsumerGroupHeartbeat", "ShareGroupHeartbeat", "InitProducerID",
			"AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "TxnOffsetCommit",
		},
		"admin": {
			"CreateTopics", "DeleteTopics", "DeleteRecords", "CreatePartitions",
			"ElectLeaders", "AlterPartitionAssignments", "ListPartitionReassignments",
			"UpdateFeatures",
		},
		"default": nil,
	}
}
