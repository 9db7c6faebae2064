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
			MetadataMaxAge:   5 * time.Minute,
			Pool:             UpstreamPool{MaxIdlePerBroker: 8, IdleTimeout: 2 * time.Minute, MaxAge: 10 * time.Minute},
		},
		Listen: Listen{
			Bootstrap:        "127.0.0.1:9092",
			AdvertisedHost:   "127.0.0.1",
			BrokerPortBase:   19092,
			BrokerPorts:      map[int32]int{},
			HandshakeTimeout: 10 * time.Second,
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
			UnknownAPIs:     UnknownAPIsHide,
		},
		Compat:  Compat{VersionBridge: VersionBridgeAuto},
		Admin:   Admin{Listen: "127.0.0.1:9644"},
		Metrics: Metrics{MaxClientIDs: 50},
		Log:     Log{Level: "info", Format: "json"},
		Limits: Limits{MaxFrameBytes: 100 << 20, MaxInflightPerConnection: 256, MaxClientConnections: 1024, UpstreamAnswerGrace: 30 * time.Second,
			MaxBufferedBytes: 256 << 20, ClientIdleTimeout: 10 * time.Minute, ClientWriteTimeout: 30 * time.Second},
		ShutdownTimeout:     15 * time.Second,
		ShutdownMode:        ShutdownWaitForClients,
		ShutdownQuietPeriod: 2 * time.Second,
	}
}

// DefaultGroups places every API key this binary's kmsg knows in one group;
// docs/API_KEYS.md gives the reason for each, and a test holds both to
// kmsg. The "default" list is spelled out so that nothing lands there by
// accident: Load recomputes it as every API no other group names.
func DefaultGroups() map[string][]string {
	return map[string][]string{
		"produce": {"Produce"},
		// One lane for both: they share one share-session epoch.
		"fetch": {"Fetch", "ShareFetch", "ShareAcknowledge"},
		"group": {"JoinGroup", "SyncGroup", "StreamsGroupTopologyDescriptionUpdate"},
		"coordination": {
			"Heartbeat", "LeaveGroup", "OffsetCommit", "OffsetFetch",
			"ConsumerGroupHeartbeat", "ShareGroupHeartbeat", "StreamsGroupHeartbeat",
			"InitProducerID", "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "TxnOffsetCommit",
		},
		"admin": {
			"ListOffsets",
			"CreateTopics", "DeleteTopics", "DeleteRecords", "CreatePartitions",
			"ElectLeaders", "AlterPartitionAssignments", "ListPartitionReassignments",
			"UpdateFeatures",
			"CreateACLs", "DeleteACLs", "AlterConfigs", "IncrementalAlterConfigs",
			"AlterReplicaLogDirs", "AlterClientQuotas", "AlterUserSCRAMCredentials",
			"CreateDelegationToken", "RenewDelegationToken", "ExpireDelegationToken",
			"DeleteGroups", "OffsetDelete",
			"DescribeShareGroupOffsets", "AlterShareGroupOffsets", "DeleteShareGroupOffsets",
			"DescribeQuorum", "AddRaftVoter", "RemoveRaftVoter",
			"UnregisterBroker", "UnregisterController",
		},
		DefaultGroupName: {
			// Quick answers from the broker's own state, and the APIs only
			// brokers and controllers send each other. In key order, as Load
			// derives it.
			"Metadata", "LeaderAndISR", "StopReplica", "UpdateMetadata", "ControlledShutdown",
			"FindCoordinator", "DescribeGroups", "ListGroups", "SASLHandshake", "ApiVersions",
			"OffsetForLeaderEpoch", "WriteTxnMarkers", "DescribeACLs", "DescribeConfigs",
			"DescribeLogDirs", "SASLAuthenticate", "DescribeDelegationToken",
			"DescribeClientQuotas", "DescribeUserSCRAMCredentials", "Vote", "BeginQuorumEpoch",
			"EndQuorumEpoch", "AlterPartition", "Envelope", "FetchSnapshot", "DescribeCluster",
			"DescribeProducers", "BrokerRegistration", "BrokerHeartbeat", "DescribeTransactions",
			"ListTransactions", "AllocateProducerIDs", "ConsumerGroupDescribe",
			"ControllerRegistration", "GetTelemetrySubscriptions", "PushTelemetry",
			"AssignReplicasToDirs", "ListConfigResources", "DescribeTopicPartitions",
			"ShareGroupDescribe", "UpdateRaftVoter", "InitializeShareGroupState",
			"ReadShareGroupState", "WriteShareGroupState", "DeleteShareGroupState",
			"ReadShareGroupStateSummary", "StreamsGroupDescribe",
		},
	}
}
