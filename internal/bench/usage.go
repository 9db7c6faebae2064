package bench

import (
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// usage is what the process spent: CPU time (user + system, every
// goroutine of the process: clients, kfake, and the relay or kproxy) and
// bytes allocated on the Go heap.
type usage struct {
	cpu   time.Duration
	alloc uint64
}

func (u usage) sub(v usage) usage { return usage{u.cpu - v.cpu, u.alloc - v.alloc} }
func (u usage) add(v usage) usage { return usage{u.cpu + v.cpu, u.alloc + v.alloc} }

func readUsage() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return usage{cpu: cpu, alloc: s[0].Value.Uint64()}
}

// goMemory is the memory the Go runtime holds for live objects and
// goroutine stacks.
func goMemory() uint64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// rss is the process's resident set size, from /proc/self/statm.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// raiseFileLimit lifts RLIMIT_NOFILE to its hard limit: the idle-connection
// row holds up to four descriptors per connection (client, proxy's accept,
// proxy's upstream, broker's accept).
func raiseFileLimit(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < need && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
