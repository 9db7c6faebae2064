package proxytest

import "github.com/kproxy/kproxy/internal/rawclient"

// The raw single-socket client lives in internal/rawclient so that the
// demo binary can use it without linking this test harness; these names
// keep the tests' spelling.
type (
	// RawConn is a legacy single-socket client: see rawclient.Conn.
	RawConn = rawclient.Conn
	// Response is one decoded answer.
	Response = rawclient.Response
)

// Re-exported from rawclient.
var (
	Dial           = rawclient.Dial
	EncodeRequest  = rawclient.EncodeRequest
	FetchRequest   = rawclient.FetchRequest
	ProduceRequest = rawclient.ProduceRequest
	RecordBatch    = rawclient.RecordBatch
)
