#!/usr/bin/python3
"""confluent-kafka-python (librdkafka) leg of the kproxy compatibility suite.

Run with Debian's interpreter (/usr/bin/python3): python3-confluent-kafka
installs into /usr/lib/python3/dist-packages.

Same steps and JSON line as kafka_python_client.py. Also usable as a topic
creator for clients that have no admin API (kcat): --create-only.
"""
import argparse
import sys
import time

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from compat_common import add_common_args, finish, new_result, pkg_version


def log(msg):
    print("confluent-kafka: " + msg, file=sys.stderr, flush=True)


def create_topic(bootstrap, topic, partitions, timeout):
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "compat-confluent-admin"})
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                              operation_timeout=timeout, request_timeout=timeout)[topic]
    try:
        fut.result(timeout=timeout)
        log("created topic %s" % topic)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        log("topic %s already exists" % topic)


def main():
    ap = argparse.ArgumentParser()
    add_common_args(ap)
    ap.add_argument("--group", default="")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--create-only", action="store_true", help="only create the topic, print nothing on stdout")
    ap.add_argument("--debug", default="", help="librdkafka debug contexts, e.g. protocol,cgrp")
    args = ap.parse_args()

    if args.create_only:
        create_topic(args.bootstrap, args.topic, args.partitions, args.timeout)
        return 0
    if not args.group:
        ap.error("--group is required")

    lib_ver, _ = confluent_kafka.libversion()
    result = new_result(
        "confluent-kafka-python",
        "%s (librdkafka %s)" % (confluent_kafka.version()[0], lib_ver),
        "python3-confluent-kafka %s, librdkafka1 %s" % (
            pkg_version("python3-confluent-kafka"), pkg_version("librdkafka1")))
    return finish(result, lambda: run(args, result), args.count)


def consumer_conf(args, n):
    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": "compat-confluent-consumer-%d" % n,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if args.debug:
        conf["debug"] = args.debug
    return conf


def run(args, result):
    # 1. Create the topic.
    create_topic(args.bootstrap, args.topic, args.partitions, args.timeout)

    # 2. Produce with acks=all; count only delivery reports without error.
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            result["produced"] += 1

    pconf = {"bootstrap.servers": args.bootstrap, "acks": "all",
             "client.id": "compat-confluent-producer"}
    if args.debug:
        pconf["debug"] = args.debug
    producer = Producer(pconf)
    for i in range(args.count):
        while True:
            try:
                producer.produce(args.topic, value=("rec-%d" % i).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(args.timeout)
    if left or errors:
        raise RuntimeError("produce: %d undelivered, %d failed (first: %s)" % (
            left, len(errors), errors[0] if errors else None))
    log("produced %d" % result["produced"])

    # 3. Consume everything in the group, commit synchronously, close.
    seen = {}
    consumer = Consumer(consumer_conf(args, 1))
    consumer.subscribe([args.topic])
    deadline = time.time() + args.timeout
    while len(seen) < args.count and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(msg.error())
        v = msg.value().decode()
        seen[v] = seen.get(v, 0) + 1
    if seen:
        consumer.commit(asynchronous=False)
    consumer.close()
    result["consumed"] = len(seen)
    result["duplicates"] = sum(n - 1 for n in seen.values())
    expected = {"rec-%d" % i for i in range(args.count)}
    missing, extra = expected - set(seen), set(seen) - expected
    if missing or extra:
        result["missing"], result["unexpected"] = len(missing), len(extra)
    log("consumed %d distinct, %d duplicates" % (result["consumed"], result["duplicates"]))

    # 4. A second member of the same group must see nothing already committed.
    assigned = []
    second = Consumer(consumer_conf(args, 2))
    second.subscribe([args.topic], on_assign=lambda c, parts: assigned.append(time.time()))
    n = 0
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        msg = second.poll(0.5)
        if msg is not None and not msg.error():
            n += 1
        if assigned and time.time() - assigned[0] >= args.second_poll:
            break
    second.close()
    if not assigned:
        raise RuntimeError("second member never got a partition assignment")
    result["second_member_records"] = n


if __name__ == "__main__":
    sys.exit(main())
