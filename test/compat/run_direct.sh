#!/usr/bin/env bash
# Runs every non-Go compatibility client DIRECTLY against an in-process kfake
# cluster (test/compat/kfakeserver), prints a result table, and exits non-zero
# if any client fails. This is the baseline: a client that fails here fails
# without kproxy, so it is a client or kfake limitation, not a kproxy bug.
#
#   test/compat/run_direct.sh [--kafka-version latest|2.8|3.9|...] [--count 1000]
#                             [--clients "kafka-python confluent kcat kafkajs"]
#                             [--bootstrap HOST:PORT]   # use a running cluster/proxy instead
#                             [--results FILE]          # JSON lines, one per client
#                             [--path-label direct]     # "path" column, e.g. proxy-strict
#
# Prerequisites: .ci/install-compat-deps.sh, Go (to build kfakeserver).
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kafka_version=latest count=1000 bootstrap="" results="" path_label=direct
clients="kafka-python confluent kcat kafkajs"
client_timeout=${COMPAT_CLIENT_TIMEOUT:-180}
while [ $# -gt 0 ]; do
	case "$1" in
	--kafka-version) kafka_version=$2; shift 2 ;;
	--count) count=$2; shift 2 ;;
	--clients) clients=$2; shift 2 ;;
	--bootstrap) bootstrap=$2; shift 2 ;;
	--results) results=$2; shift 2 ;;
	--path-label) path_label=$2; shift 2 ;;
	*) echo "run_direct.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

work=$(mktemp -d)
kfake_pid=""
cleanup() {
	exec 3>&- 2>/dev/null # EOF on kfakeserver's stdin stops it even if the kill below is missed
	if [ -n "$kfake_pid" ]; then
		kill -TERM "$kfake_pid" 2>/dev/null
		wait "$kfake_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ -n "$results" ] || results="$work/results.jsonl"
: >"$results"

if [ -z "$bootstrap" ]; then
	(cd "$root" && go build -o "$work/kfakeserver" ./test/compat/kfakeserver) || {
		echo "run_direct.sh: building kfakeserver failed" >&2; exit 1; }
	mkfifo "$work/kfake.in"
	"$work/kfakeserver" -brokers 3 -kafka-version "$kafka_version" \
		<"$work/kfake.in" >"$work/kfake.out" 2>"$work/kfake.err" &
	kfake_pid=$!
	exec 3>"$work/kfake.in" # held open for the script's lifetime
	for _ in $(seq 1 100); do
		bootstrap=$(awk '/^BOOTSTRAP /{print $2; exit}' "$work/kfake.out")
		[ -n "$bootstrap" ] && break
		kill -0 "$kfake_pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$bootstrap" ]; then
		echo "run_direct.sh: kfakeserver did not start:" >&2
		cat "$work/kfake.err" >&2
		exit 1
	fi
	echo "kfake ($kafka_version) at $bootstrap" >&2
fi

run_id="$(date +%s)-$$"
failed=0
for c in $clients; do
	case "$c" in
	kafka-python) cmd=(/usr/bin/python3 "$here/kafka_python_client.py") ;;
	confluent) cmd=(/usr/bin/python3 "$here/confluent_client.py") ;;
	kcat) cmd=("$here/kcat_client.sh") ;;
	kafkajs) cmd=(node "$here/kafkajs/kafkajs_client.js") ;;
	*) echo "run_direct.sh: unknown client $c" >&2; exit 2 ;;
	esac
	topic="compat-$c-$run_id" group="compat-$c-$run_id-g"
	echo "=== $c" >&2
	start=$SECONDS
	timeout "$client_timeout" "${cmd[@]}" --bootstrap "$bootstrap" --topic "$topic" \
		--group "$group" --count "$count" >"$work/$c.out" 2>"$work/$c.err"
	rc=$?
	line=$(grep '^{' "$work/$c.out" | tail -1)
	if [ -z "$line" ]; then
		line="{\"client\": \"$c\", \"ok\": false, \"error\": \"no result line (exit $rc)\"}"
	fi
	# Annotate with the run context so the table and the results file agree.
	line=$(printf '%s' "$line" | /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
r.update(kafka_version=sys.argv[1], path=sys.argv[4], exit_code=int(sys.argv[2]), seconds=int(sys.argv[3]))
if r["exit_code"] != 0: r["ok"] = False
print(json.dumps(r))' "$kafka_version" "$rc" "$((SECONDS - start))" "$path_label")
	echo "$line" >>"$results"
	if [ "$rc" -ne 0 ]; then
		failed=1
		echo "--- $c failed (exit $rc); stderr tail:" >&2
		tail -20 "$work/$c.err" >&2
	fi
done

/usr/bin/python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cols = ["client", "version", "kafka_version", "path", "produced", "consumed",
        "duplicates", "second_member_records", "seconds", "ok"]
table = [[str(r.get(c, "")) for c in cols] for r in rows]
w = [max(len(c), *(len(t[i]) for t in table)) if table else len(c) for i, c in enumerate(cols)]
print(" | ".join(c.ljust(w[i]) for i, c in enumerate(cols)))
print("-+-".join("-" * x for x in w))
for t in table:
    print(" | ".join(v.ljust(w[i]) for i, v in enumerate(t)))
for r in rows:
    if r.get("error"):
        print("%s: %s" % (r["client"], r["error"]))
PY
exit $failed
