#!/usr/bin/env node
// no-kafka leg of the kproxy compatibility suite: a legacy client. no-kafka
// 3.4.4, its last release, is a Kafka 0.9 client: no ApiVersions, Produce
// v1 with message format v0, Fetch v0, ListOffsets v0, JoinGroup v0, all
// of which Kafka 4.0 removed. It has no CreateTopics, so the topic must
// exist (--no-create).
//
//   node nokafka_client.js --bootstrap HOST:PORT --topic T --group G --no-create [--count 1000]
//       [--keep-going] [--timeout S] [--second-poll S]
//
// Same steps and JSON line as ../kafka_python_client.py: produce COUNT
// records "rec-<i>" with acks=all in gzip message sets, consume them all
// in GROUP starting at the earliest offset (ListOffsets v0), commit, leave;
// then a second member of GROUP must get nothing. --keep-going runs every
// step even after one failed, each bounded by --timeout. Logs go to stderr.
'use strict'

const Kafka = require('no-kafka')
const noKafkaVersion = require('no-kafka/package.json').version
const { parseArgs, sleep, waitFor, stepper, tally, finish, newResult } = require('../compat_common.js')

const log = (msg) => process.stderr.write(`no-kafka: ${msg}\n`)

// options are every client's. asyncCompression is no-kafka's default, and
// with it concurrent requests to several brokers garble one another's
// messages while gzip runs: captured straight at kfake, inner CRCs that do
// not match, messages lost, others repeated with valid CRCs. A broker
// answers the first CORRUPT_MESSAGE and stores the rest, so compress
// synchronously.
function options (args, id) {
  return {
    connectionString: args.bootstrap,
    clientId: `compat-no-kafka-${id}`,
    asyncCompression: false,
    logger: { logLevel: args.debug ? 5 : 2, logFunction: (...a) => process.stderr.write(`no-kafka ${a.join(' ')}\n`) }
  }
}

// member is a group member that records what it is handed in seen and
// the last offset per partition in last.
function member (args, id, seen, last) {
  const m = new Kafka.GroupConsumer({ ...options(args, id), groupId: args.group, startingOffset: Kafka.EARLIEST_OFFSET, sessionTimeout: 10000 })
  const handler = (messageSet, topic, partition) => {
    for (const { offset, message } of messageSet) {
      const v = message.value.toString('utf8')
      seen.set(v, (seen.get(v) || 0) + 1)
      last.set(partition, offset)
    }
  }
  return { m, init: () => m.init([{ subscriptions: [args.topic], handler }]) }
}

async function run (args, result) {
  if (!args.noCreate) throw new Error('no-kafka has no CreateTopics: pass --no-create with a 3-partition topic')
  const ms = args.timeout * 1000
  const step = stepper(args, result, log)

  // 1. Produce with acks=all, in gzip message sets, 100 records a request
  // spread over the three partitions.
  const producer = new Kafka.Producer({ ...options(args, 'producer'), requiredAcks: -1, timeout: 10000, codec: Kafka.COMPRESSION_GZIP, retries: { attempts: 2 } })
  await step('producing', async () => {
    await producer.init()
    const batch = 100
    for (let i = 0; i < args.count; i += batch) {
      const messages = []
      for (let j = i; j < Math.min(i + batch, args.count); j++) {
        messages.push({ topic: args.topic, partition: j % 3, message: { key: String(j), value: `rec-${j}` } })
      }
      const res = await producer.send(messages)
      const failed = res.find((r) => r.error)
      if (failed) throw new Error(`produce to partition ${failed.partition}: ${failed.error.message || failed.error.code}`)
      result.produced += messages.length
    }
  })
  log(`produced ${result.produced}`)
  await step('closing the producer', () => producer.end())

  // 2. Consume everything in the group, commit, leave.
  const seen = new Map()
  const last = new Map()
  const first = member(args, 'first', seen, last)
  await step('joining the group', first.init)
  await step('consuming', () => waitFor(() => seen.size >= args.count, ms, `${args.count} records`))
  await step('committing', () => first.m.commitOffset([...last].map(([partition, offset]) => ({ topic: args.topic, partition, offset }))))
  await step('leaving the group', () => first.m.end())
  tally(result, seen, args.count)
  log(`consumed ${result.consumed} distinct, ${result.duplicates} duplicates`)

  // 3. A second member of the same group must see nothing already
  // committed.
  const again = new Map()
  const second = member(args, 'second', again, new Map())
  await step('the second member joining', async () => {
    await second.init()
    if (Object.keys(second.m.subscriptions).length === 0) throw new Error('the second member was assigned no partition')
    await sleep(args.secondPoll * 1000)
    result.second_member_records = [...again.values()].reduce((s, n) => s + n, 0)
  })
  await step('the second member leaving', () => second.m.end())
}

function main () {
  const args = parseArgs(process.argv, 'nokafka_client.js')
  const result = newResult('no-kafka', noKafkaVersion, `no-kafka ${noKafkaVersion} (npm, package-lock.json), node ${process.version}`)
  return finish(result, args.count, () => run(args, result))
}

main()
