package admin

import (
	"net"
	"net/http"
	"strconv"

	"github.com/kproxy/kproxy/internal/sessioninfo"
)

// Sessions is what /debug/sessions asks of the proxy.
type Sessions interface {
	// Sessions lists at most limit open sessions, the most stuck first,
	// and how many are open.
	Sessions(limit int) (list []sessioninfo.Session, total int)
}

// Option adds to what Handler serves.
type Option func(*http.ServeMux)

// Session page sizes of /debug/sessions?limit=N.
const (
	DefaultSessionLimit = 100
	MaxSessionLimit     = 1000
)

// DebugSessions serves GET /debug/sessions from src when allowed (see
// DebugAllowed); otherwise the path answers 403 and says how to allow it.
func DebugSessions(src Sessions, allowed bool) Option {
	return func(mux *http.ServeMux) {
		mux.HandleFunc("GET /debug/sessions", func(w http.ResponseWriter, r *http.Request) {
			if !allowed {
				writeJSON(w, http.StatusForbidden, map[string]string{
					"error": "/debug/sessions shows client addresses and ids; it is served on a loopback admin.listen, or with admin.debug_endpoints: true (KPROXY_ADMIN_DEBUG_ENDPOINTS)",
				})
				return
			}
			limit := DefaultSessionLimit
			if v := r.URL.Query().Get("limit"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: want a number of sessions from 0 to " + strconv.Itoa(MaxSessionLimit)})
					return
				}
				limit = min(n, MaxSessionLimit)
			}
			list, total := src.Sessions(limit)
			if list == nil {
				list = []sessioninfo.Session{}
			}
			writeJSON(w, http.StatusOK, sessioninfo.Page{Total: total, Limit: limit, Sessions: list})
		})
	}
}

// DebugAllowed reports whether the debug endpoints may be served on the
// admin address listen: always on a loopback address, elsewhere only when
// the operator enabled them (admin.debug_endpoints).
func DebugAllowed(listen string, enabled bool) bool {
	if enabled {
		return true
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
