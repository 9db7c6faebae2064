// Package bridge: a stand-in with the agreed API until the translators land.
package bridge

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func Floor(key int16) int16 { return 0 }

type Broker struct{}

func NewBroker(keys []kmsg.ApiVersionsResponseApiKey) *Broker { return &Broker{} }

func (b *Broker) Target(key, from int16) (to int16, bridged, ok bool) { return from, false, true }

type Exchange struct{ Key, From, To int16 }

func Up(req []byte, key, from, to int16, maxOut int) ([]byte, *Exchange, error) {
	return nil, nil, errors.New("stub")
}

func (x *Exchange) Down(resp []byte, maxOut int) ([]byte, error) { return nil, errors.New("stub") }

func UnsupportedVersion(req []byte, key, version int16) ([]byte, error) {
	return nil, errors.New("stub")
}
