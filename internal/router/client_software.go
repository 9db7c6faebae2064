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
// request frame body without copying. ok is false for versions before v3,
// which carry no name, and for versions newer than kmsg knows, whose layout
// is unknown.
func (p *Protocol) ClientSoftwareName(body []byte, h RequestHeader) (name []byte, ok bool, err error) {
	if h.Key != KeyApiVersions || h.Version < 3 || h.Version > p.MaxVersion(KeyApiVersions) {
		return nil, false, nil
	}
	off, err := p.RequestBodyOffset(body, h)
	if err != nil {
		return nil, false, err
	}
	r := reader{b: body, off: off}
	name = r.compactNullableString()
	if r.bad {
		return nil, false, ErrTruncated
	}
	return name, true, nil
}

// ClientSoftware returns the ClientSoftwareName and ClientSoftwareVersion
// of an ApiVersions v3+ request frame body without copying; ok as for
// ClientSoftwareName.
func (p *Protocol) ClientSoftware(body []byte, h RequestHeader) (name, version []byte, ok bool) {
	if h.Key != KeyApiVersions || h.Version < 3 || h.Version > p.MaxVersion(KeyApiVersions) {
		return nil, nil, false
	}
	off, err := p.RequestBodyOffset(body, h)
	if err != nil {
		return nil, nil, false
	}
	r := reader{b: body, off: off}
	name = r.compactNullableString()
	version = r.compactNullableString()
	if r.bad {
		return nil, nil, false
	}
	return name, version, true
}
