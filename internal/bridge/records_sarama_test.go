package bridge

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// saramaPeer is a broker on 127.0.0.1 for sarama's low-level Broker: it
// hands the partition records of each Produce to produced and answers each
// Fetch with fetchSet, the way an old broker would have sent them.
func saramaPeer(t *testing.T, fetchSet []byte) (addr string, produced <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	records := make(chan []byte, 1)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			var size [4]byte
			if _, err := io.ReadFull(conn, size[:]); err != nil {
				return
			}
			frame := make([]byte, binary.BigEndian.Uint32(size[:]))
			if _, err := io.ReadFull(conn, frame); err != nil {
				return
			}
			key, version := int16(binary.BigEndian.Uint16(frame)), int16(binary.BigEndian.Uint16(frame[2:]))
			correlation := frame[4:8]
			body := frame[10+int(int16(binary.BigEndian.Uint16(frame[8:]))):] // after the client id
			switch key {
			case 0:
				req := kmsg.ProduceRequest{Version: version}
				if err := req.ReadFrom(body); err != nil {
					t.Errorf("produce v%d from sarama: %v", version, err)
					return
				}
				records <- req.Topics[0].Partitions[0].Records
			case 1:
				resp := kmsg.FetchResponse{Version: version, Topics: []kmsg.FetchResponseTopic{{
					Topic: "t",
					Partitions: []kmsg.FetchResponseTopicPartition{{
						Partition: 0, HighWatermark: 1 << 20, LastStableOffset: -1, LogStartOffset: -1, RecordBatches: fetchSet,
					}},
				}}}
				out := resp.AppendTo(append([]byte{0, 0, 0, 0}, correlation...))
				binary.BigEndian.PutUint32(out, uint32(len(out)-4))
				if _, err := conn.Write(out); err != nil {
					return
				}
			default:
				t.Errorf("sarama sent api key %d", key)
				return
			}
		}
	}()
	return ln.Addr().String(), records
}

func saramaBroker(t *testing.T, addr string, version sarama.KafkaVersion) *sarama.Broker {
	t.Helper()
	conf := sarama.NewConfig()
	conf.Version = version
	conf.ApiVersionsRequest = false
	b := sarama.NewBroker(addr)
	if err := b.Open(conf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Message sets sarama produces at Produce v0 (magic 0) and v2 (magic 1),
// compressed by sarama's own codecs (xerial snappy, lz4 with 64 KiB blocks),
// convert to batches franz-go reads back record for record.
func TestUpMessageSetFromSarama(t *testing.T) {
	recs := testRecords(7)
	saramaCodecs := map[compression]sarama.CompressionCodec{
		compressionNone:   sarama.CompressionNone,
		compressionGzip:   sarama.CompressionGZIP,
		compressionSnappy: sarama.CompressionSnappy,
		compressionLz4:    sarama.CompressionLZ4,
	}
	for _, tc := range []struct {
		magic   int8
		version int16
		kafka   sarama.KafkaVersion
	}{{0, 0, sarama.V0_9_0_0}, {1, 2, sarama.V0_10_0_0}} {
		for codec, saramaCodec := range saramaCodecs {
			t.Run(codec.String()+"/v"+string('0'+rune(tc.magic)), func(t *testing.T) {
				set := &sarama.MessageSet{}
				if codec == compressionNone {
					for _, r := range recs {
						set.Messages = append(set.Messages, &sarama.MessageBlock{Msg: &sarama.Message{
							Version: tc.magic, Key: r.key, Value: r.value, Timestamp: time.UnixMilli(r.timestamp),
						}})
					}
				} else {
					// The inner set is ours (kmsg); the compression is sarama's.
					var inner []byte
					for i, r := range recs {
						inner = append(inner, legacyMessageBytes(tc.magic, int64(i), 0, r.timestamp, r.key, r.value)...)
					}
					set.Messages = []*sarama.MessageBlock{{Offset: int64(len(recs) - 1), Msg: &sarama.Message{
						Version: tc.magic, Codec: saramaCodec, Value: inner, Timestamp: time.UnixMilli(recs[0].timestamp),
					}}}
				}
				addr, produced := saramaPeer(t, nil)
				b := saramaBroker(t, addr, tc.kafka)
				req := &sarama.ProduceRequest{Version: tc.version, RequiredAcks: sarama.NoResponse, Timeout: 1000}
				req.AddSet("t", 0, set)
				if _, err := b.Produce(req); err != nil {
					t.Fatal(err)
				}
				var got []byte
				select {
				case got = <-produced:
				case <-time.After(10 * time.Second):
					t.Fatal("no produce from sarama within 10s")
				}
				batch, err := UpMessageSet(got, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				requireRecords(t, mustKgoRead(t, batch), upExpected(tc.magic, recs))
			})
		}
	}
}

// What DownRecords sends is read by sarama's consumer decoding of Fetch v0
// (magic 0) and v2 (magic 1), every message CRC checked, wrappers
// decompressed by sarama. (sarama reads lz4 only with the standard header
// checksum, which it only ever met in magic 1.)
func TestDownRecordsToSarama(t *testing.T) {
	recs := testRecords(9)
	for _, tc := range []struct {
		magic   int8
		version int16
		kafka   sarama.KafkaVersion
	}{{0, 0, sarama.V0_9_0_0}, {1, 2, sarama.V0_10_0_0}} {
		for _, codec := range []compression{compressionNone, compressionGzip, compressionSnappy, compressionLz4, compressionZstd} {
			if codec == compressionLz4 && tc.magic == 0 {
				continue
			}
			t.Run(codec.String()+"/v"+string('0'+rune(tc.magic)), func(t *testing.T) {
				in := recordBatch(t, batchSpec{codec: codec, baseOffset: 300, headers: true}, recs[:5])
				in = append(in, recordBatch(t, batchSpec{codec: codec, baseOffset: 305}, recs[5:])...)
				set, err := DownRecords(in, tc.magic, 1<<20, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				addr, _ := saramaPeer(t, set)
				b := saramaBroker(t, addr, tc.kafka)
				req := &sarama.FetchRequest{Version: tc.version, MaxWaitTime: 0, MinBytes: 1}
				req.AddBlock("t", 0, 300, 1<<20, -1)
				resp, err := b.Fetch(req)
				if err != nil {
					t.Fatal(err)
				}
				block := resp.GetBlock("t", 0)
				if block == nil || block.Err != sarama.ErrNoError || len(block.RecordsSet) != 1 || block.RecordsSet[0].MsgSet == nil {
					t.Fatalf("sarama read %+v", block)
				}
				var got []testRecord
				for _, top := range block.RecordsSet[0].MsgSet.Messages {
					inner := top.Messages()
					for _, m := range inner {
						offset := m.Offset
						if top.Msg.Set != nil && tc.magic == 1 { // relative to the wrapper's last offset
							offset += top.Offset - inner[len(inner)-1].Offset
						}
						ts := int64(-1)
						if m.Msg.Version == 1 {
							ts = m.Msg.Timestamp.UnixMilli()
						}
						got = append(got, testRecord{offset: offset, timestamp: ts, key: m.Msg.Key, value: m.Msg.Value})
					}
				}
				requireRecords(t, got, downExpected(tc.magic, 300, recs))
			})
		}
	}
}
