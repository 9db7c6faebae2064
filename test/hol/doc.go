// Package hol holds the slow head-of-line tests that run real clients for
// tens of seconds (go test ./test/hol/), and the experiment under
// test/hol/experiment that measures answer latencies per client and path.
package hol
