package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// client is one column of the suite.
type client struct {
	name     string
	goClient bool
	// idMatching: the client matches answers to requests by correlation id,
	// so kproxy may answer out of request order (docs/CONFIGURATION.md, "Answer ordering").
	idMatching bool
	// legacy: pinned to the protocol of Kafka 0.8-0.10; it meets Kafka
	// 4.0 with its floors (legacy.go).
	legacy bool
	run    func(ctx context.Context, o options, s scenario) result
}

func currentClients() []client {
	return []client{
		{name: "kafka-python", run: script("/usr/bin/python3", "kafka_python_client.py")},
		{name: "confluent-kafka-python", idMatching: true, run: script("/usr/bin/python3", "confluent_client.py")},
		{name: "kcat", idMatching: true, run: script("", "kcat_client.sh")},
		{name: "kafkajs", idMatching: true, run: script("node", "kafkajs/kafkajs_client.js")},
		{name: "sarama", goClient: true, run: inProcess("github.com/IBM/sarama", saramaScenario)},
		{name: "franz-go", goClient: true, run: inProcess("github.com/twmb/franz-go", kgoScenario)},
		// kafka-go's Conn matches answers among concurrent waiters by id; its
		// Transport sends one request at a time per connection.
		{name: "kafka-go", goClient: true, idMatching: true, run: inProcess("github.com/segmentio/kafka-go", kafkaGoScenario)},
	}
}

func allClients() []client {
	return append(currentClients(), legacyClients()...)
}

func clientNames() []string {
	var names []string
	for _, c := range allClients() {
		names = append(names, c.name)
	}
	return names
}

func clientByName(name string) (client, bool) {
	for _, c := range allClients() {
		if c.name == name {
			return c, true
		}
	}
	return client{}, false
}

// scriptResult is the JSON line every script prints (test/compat/README.md).
type scriptResult struct {
	Version    string `json:"version"`
	Produced   int    `json:"produced"`
	Consumed   int    `json:"consumed"`
	Duplicates int    `json:"duplicates"`
	Second     int    `json:"second_member_records"`
	OK         bool   `json:"ok"`
	Error      string `json:"error"`
	Missing    int    `json:"missing"`
	Unexpected int    `json:"unexpected"`
}

// script runs a non-Go client script in its own process group, so a
// timeout also stops the processes it started (kcat's consumers); args
// are passed on to every run of it.
func script(interpreter, path string, args ...string) func(context.Context, options, scenario) result {
	return func(ctx context.Context, o options, s scenario) result {
		argv := []string{filepath.Join(o.scripts, path)}
		if interpreter != "" {
			argv = append([]string{interpreter}, argv...)
		}
		if err := preflight(interpreter, argv[len(argv)-1]); err != nil {
			return result{err: err}
		}
		argv = append(argv, args...)
		argv = append(argv, "--bootstrap", s.bootstrap, "--topic", s.topic, "--group", s.group, "--count", strconv.Itoa(s.count),
			"--second-poll", strconv.FormatFloat(s.secondPoll.Seconds(), 'f', -1, 64))
		if s.topicExists {
			argv = append(argv, "--no-create")
		}
		if s.keepGoing {
			argv = append(argv, "--keep-going")
		}
		if s.stepTimeout > 0 {
			argv = append(argv, "--timeout", strconv.FormatFloat(s.stepTimeout.Seconds(), 'f', -1, 64))
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		var stdout bytes.Buffer
		cmd.Stdout = io.MultiWriter(&stdout, s.log)
		cmd.Stderr = s.log
		runErr := cmd.Run()
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers
		}

		var line string
		for _, l := range strings.Split(stdout.String(), "\n") {
			if strings.HasPrefix(l, "{") {
				line = l
			}
		}
		var sr scriptResult
		if line == "" {
			return result{err: fmt.Errorf("%s printed no result line (%v)", path, runErr)}
		}
		if err := json.Unmarshal([]byte(line), &sr); err != nil {
			return result{err: fmt.Errorf("%s: result line: %w", path, err)}
		}
		res := result{version: sr.Version, produced: sr.Produced, consumed: sr.Consumed, duplicates: sr.Duplicates, second: sr.Second}
		var errs []error
		if sr.Error != "" {
			errs = append(errs, errors.New(sr.Error))
		}
		if sr.Missing != 0 || sr.Unexpected != 0 {
			errs = append(errs, fmt.Errorf("%d missing, %d unexpected values", sr.Missing, sr.Unexpected))
		}
		if runErr != nil || !sr.OK {
			errs = append(errs, fmt.Errorf("%s: ok=%v, %v", path, sr.OK, runErr))
		}
		res.err = errors.Join(errs...)
		return res
	}
}

// preflight names a missing prerequisite instead of letting the script
// fail obscurely.
func preflight(interpreter, path string) error {
	const hint = "; run .ci/install-compat-deps.sh"
	if interpreter != "" {
		if _, err := exec.LookPath(interpreter); err != nil {
			return fmt.Errorf("%s not found%s", interpreter, hint)
		}
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("client script: %w (is -scripts the test/compat directory?)", err)
	}
	switch filepath.Base(path) {
	case "kcat_client.sh":
		if _, err := exec.LookPath("kcat"); err != nil {
			return fmt.Errorf("kcat not found%s", hint)
		}
	case "kafkajs_client.js", "kafkanode_client.js", "nokafka_client.js":
		pkg := map[string]string{"kafkajs_client.js": "kafkajs", "kafkanode_client.js": "kafka-node", "nokafka_client.js": "no-kafka"}[filepath.Base(path)]
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), "node_modules", pkg)); err != nil {
			return fmt.Errorf("%s not installed in %s%s", pkg, filepath.Dir(path), hint)
		}
	}
	return nil
}

// inProcess runs a Go client's scenario in this process; the client
// version is its module's version in this binary.
func inProcess(module string, fn func(context.Context, scenario, *result) error) func(context.Context, options, scenario) result {
	return func(ctx context.Context, _ options, s scenario) result {
		res := result{version: moduleVersion(module)}
		res.err = fn(ctx, s, &res)
		return res
	}
}

// moduleVersion is the version of a Go client module linked into this
// binary.
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "unknown"
}

// tally counts what a consumer received against the "rec-<i>" values
// produced.
type tally struct {
	count int
	seen  map[string]int
	extra int
}

func newTally(count int) *tally { return &tally{count: count, seen: map[string]int{}} }

func value(i int) string { return "rec-" + strconv.Itoa(i) }

// add records one value and reports whether every expected value has now
// arrived.
func (t *tally) add(v string) bool {
	n, err := strconv.Atoi(strings.TrimPrefix(v, "rec-"))
	if !strings.HasPrefix(v, "rec-") || err != nil || n < 0 || n >= t.count {
		t.extra++
		return false
	}
	t.seen[v]++
	return len(t.seen) == t.count
}

// into fills a result's consumer counts.
func (t *tally) into(res *result) {
	res.consumed = len(t.seen)
	for _, n := range t.seen {
		res.duplicates += n - 1
	}
	if t.extra > 0 {
		res.err = errors.Join(res.err, fmt.Errorf("%d unexpected values", t.extra))
	}
}
