// ApiVersions (key 18), v0–v5: every API the proxy decodes is capped at the
// highest version this binary's kmsg knows, so clients that negotiate never
// send a version whose response the proxy could not rewrite. With
// HideUnknownAPIs, keys kmsg does not know are left out and every other key
// is capped the same way: the proxy cannot vouch that their answers carry
// no broker address. The broker's other answers pass through as they are.
//
// KIP-511: a broker that does not know the requested ApiVersions version
// answers UNSUPPORTED_VERSION with a v0 body, whatever version was asked,
// so a client can learn which versions to retry with. That answer is read
// and re-encoded at v0.
//
// Caps are found by a walk that does not allocate: ApiVersions is answered
// once per connection, but most brokers need no cap and the frame passes as
// it came.

package router

import "github.com/twmb/franz-go/pkg/kmsg"

// scanApiVersions picks the version the body is encoded at and reports
// whether any entry needs a cap.
func (r *Rewriter) scanApiVersions(body []byte, version int16) (int16, bool, error) {
	code, capNeeded, ok := r.walkApiVersions(body, version)
	if ok && code == 0 {
		return version, capNeeded || r.saslServer || r.bridging, nil
	}
	// An error answer, or a body that is not what version says: try v0.
	// The v0 walk must consume the body exactly, which a flexible body
	// read as v0 practically never does.
	if _, capNeeded0, ok0 := r.walkApiVersions(body, 0); ok0 {
		return 0, capNeeded0, nil
	}
	if ok { // an error answer at the requested version
		return version, capNeeded, nil
	}
	return version, false, errMalformed
}

// walkApiVersions reads ErrorCode, ApiKeys[ApiKey, MinVersion, MaxVersion,
// tags v3+], ThrottleMillis v1+, tags v3+; ok reports an exact fit.
func (r *Rewriter) walkApiVersions(body []byte, version int16) (code int16, capNeeded, ok bool) {
	flexible := version >= 3
	rd := reader{b: body}
	code = rd.int16()
	var n int
	if flexible {
		n = rd.compactLen()
	} else {
		n = int(rd.int32())
	}
	for i := 0; i < n && !rd.bad; i++ {
		key := rd.int16()
		rd.skip(2) // MinVersion
		if _, c := r.capVersion(key, rd.int16()); c || r.Hidden(key) {
			capNeeded = true
		}
		if flexible {
			rd.skipTags()
		}
	}
	if version >= 1 {
		rd.skip(4) // ThrottleMillis
	}
	if flexible {
		rd.skipTags()
	}
	return code, capNeeded, rd.done()
}

// capVersion returns the highest version of key a client may use through
// the proxy given the broker's maxVersion, and whether that is lower.
func (r *Rewriter) capVersion(key, maxVersion int16) (int16, bool) {
	if top := r.p.MaxVersion(key); r.Capped(key) && maxVersion > top {
		return top, true
	}
	return maxVersion, false
}

// Capped reports whether versions of key above the highest kmsg knows are
// hidden from clients: always for the APIs the proxy decodes, and for every
// known API with HideUnknownAPIs, since a newer version could carry a
// broker address in a field kmsg does not know. A request of such a version
// must not be forwarded.
func (r *Rewriter) Capped(key int16) bool {
	return r.Decoded(key) || r.hideUnknown && r.p.Known(key)
}

// capApiVersions lowers MaxVersion of every decoded API to the proxy's; an
// API whose capped range is empty is dropped, so the client does not use it
// at all rather than at a version the proxy cannot read.
func (r *Rewriter) capApiVersions(resp kmsg.Response, _ AddressMap) (bool, error) {
	a := resp.(*kmsg.ApiVersionsResponse)
	changed := false
	kept := a.ApiKeys[:0]
	for _, k := range a.ApiKeys {
		if r.Hidden(k.ApiKey) {
			changed = true
			continue
		}
		if capped, c := r.capVersion(k.ApiKey, k.MaxVersion); c {
			changed = true
			if capped < k.MinVersion {
				continue
			}
			k.MaxVersion = capped
		}
		kept = append(kept, k)
	}
	a.ApiKeys = kept
	if r.bridging && a.ErrorCode == 0 {
		for i := range a.ApiKeys {
			if k := a.ApiKeys[i].ApiKey; k >= 0 && int(k) < keySpan && r.bridged[k] && a.ApiKeys[i].MinVersion > 0 {
				a.ApiKeys[i].MinVersion = 0
				changed = true
			}
		}
	}
	if r.saslServer && a.ErrorCode == 0 {
		a.ApiKeys = advertiseSASL(a.ApiKeys)
		changed = true
	}
	return changed, nil
}

// HideUnknownAPIs (routing.unknown_apis: hide) leaves the keys kmsg does not
// know out of ApiVersions answers and caps the others at kmsg's versions;
// the caller refuses requests beyond that (Hidden, Capped). Call it before
// the rewriter is used.
func (r *Rewriter) HideUnknownAPIs() { r.hideUnknown = true }

// AdvertiseBridged makes ApiVersions answers list min version 0 for keys,
// whose old versions the proxy translates up to one the broker accepts
// (compat.version_bridge): a client that picks a version by overlapping its
// range with the broker's (librdkafka) then finds one. Call it before the
// rewriter is used.
func (r *Rewriter) AdvertiseBridged(keys []int16) {
	for _, k := range keys {
		if k >= 0 && int(k) < keySpan {
			r.bridged[k] = true
			r.bridging = true
		}
	}
}

// Hidden reports whether key is hidden from clients: unknown to kmsg while
// HideUnknownAPIs is on. A request for it must not be forwarded.
func (r *Rewriter) Hidden(key int16) bool { return r.hideUnknown && !r.p.Known(key) }

// AdvertiseSASL makes ApiVersions answers list the SASL versions of the
// proxy itself, for listen.sasl.mode terminate: the proxy, not the broker,
// is then the client's SASL server. librdkafka, for one, only uses SCRAM
// when SaslHandshake v0 is listed, whatever the broker behind says. Call it
// before the rewriter is used.
func (r *Rewriter) AdvertiseSASL() { r.saslServer = true }

// saslVersions are what the proxy's SASL server answers: SaslHandshake
// v0-v1 (after v0 the client's tokens come bare, with no request header)
// and SaslAuthenticate v0-v2.
var saslVersions = []kmsg.ApiVersionsResponseApiKey{
	{ApiKey: KeySaslHandshake, MinVersion: 0, MaxVersion: 1},
	{ApiKey: KeySaslAuthenticate, MinVersion: 0, MaxVersion: 2},
}

func advertiseSASL(keys []kmsg.ApiVersionsResponseApiKey) []kmsg.ApiVersionsResponseApiKey {
	for _, want := range saslVersions {
		found := false
		for i := range keys {
			if keys[i].ApiKey == want.ApiKey {
				keys[i].MinVersion, keys[i].MaxVersion = want.MinVersion, want.MaxVersion
				found = true
			}
		}
		if !found {
			keys = append(keys, want)
		}
	}
	return keys
}
