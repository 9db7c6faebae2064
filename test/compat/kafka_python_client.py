#!/usr/bin/python3
"""kafka-python leg of the kproxy compatibility suite.

Run with Debian's interpreter (/usr/bin/python3): the python3-kafka package
installs into /usr/lib/python3/dist-packages, which other Pythons do not see.

Steps: create TOPIC (3 partitions) with the admin client, produce COUNT
records "rec-<i>" with acks=all, consume them all in GROUP, commit, close;
then a second member of GROUP polls and must get nothing. Prints one JSON
line and exits 0 only if exactly COUNT distinct values arrived, no
duplicates, and the second member saw zero records.

--api-version 0.9 (or 0.10.1, 0.8.2, ...) holds the client to that Kafka
version's requests, as an application pinned to an old broker does (no
ApiVersions request). Below 0.10.1 the admin client cannot create topics, so
such runs use --no-create with a topic the harness made; below 0.9 there is
no group membership: the consumers are assigned every partition and commit
the group's offsets (OffsetCommit v1, kafka storage), so the second member
still starts where the first committed. --keep-going runs every step even
after one failed, to see what the client sends to a broker that rejects it.
"""
import argparse
import logging
import signal
import sys
import time

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition
from kafka.errors import TopicAlreadyExistsError

from compat_common import add_common_args, finish, new_result, pkg_version


def log(msg):
    print("kafka-python: " + msg, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    add_common_args(ap)
    ap.add_argument("--group", required=True)
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--api-version", default=None, help="e.g. 0.9: pin the protocol to that Kafka version")
    ap.add_argument("--no-create", action="store_true", help="the topic exists (3 partitions)")
    ap.add_argument("--keep-going", action="store_true", help="run every step even after one failed")
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)

    bootstrap = args.bootstrap.split(",")
    result = new_result("kafka-python", kafka.__version__, "python3-kafka " + pkg_version("python3-kafka"))
    return finish(result, lambda: run(args, bootstrap, result), args.count)


def client_config(args):
    """The pinned protocol version every client of this run shares."""
    if args.api_version is None:
        return {}
    return {"api_version": tuple(int(x) for x in args.api_version.split("."))}


def new_consumer(args, bootstrap, client_id):
    cfg = client_config(args)
    version = cfg.get("api_version")
    if version is not None and version < (0, 10, 1):
        # No separate poll interval before KIP-62: both must be equal.
        cfg["session_timeout_ms"] = cfg["max_poll_interval_ms"] = 10000
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=args.group, client_id=client_id,
                             auto_offset_reset="earliest", enable_auto_commit=False, **cfg)
    if version is not None and version < (0, 9):
        consumer.assign([TopicPartition(args.topic, p) for p in range(3)])
    else:
        consumer.subscribe([args.topic])
    return consumer


class StepTimeout(Exception):
    pass


def on_alarm(signum, frame):
    raise StepTimeout("step took longer than --timeout plus 5 s")


def step(args, result, fn):
    """Runs one step, bounded (kafka-python's poll blocks for as long as it
    cannot join the group); with --keep-going a failure is recorded and the
    scenario goes on."""
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout) + 5)
    try:
        fn()
    except Exception as e:
        if not args.keep_going:
            raise
        result["error"] = "%s%s: %s" % (result["error"] + "; " if "error" in result else "", type(e).__name__, e)
        log("step failed, going on: %s: %s" % (type(e).__name__, e))
    finally:
        signal.alarm(0)


def run(args, bootstrap, result):
    if not args.no_create:
        create_topic(args, bootstrap)
    step(args, result, lambda: produce(args, bootstrap, result))
    step(args, result, lambda: consume(args, bootstrap, result))
    step(args, result, lambda: second_member(args, bootstrap, result))


def create_topic(args, bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="compat-kafka-python-admin",
                             **client_config(args))
    try:
        admin.create_topics([NewTopic(args.topic, num_partitions=3, replication_factor=1)])
        log("created topic %s" % args.topic)
    except TopicAlreadyExistsError:
        log("topic %s already exists" % args.topic)
    finally:
        admin.close()


def produce(args, bootstrap, result):
    """acks=all; counts only acknowledged sends."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5,
                             client_id="compat-kafka-python-producer", **client_config(args))
    try:
        futures = [producer.send(args.topic, value=("rec-%d" % i).encode()) for i in range(args.count)]
        producer.flush(timeout=args.timeout)
        for f in futures:
            f.get(timeout=args.timeout)  # raises on a failed send
            result["produced"] += 1
    finally:
        producer.close(timeout=5)
    log("produced %d" % result["produced"])


def consume(args, bootstrap, result):
    """Everything in the group, committed synchronously, then close."""
    seen = {}
    consumer = new_consumer(args, bootstrap, "compat-kafka-python-consumer-1")
    deadline = time.time() + args.timeout
    while len(seen) < args.count and time.time() < deadline:
        for recs in consumer.poll(timeout_ms=500).values():
            for r in recs:
                v = r.value.decode()
                seen[v] = seen.get(v, 0) + 1
    consumer.commit()
    consumer.close()
    result["consumed"] = len(seen)
    result["duplicates"] = sum(n - 1 for n in seen.values())
    expected = {"rec-%d" % i for i in range(args.count)}
    missing, extra = expected - set(seen), set(seen) - expected
    if missing or extra:
        result["missing"], result["unexpected"] = len(missing), len(extra)
    log("consumed %d distinct, %d duplicates" % (result["consumed"], result["duplicates"]))


def second_member(args, bootstrap, result):
    """A second member of the same group must see nothing already committed."""
    second = new_consumer(args, bootstrap, "compat-kafka-python-consumer-2")
    n = 0
    assigned_at = None
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        for recs in second.poll(timeout_ms=500).values():
            n += len(recs)
        if assigned_at is None and second.assignment():
            assigned_at = time.time()
        if assigned_at is not None and time.time() - assigned_at >= args.second_poll:
            break
    if assigned_at is None:
        raise RuntimeError("second member never got a partition assignment")
    second.close()
    result["second_member_records"] = n


if __name__ == "__main__":
    sys.exit(main())
