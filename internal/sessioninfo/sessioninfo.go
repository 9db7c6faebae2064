// Package sessioninfo is the shape of GET /debug/sessions on the admin
// server: what each client session of a running kproxy is doing. The
// listener fills it, the admin server serves it as JSON, and
// `kproxy sessions` prints it as a table. It holds no credentials: a
// principal is a user or certificate name, never a secret.
package sessioninfo

// Page is one answer of /debug/sessions: at most Limit sessions, the ones
// waiting longest on the broker first, out of Total open.
type Page struct {
	Total    int       `json:"total"`
	Limit    int       `json:"limit"`
	Sessions []Session `json:"sessions"`
}

// Session is one client connection.
type Session struct {
	Client string `json:"client"` // the client's address
	// Broker is the node id whose port the client connected to, or
	// "bootstrap".
	Broker          string `json:"broker"`
	ClientID        string `json:"client_id"`
	SoftwareName    string `json:"software_name,omitempty"` // KIP-511, from ApiVersions v3+
	SoftwareVersion string `json:"software_version,omitempty"`
	// Ordering is strict or relaxed ("" before the first request);
	// OrderingReason says why: config, client_rule, client_software,
	// unknown_client.
	Ordering       string `json:"ordering"`
	OrderingReason string `json:"ordering_reason,omitempty"`
	// Principal is "sasl:" and the user name the client authenticated as
	// (listen.sasl.mode terminate), then "tls:" and the subject of its
	// verified client certificate, space-separated; "" when neither.
	Principal string `json:"principal,omitempty"`
	// Bridged are the requests of removed protocol versions the version
	// bridge translated for this client: "Produce v2→v3, Fetch v3→v4"
	// (compat.version_bridge); "" when none.
	Bridged  string `json:"bridged,omitempty"`
	AgeMs    int64  `json:"age_ms"`
	BytesIn  int64  `json:"bytes_in"`  // read from the client
	BytesOut int64  `json:"bytes_out"` // written to the client
	Requests int64  `json:"requests"`
	// InFlight are requests forwarded and not yet answered by the broker.
	InFlight  int       `json:"in_flight"`
	FetchWait FetchWait `json:"fetch_wait"`
	Held      Held      `json:"held"`
	Lanes     []Lane    `json:"lanes"`
}

// FetchWait is the state of the session's fetch wait budget
// (routing.fetch_wait_budget).
type FetchWait struct {
	// State is off (no budget, or a relaxed session), armed (no answer
	// has waited behind a long poll lately) or capping (a Fetch now gets
	// its MaxWaitMillis lowered to BudgetMs).
	State         string `json:"state"`
	BudgetMs      int64  `json:"budget_ms"`
	WindowLeftMs  int64  `json:"window_left_ms,omitempty"` // capping: how long it stays on
	CappedFetches int64  `json:"capped_fetches"`           // this session's Fetches capped so far
}

// Fetch wait states.
const (
	FetchWaitOff     = "off"
	FetchWaitArmed   = "armed"
	FetchWaitCapping = "capping"
)

// Held are answers complete and not yet written to the client: under strict
// ordering, waiting for an earlier answer.
type Held struct {
	Answers   int   `json:"answers"`
	LongestMs int64 `json:"longest_ms"`
}

// Lane is one upstream connection of the session, or a group with requests
// owed and no connection.
type Lane struct {
	Group    string `json:"group"`
	Upstream string `json:"upstream,omitempty"` // the broker address dialed
	// State is busy (requests in flight), idle, or closed (answers still
	// owed to the client on a connection that is gone).
	State    string   `json:"state"`
	InFlight int      `json:"in_flight"`
	Oldest   *Request `json:"oldest,omitempty"` // the oldest request in flight
}

// Lane states.
const (
	LaneBusy   = "busy"
	LaneIdle   = "idle"
	LaneClosed = "closed"
)

// Request is one request in flight.
type Request struct {
	API   string `json:"api"`
	AgeMs int64  `json:"age_ms"`
	// TimeoutMs is how long the broker may legitimately hold it (Fetch
	// MaxWaitMillis, JoinGroup's rebalance timeout, Produce and admin
	// timeouts; 0 for requests answered at once).
	TimeoutMs int64 `json:"timeout_ms"`
	// Overdue: older than its own timeout plus OverdueSlackMs. The broker
	// is slow or stuck; limits.upstream_answer_grace past the timeout the
	// session is closed.
	Overdue bool `json:"overdue"`
}

// OverdueSlackMs is how long past its own timeout a request is still on
// time: a broker answers requests without a timeout within milliseconds.
const OverdueSlackMs = 1000
