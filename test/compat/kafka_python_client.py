#!/usr/bin/python3
"""kafka-python leg of the kproxy compatibility suite.

Run with Debian's interpreter (/usr/bin/python3): the python3-kafka package
installs into /usr/lib/python3/dist-packages, which other Pythons do not see.

Steps: create TOPIC (3 partitions) with the admin client, produce COUNT
records "rec-<i>" with acks=all, consume them all in GROUP, commit, close;
then a second member of GROUP polls and must get nothing. Prints one JSON
line and exits 0 only if exactly COUNT distinct values arrived, no
duplicates, and the second member saw zero records.
"""
import argparse
import logging
import sys
import time

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from compat_common import add_common_args, finish, new_result, pkg_version


def log(msg):
    print("kafka-python: " + msg, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    add_common_args(ap)
    ap.add_argument("--group", required=True)
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)

    bootstrap = args.bootstrap.split(",")
    result = new_result("kafka-python", kafka.__version__, "python3-kafka " + pkg_version("python3-kafka"))
    return finish(result, lambda: run(args, bootstrap, result), args.count)


def run(args, bootstrap, result):
    # 1. Create the topic.
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="compat-kafka-python-admin")
    try:
        admin.create_topics([NewTopic(args.topic, num_partitions=3, replication_factor=1)])
        log("created topic %s" % args.topic)
    except TopicAlreadyExistsError:
        log("topic %s already exists" % args.topic)
    finally:
        admin.close()

    # 2. Produce with acks=all; count only acknowledged sends.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5,
                             client_id="compat-kafka-python-producer")
    futures = [producer.send(args.topic, value=("rec-%d" % i).encode()) for i in range(args.count)]
    producer.flush(timeout=args.timeout)
    for f in futures:
        f.get(timeout=args.timeout)  # raises on a failed send
        result["produced"] += 1
    producer.close()
    log("produced %d" % result["produced"])

    # 3. Consume everything in the group, commit synchronously, close.
    seen = {}
    consumer = KafkaConsumer(args.topic, bootstrap_servers=bootstrap, group_id=args.group,
                             client_id="compat-kafka-python-consumer-1",
                             auto_offset_reset="earliest", enable_auto_commit=False)
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

    # 4. A second member of the same group must see nothing already committed.
    second = KafkaConsumer(args.topic, bootstrap_servers=bootstrap, group_id=args.group,
                           client_id="compat-kafka-python-consumer-2",
                           auto_offset_reset="earliest", enable_auto_commit=False)
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
