package router

// ApiVersions v3+ requests (KIP-511) carry the client's software name. The
// session's auto ordering mode reads it to tell clients that match answers
// by correlation id from those that need them in request order.

// relaxedSoftware are the ClientSoftwareNames of clients known to match
// answers to requests by correlation id, so that answers may arrive in any
// order. All are librdkafka or set librdkafka's client.software.name; see
// test/compat/CLIENTS.md for the evidence behind each.
var relaxedSoftware = [...]string{
	"librdkafka",             // rd_kafka_waitresp_find searches the whole wait queue
	"confluent-kafka-python", // librdkafka; sets the name in common_conf_set_software
	"confluent-kafka-go",     // librdkafka; sets the name in kafka/config.go convert()
	"confluent-kafka-dotnet", // librdkafka; Library.NameAndVersionConfig
}

// RelaxedClientSoftware reports whether a ClientSoftwareName belongs to a
// client that tolerates answers in completion order.
func RelaxedClientSoftware(name []byte) bool {
	for _, n := range relaxedSoftware {
		if string(name) == n {
			return true
		}
	}
	return false
}

// ClientSoftwareName returns the ClientSoftwareName of an ApiVersions
// request without copying. ok is false for versions before v3, which carry
// no name, and for versions newer than kmsg knows, whose layout is unknown.
func (p *Protocol) ClientSoftwareName(q *Request) (name []byte, ok bool, err error) {
	name, _, ok, err = p.clientSoftware(q)
	return name, ok, err
}

// ClientSoftware returns the ClientSoftwareName and ClientSoftwareVersion
// of an ApiVersions v3+ request without copying; ok as for
// ClientSoftwareName, and false for a body too short to carry them.
func (p *Protocol) ClientSoftware(q *Request) (name, version []byte, ok bool) {
	name, version, ok, err := p.clientSoftware(q)
	return name, version, ok && err == nil
}

func (p *Protocol) clientSoftware(q *Request) (name, version []byte, ok bool, err error) {
	if q.Key != KeyApiVersions || q.Version < 3 || q.Version > p.MaxVersion(KeyApiVersions) {
		return nil, nil, false, nil
	}
	r, err := q.body()
	if err != nil {
		return nil, nil, false, err
	}
	name = r.compactNullableString()
	version = r.compactNullableString()
	if r.bad {
		return nil, nil, false, ErrTruncated
	}
	return name, version, true, nil
}
