package router

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestClientSoftwareNameEveryVersion(t *testing.T) {
	p := NewProtocol()
	id := "rdkafka"
	for v := int16(0); v <= p.MaxVersion(KeyApiVersions); v++ {
		for _, clientID := range []*string{&id, nil} {
			t.Run(fmt.Sprintf("v%d/client_id=%v", v, clientID != nil), func(t *testing.T) {
				req := kmsg.NewPtrApiVersionsRequest()
				req.SetVersion(v)
				req.ClientSoftwareName, req.ClientSoftwareVersion = "confluent-kafka-python", "1.7.0-rdkafka-2.0.2"
				body := requestBody(p, req, 42, clientID)
				name, ok, err := p.ClientSoftwareName(parse(t, p, body))
				if err != nil {
					t.Fatal(err)
				}
				if want := v >= 3; ok != want {
					t.Fatalf("ok = %v, want %v", ok, want)
				}
				if ok && string(name) != "confluent-kafka-python" {
					t.Fatalf("name = %q", name)
				}
				if ok && !RelaxedClientSoftware(name) {
					t.Fatalf("%q not relaxed", name)
				}
				if ok {
					if _, _, err := p.ClientSoftwareName(parse(t, p, body[:len(body)-len(req.AppendTo(nil))+3])); err == nil {
						t.Fatal("truncated name accepted")
					}
				}
			})
		}
	}
	if _, ok, _ := p.ClientSoftwareName(&Request{RequestHeader: RequestHeader{Key: KeyApiVersions, Version: p.MaxVersion(KeyApiVersions) + 1}}); ok {
		t.Error("a version newer than kmsg knows was parsed")
	}
}

func TestRelaxedClientSoftware(t *testing.T) {
	for name, want := range map[string]bool{
		"librdkafka": true, "confluent-kafka-python": true, "confluent-kafka-go": true, "confluent-kafka-dotnet": true,
		"sarama": false, "kgo": false, "apache-kafka-java": false, "kafka-python": false, "": false, "LIBRDKAFKA": false,
	} {
		if got := RelaxedClientSoftware([]byte(name)); got != want {
			t.Errorf("%q: relaxed = %v, want %v", name, got, want)
		}
	}
}

func BenchmarkClientSoftwareName(b *testing.B) {
	p := NewProtocol()
	id := "rdkafka"
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "librdkafka", "2.0.2"
	body := requestBody(p, req, 42, &id)
	q := parse(b, p, body)
	b.ReportAllocs()
	for b.Loop() {
		name, _, _ := p.ClientSoftwareName(q)
		if !RelaxedClientSoftware(name) {
			b.Fatal("not relaxed")
		}
	}
}
