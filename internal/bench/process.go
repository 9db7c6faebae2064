package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/kproxy/kproxy/internal/loopback"
)

// The CPU rows measure the relay and kproxy each as a process of its own,
// so that the client and the broker, which stay in the bench process, are
// not in the number. The children are this same executable: any binary
// that links this package becomes a child when childEnv names a role
// (init runs before main, so the binary's own flags never see it).
const (
	childEnv     = "KPROXY_BENCH_CHILD"      // relay or kproxy
	childSpecEnv = "KPROXY_BENCH_CHILD_SPEC" // a childSpec in JSON
)

func init() {
	if role := os.Getenv(childEnv); role != "" {
		if err := runChild(role, os.Getenv(childSpecEnv)); err != nil {
			fmt.Fprintf(os.Stderr, "bench child %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// childSpec is what a child is told: the brokers and, for TLS on both
// sides, the PEM files (one self-signed certificate serves as the CA, the
// brokers' and kproxy's certificate).
type childSpec struct {
	Upstreams []string `json:"upstreams"`
	CertFile  string   `json:"cert_file,omitempty"`
	KeyFile   string   `json:"key_file,omitempty"`
}

// childReady is the child's one line on stdout once it serves.
type childReady struct {
	Relay     map[string]string `json:"relay,omitempty"` // upstream → relay address
	Bootstrap string            `json:"bootstrap,omitempty"`
	Broker0   string            `json:"broker0,omitempty"`
}

// runChild serves until its stdin closes (the bench ended or died).
func runChild(role, specJSON string) error {
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("%s: %w", childSpecEnv, err)
	}
	var ready childReady
	var stop func()
	switch role {
	case "relay":
		r, err := newRelay(spec.Upstreams)
		if err != nil {
			return err
		}
		ready.Relay, stop = r.addrs, r.close
	case "kproxy":
		cfg := loopback.Config(spec.Upstreams)
		if spec.CertFile != "" {
			cfg.Listen.TLS.CertFile, cfg.Listen.TLS.KeyFile = spec.CertFile, spec.KeyFile
			cfg.Upstream.TLS.Enabled, cfg.Upstream.TLS.CAFile = true, spec.CertFile
		}
		srv, err := startProxy(cfg)
		if err != nil {
			return err
		}
		ready.Bootstrap, ready.Broker0 = srv.BootstrapAddr(), srv.BrokerAddrs()[0]
		stop = func() { stopProxy(srv) }
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	if err := json.NewEncoder(os.Stdout).Encode(ready); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop()
	return nil
}

// child is a running relay or kproxy process.
type child struct {
	cmd   *exec.Cmd
	stdin io.Closer
	ready childReady
}

func startChild(role string, spec childSpec) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+role, childSpecEnv+"="+string(specJSON))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &c.ready)
	}
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s process did not start: %w", role, err)
	}
	return c, nil
}

// stop closes the child's stdin and waits for it to exit.
func (c *child) stop() {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() {
		_ = c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// cpu is the CPU time (user + system, every thread) the child has used,
// from /proc/<pid>/stat, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
func (c *child) cpu() (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it
	// start at the state (field 3): utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
