#!/usr/bin/env node
// KafkaJS leg of the kproxy compatibility suite.
//
//   node kafkajs_client.js --bootstrap HOST:PORT --topic T --group G [--count 1000]
//
// Same steps and JSON line as ../kafka_python_client.py. KafkaJS logs go to
// stderr so stdout carries only the result line.
'use strict'

const { Kafka, logLevel, Partitioners } = require('kafkajs')
const kafkajsVersion = require('kafkajs/package.json').version
const { parseArgs, sleep, waitFor, tally, finish, newResult } = require('../compat_common.js')

const log = (msg) => process.stderr.write(`kafkajs: ${msg}\n`)

const stderrLogCreator = () => ({ namespace, level, label, log: entry }) => {
  const { message, ...extra } = entry
  process.stderr.write(`kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(extra)}\n`)
}

async function run (args, result) {
  const kafka = new Kafka({
    clientId: 'compat-kafkajs',
    brokers: args.bootstrap.split(','),
    logLevel: args.debug ? logLevel.DEBUG : logLevel.WARN,
    logCreator: stderrLogCreator,
    retry: { retries: 5 }
  })

  // 1. Create the topic.
  const admin = kafka.admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({
      topics: [{ topic: args.topic, numPartitions: 3, replicationFactor: 1 }],
      waitForLeaders: true
    })
    log(created ? `created topic ${args.topic}` : `topic ${args.topic} already exists`)
  } finally {
    await admin.disconnect()
  }

  // 2. Produce with acks=all (-1), keyed so records spread over partitions.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  try {
    const batch = 100
    for (let i = 0; i < args.count; i += batch) {
      const messages = []
      for (let j = i; j < Math.min(i + batch, args.count); j++) {
        messages.push({ key: String(j), value: `rec-${j}` })
      }
      const meta = await producer.send({ topic: args.topic, acks: -1, messages })
      for (const m of meta) {
        if (m.errorCode !== 0) throw new Error(`produce error code ${m.errorCode} on partition ${m.partition}`)
      }
      result.produced += messages.length
    }
  } finally {
    await producer.disconnect()
  }
  log(`produced ${result.produced}`)

  // 3. Consume everything in the group, commit explicitly, disconnect.
  const seen = new Map()
  const next = new Map() // partition -> next offset to commit
  const first = kafka.consumer({ groupId: args.group })
  await first.connect()
  await first.subscribe({ topic: args.topic, fromBeginning: true })
  await first.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const v = message.value.toString()
      seen.set(v, (seen.get(v) || 0) + 1)
      next.set(partition, (BigInt(message.offset) + 1n).toString())
    }
  })
  try {
    await waitFor(() => seen.size >= args.count, args.timeout * 1000, `${args.count} records`)
  } catch (e) {
    log(e.message)
  }
  await first.commitOffsets([...next].map(([partition, offset]) => ({ topic: args.topic, partition, offset })))
  await first.disconnect()
  tally(result, seen, args.count)
  log(`consumed ${result.consumed} distinct, ${result.duplicates} duplicates`)

  // 4. A second member of the same group must see nothing already committed.
  let n = 0
  let assigned = 0
  const second = kafka.consumer({ groupId: args.group })
  second.on(second.events.GROUP_JOIN, (e) => {
    const parts = Object.values(e.payload.memberAssignment || {}).reduce((s, p) => s + p.length, 0)
    if (parts > 0) assigned = Date.now()
  })
  await second.connect()
  await second.subscribe({ topic: args.topic, fromBeginning: true })
  await second.run({ autoCommit: false, eachMessage: async () => { n++ } })
  try {
    await waitFor(() => assigned > 0, args.timeout * 1000, 'second member assignment')
    await sleep(args.secondPoll * 1000)
  } finally {
    await second.disconnect()
  }
  result.second_member_records = n
}

function main () {
  const args = parseArgs(process.argv, 'kafkajs_client.js')
  const result = newResult('kafkajs', kafkajsVersion, `kafkajs ${kafkajsVersion} (npm, package-lock.json), node ${process.version}`)
  return finish(result, args.count, () => run(args, result))
}

main()
