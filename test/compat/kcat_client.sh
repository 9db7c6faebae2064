#!/usr/bin/env bash
# kcat leg of the kproxy compatibility suite.
#
#   kcat_client.sh --bootstrap HOST:PORT --topic T --group G [--count 1000]
#                  [--no-create] [--keep-going] [--rdkafka KEY=VALUE]...
#
# --rdkafka passes a librdkafka property to every kcat run (e.g.
# api.version.request=false with broker.version.fallback=0.9.0: a client
# pinned to an old broker's protocol). --no-create: the topic exists (3
# partitions). --keep-going runs every step even after one failed, to see
# what the client sends to a broker that rejects it.
#
# kcat has no admin API, so the topic is created with confluent_client.py
# --create-only (python3-confluent-kafka, the same librdkafka as kcat).
# Produce: kcat -P, one record per line "<i>:rec-<i>" split with -K: so the
# keys spread records over the 3 partitions (null keys would all stick to one
# partition under librdkafka's sticky partitioner); acks=all; -v -v prints one
# "Message delivered" line per acknowledged record, which is what we count.
# Consume: kcat -G (balanced KafkaConsumer) with auto-commit; -c COUNT exits
# after COUNT records and the consumer close commits the stored offsets.
# auto.offset.reset=earliest on both members, so an uncommitted offset would
# show up as redelivery to the second member rather than pass unnoticed.
# Second member: kcat -G on the same group for a few seconds after its
# assignment; it must print nothing.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
bootstrap="" topic="" group="" count=1000 timeout=60 second_poll=5 create=1 keep_going=0
rdkafka=()
while [ $# -gt 0 ]; do
	case "$1" in
	--no-create) create=0; shift ;;
	--keep-going) keep_going=1; shift ;;
	--rdkafka) rdkafka+=(-X "$2"); shift 2 ;;
	--bootstrap) bootstrap=$2; shift 2 ;;
	--topic) topic=$2; shift 2 ;;
	--group) group=$2; shift 2 ;;
	--count) count=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--second-poll) second_poll=$2; shift 2 ;;
	*) echo "kcat_client.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
if [ -z "$bootstrap" ] || [ -z "$topic" ] || [ -z "$group" ]; then
	echo "usage: kcat_client.sh --bootstrap HOST:PORT --topic T --group G [--count N]" >&2
	exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log() { echo "kcat: $*" >&2; }

kcat_version=$(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/\1 (librdkafka \2)/p')
pkg="kcat $(dpkg-query -W -f='${Version}' kcat 2>/dev/null || echo unknown), librdkafka1 $(dpkg-query -W -f='${Version}' librdkafka1 2>/dev/null || echo unknown)"
produced=0 consumed=0 duplicates=0 second=-1 err=""

# fail records a failed step; it returns non-zero (stop the scenario)
# unless --keep-going.
fail() {
	err="${err:+$err; }$1"
	log "step failed: $1"
	[ "$keep_going" -eq 1 ]
}

# first_error is ": " and the first error kcat wrote to a step's stderr,
# if any: why the step failed, in the row's result.
first_error() { grep -m1 '^% ERROR' "$1" | sed 's/^/: /'; }

run() {
	# 1. Create the topic (kcat cannot).
	if [ "$create" -eq 1 ] && ! /usr/bin/python3 "$here/confluent_client.py" --create-only --bootstrap "$bootstrap" \
		--topic "$topic" --partitions 3 --timeout 30; then
		err="topic creation via confluent_client.py failed"; return
	fi

	# 2. Produce COUNT records with acks=all.
	seq 0 $((count - 1)) | awk '{print $1 ":rec-" $1}' |
		timeout "$timeout" kcat -P -b "$bootstrap" -t "$topic" -K: -X acks=all "${rdkafka[@]}" \
			-X client.id=compat-kcat-producer -v -v 2>"$work/produce.err"
	rc=$?
	produced=$(grep -c '^% Message delivered' "$work/produce.err")
	if [ $rc -ne 0 ]; then
		fail "kcat -P exited $rc: $(grep -m1 -i 'fail\|error' "$work/produce.err")" || return
	fi
	log "produced $produced"

	# 3. Consume COUNT records in the group; exit commits via auto-commit.
	timeout "$timeout" kcat -G "$group" -b "$bootstrap" -q -u -f '%s\n' -c "$count" "${rdkafka[@]}" \
		-X client.id=compat-kcat-consumer-1 -X auto.offset.reset=earliest \
		-X enable.auto.commit=true -X auto.commit.interval.ms=1000 \
		"$topic" >"$work/consumed" 2>"$work/consume.err"
	rc=$?
	consumed=$(sort -u "$work/consumed" | grep -c '^rec-')
	total=$(grep -c '^rec-' "$work/consumed")
	duplicates=$((total - consumed))
	expected_missing=$(seq 0 $((count - 1)) | sed 's/^/rec-/' | sort | comm -23 - <(sort -u "$work/consumed") | wc -l)
	if [ $rc -ne 0 ]; then
		fail "kcat -G (first member) exited $rc after $total records$(first_error "$work/consume.err")" || return
	elif [ "$expected_missing" -ne 0 ]; then
		fail "$expected_missing expected values missing" || return
	fi
	log "consumed $consumed distinct, $duplicates duplicates"

	# 4. Second member: poll a few seconds after assignment, expect nothing.
	# Verbose stderr carries the "Group ... rebalanced ... assigned:" line.
	kcat -G "$group" -b "$bootstrap" -u -f '%s\n' "${rdkafka[@]}" \
		-X client.id=compat-kcat-consumer-2 -X auto.offset.reset=earliest \
		-X enable.auto.commit=true "$topic" >"$work/second" 2>"$work/second.err" &
	pid=$!
	deadline=$((SECONDS + timeout))
	while ! grep -q 'assigned:' "$work/second.err" && [ $SECONDS -lt $deadline ] && kill -0 $pid 2>/dev/null; do
		sleep 0.2
	done
	assigned=0
	grep -q 'assigned: .*\[' "$work/second.err" && assigned=1
	sleep "$second_poll"
	kill -TERM $pid 2>/dev/null
	wait $pid 2>/dev/null
	second=$(grep -c '^rec-' "$work/second")
	if [ $assigned -ne 1 ]; then
		fail "second member never got a partition assignment$(first_error "$work/second.err")" || return
	fi
}
run

ok=false
if [ -z "$err" ] && [ "$produced" -eq "$count" ] && [ "$consumed" -eq "$count" ] &&
	[ "$duplicates" -eq 0 ] && [ "$second" -eq 0 ]; then
	ok=true
fi
errjson=""
[ -n "$err" ] && errjson=", \"error\": \"$(printf '%s' "$err" | tr -d '\n' | sed 's/[\\"]/\\&/g')\""
printf '{"client": "kcat", "version": "%s", "package": "%s", "produced": %d, "consumed": %d, "duplicates": %d, "second_member_records": %d, "ok": %s%s}\n' \
	"$kcat_version" "$pkg" "$produced" "$consumed" "$duplicates" "$second" "$ok" "$errjson"
[ "$ok" = true ]
