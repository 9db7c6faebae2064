package bridge

import (
	"reflect"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka error codes this package names (Kafka's protocol guide, "Error Codes").
const (
	codeUnknownServerError    int16 = -1
	codeCorruptMessage        int16 = 2
	codeUnknownTopicPartition int16 = 3
	codeLeaderNotAvailable    int16 = 5
	codeNotLeader             int16 = 6
	codeCoordinatorLoading    int16 = 14
	codeIllegalGeneration     int16 = 22
	codeUnknownMemberID       int16 = 25
	codeUnsupportedVersion    int16 = 35
	codeInvalidRequest        int16 = 42
	codePolicyViolation       int16 = 44
	codeKafkaStorageError     int16 = 56
	codeGroupIDNotFound       int16 = 69
	codeTopicDeletionDisabled int16 = 73
	codeFencedLeaderEpoch     int16 = 74
	codeUnknownLeaderEpoch    int16 = 75
	codeOffsetNotAvailable    int16 = 78
	codeFencedInstanceID      int16 = 82
	codeInvalidRecord         int16 = 87
	codeUnstableOffsetCommit  int16 = 88
	codeUnknownTopicID        int16 = 100
	codeFencedMemberEpoch     int16 = 110
	codeStaleMemberEpoch      int16 = 113
)

// lastKnownCode is the highest error code the clients of key at version
// could know: the last code of the Kafka release that introduced the
// version. A client written for that release reads a later code as an
// exception it has no handling for. OffsetCommit v1 counts as 0.9: its
// generation and member id only took effect with 0.9's group coordinator,
// and so did the codes that answer them.
func lastKnownCode(key, version int16) int16 {
	const (
		kafka082  = 21 // INVALID_REQUIRED_ACKS
		kafka09   = 31 // CLUSTER_AUTHORIZATION_FAILED
		kafka010  = 35 // UNSUPPORTED_VERSION
		kafka0101 = 42 // INVALID_REQUEST
		kafka0102 = 44 // POLICY_VIOLATION
		kafka011  = 55 // OPERATION_NOT_ATTEMPTED
		kafka10   = 60 // REASSIGNMENT_IN_PROGRESS
		kafka20   = 72 // LISTENER_NOT_FOUND
	)
	switch k := kmsg.Key(key); {
	case version == 0 && (k == kmsg.Produce || k == kmsg.Fetch || k == kmsg.ListOffsets || k == kmsg.OffsetCommit || k == kmsg.OffsetFetch):
		return kafka082
	case version == 1 && (k == kmsg.Produce || k == kmsg.Fetch || k == kmsg.OffsetCommit), version == 0 && k == kmsg.JoinGroup:
		return kafka09
	case version == 2 && (k == kmsg.Produce || k == kmsg.Fetch):
		return kafka010
	case version == 3 && k == kmsg.Fetch, version == 1 && k == kmsg.JoinGroup, version == 0 && (k == kmsg.CreateTopics || k == kmsg.DeleteTopics):
		return kafka0101
	case version == 1 && k == kmsg.CreateTopics:
		return kafka0102
	case version == 0 && (k == kmsg.OffsetForLeaderEpoch || k == kmsg.DescribeACLs || k == kmsg.CreateACLs || k == kmsg.DeleteACLs || k == kmsg.DescribeConfigs):
		return kafka011
	case version == 0 && (k == kmsg.AlterReplicaLogDirs || k == kmsg.DescribeLogDirs):
		return kafka10
	case version == 1 && k == kmsg.OffsetForLeaderEpoch:
		return kafka20
	}
	return 1<<15 - 1
}

// olderCode is the code an older client knows that means most nearly what a
// later code means; several are what Kafka's brokers themselves answered
// older versions with.
func olderCode(code int16) int16 {
	switch code {
	case codeKafkaStorageError, codeFencedLeaderEpoch, codeUnknownLeaderEpoch:
		return codeNotLeader // KIP-112: old Produce/Fetch got NOT_LEADER_FOR_PARTITION
	case codeOffsetNotAvailable:
		return codeLeaderNotAvailable // ListOffsets before v5
	case codeGroupIDNotFound, codeStaleMemberEpoch:
		return codeIllegalGeneration // OffsetCommit before v9
	case codeFencedInstanceID, codeFencedMemberEpoch:
		return codeUnknownMemberID
	case codeUnstableOffsetCommit:
		return codeCoordinatorLoading // both: retry shortly
	case codeUnknownTopicID:
		return codeUnknownTopicPartition
	case codeTopicDeletionDisabled, codePolicyViolation:
		return codeInvalidRequest // DeleteTopics before v3 got INVALID_REQUEST
	case codeInvalidRecord:
		return codeCorruptMessage
	}
	return codeUnknownServerError
}

// code is the error code to give the client of x for the broker's code.
func (x *Exchange) code(code int16) int16 {
	last := lastKnownCode(x.Key, x.From)
	if code <= last {
		return code
	}
	if older := olderCode(code); older <= last {
		return older
	}
	return codeUnknownServerError
}

// setErrorCodes sets every int16 field named ErrorCode in v, at any depth.
// kmsg's responses name their error codes that way, so one walk covers any
// API, including ones this package does not translate.
func setErrorCodes(v any, code int16) {
	setErrorCodesIn(reflect.ValueOf(v), code)
}

func setErrorCodesIn(v reflect.Value, code int16) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			setErrorCodesIn(v.Elem(), code)
		}
	case reflect.Slice:
		for i := range v.Len() {
			setErrorCodesIn(v.Index(i), code)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := v.Field(i)
			if !t.Field(i).IsExported() {
				continue
			}
			if t.Field(i).Name == "ErrorCode" && f.Kind() == reflect.Int16 {
				f.SetInt(int64(code))
				continue
			}
			setErrorCodesIn(f, code)
		}
	}
}
