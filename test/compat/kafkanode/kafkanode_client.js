#!/usr/bin/env node
// kafka-node leg of the kproxy compatibility suite: a legacy client. Its
// last release (5.0.0, 2019) speaks Produce v0-2, Fetch v0-2, ListOffsets
// v0 and JoinGroup v0 with message format v0/v1, all of which Kafka 4.0
// removed.
//
//   node kafkanode_client.js --bootstrap HOST:PORT --topic T --group G [--count 1000]
//       [--no-create] [--keep-going] [--timeout S] [--second-poll S]
//
// Same steps and JSON line as ../kafka_python_client.py: create the topic
// (unless --no-create), produce COUNT records "rec-<i>" with acks=all in
// gzip-compressed message sets, consume them all in GROUP, commit, leave;
// then a second member of GROUP must get nothing. --keep-going runs every
// step even after one failed, each bounded by --timeout, to see what the
// client sends to a broker that rejects it. Logs go to stderr.
'use strict'

const kafka = require('kafka-node')
const kafkaNodeVersion = require('kafka-node/package.json').version
const { parseArgs, sleep, waitFor, stepper, tally, finish, newResult } = require('../compat_common.js')

const GZIP = 1 // message attributes: the codec

const log = (msg) => process.stderr.write(`kafka-node: ${msg}\n`)

// call turns a node-style callback method into a promise.
const call = (obj, method, ...args) => new Promise((resolve, reject) => {
  obj[method](...args, (err, res) => (err ? reject(err) : resolve(res)))
})

const once = (emitter, event) => new Promise((resolve) => emitter.once(event, resolve))

function newClient (args, id) {
  const client = new kafka.KafkaClient({
    kafkaHost: args.bootstrap,
    clientId: `compat-kafka-node-${id}`,
    connectTimeout: 5000,
    requestTimeout: Math.max(args.timeout, 10) * 1000
  })
  client.on('error', (e) => log(`${id} client: ${e.message}`))
  return client
}

function newMember (args, id) {
  const member = new kafka.ConsumerGroup({
    kafkaHost: args.bootstrap,
    clientId: `compat-kafka-node-${id}`,
    groupId: args.group,
    fromOffset: 'earliest',
    autoCommit: false,
    sessionTimeout: 10000,
    protocol: ['roundrobin'],
    encoding: 'utf8',
    connectTimeout: 5000
  }, [args.topic])
  member.on('error', (e) => log(`${id}: ${e.message}`))
  return member
}

async function run (args, result) {
  const ms = args.timeout * 1000
  const step = stepper(args, result, log)

  // 1. Create the topic (CreateTopics v0).
  const client = newClient(args, 'producer')
  await step('connecting', () => once(client, 'ready'))
  if (!args.noCreate) {
    await step('creating the topic', async () => {
      const res = await call(client, 'createTopics', [{ topic: args.topic, partitions: 3, replicationFactor: 1 }])
      for (const r of res || []) {
        if (r.error && !/already exists/.test(r.error)) throw new Error(`create topic: ${r.error}`)
      }
    })
  }

  // 2. Produce with acks=all, in gzip message sets, 100 records a request
  // spread over the three partitions.
  const producer = new kafka.Producer(client, { requireAcks: -1, ackTimeoutMs: 10000 })
  producer.on('error', (e) => log(`producer: ${e.message}`))
  await step('producing', async () => {
    if (!producer.ready) await once(producer, 'ready')
    const batch = 100
    for (let i = 0; i < args.count; i += batch) {
      const payloads = [0, 1, 2].map((partition) => ({ topic: args.topic, partition, attributes: GZIP, messages: [] }))
      for (let j = i; j < Math.min(i + batch, args.count); j++) {
        payloads[j % 3].messages.push(new kafka.KeyedMessage(String(j), `rec-${j}`))
      }
      const sent = payloads.filter((p) => p.messages.length > 0)
      await call(producer, 'send', sent)
      for (const p of sent) result.produced += p.messages.length
    }
  })
  log(`produced ${result.produced}`)
  await new Promise((resolve) => producer.close(resolve))

  // 3. Consume everything in the group, commit, leave.
  const seen = new Map()
  const first = newMember(args, 'first')
  first.on('message', (m) => seen.set(m.value, (seen.get(m.value) || 0) + 1))
  await step('consuming', () => waitFor(() => seen.size >= args.count, ms, `${args.count} records`))
  await step('committing', () => call(first, 'commit', true))
  await step('leaving the group', () => call(first, 'close', false))
  tally(result, seen, args.count)
  log(`consumed ${result.consumed} distinct, ${result.duplicates} duplicates`)

  // 4. A second member of the same group must see nothing already
  // committed.
  let n = 0
  const second = newMember(args, 'second')
  second.on('message', () => { n++ })
  await step('the second member joining', async () => {
    await once(second, 'rebalanced')
    if (second.topicPayloads.length === 0) throw new Error('the second member was assigned no partition')
    await sleep(args.secondPoll * 1000)
    result.second_member_records = n
  })
  await step('the second member leaving', () => call(second, 'close', false))
  await new Promise((resolve) => client.close(resolve))
}

function main () {
  const args = parseArgs(process.argv, 'kafkanode_client.js')
  const result = newResult('kafka-node', kafkaNodeVersion, `kafka-node ${kafkaNodeVersion} (npm, package-lock.json), node ${process.version}`)
  return finish(result, args.count, () => run(args, result))
}

main()
