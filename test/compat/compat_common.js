// What the Node.js compatibility clients share, as compat_common.py does
// for the Python ones: the flags, bounded waits, the tally of what a
// consumer received, and the one verdict every client is held to.
'use strict'

// parseArgs reads the suite's flags (test/compat/README.md); --no-create
// and --keep-going are for the legacy clients.
function parseArgs (argv, script) {
  const a = { count: 1000, timeout: 60, secondPoll: 5, noCreate: false, keepGoing: false, debug: false }
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i]
    const v = argv[i + 1]
    switch (k) {
      case '--bootstrap': a.bootstrap = v; i++; break
      case '--topic': a.topic = v; i++; break
      case '--group': a.group = v; i++; break
      case '--count': a.count = parseInt(v, 10); i++; break
      case '--timeout': a.timeout = parseFloat(v); i++; break
      case '--second-poll': a.secondPoll = parseFloat(v); i++; break
      case '--no-create': a.noCreate = true; break
      case '--keep-going': a.keepGoing = true; break
      case '--debug': a.debug = true; break
      default:
        process.stderr.write(`${script}: unknown argument ${k}\n`)
        process.exit(2)
    }
  }
  if (!a.bootstrap || !a.topic || !a.group) {
    process.stderr.write(`usage: ${script} --bootstrap HOST:PORT --topic T --group G [--count N]\n`)
    process.exit(2)
  }
  return a
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// waitFor resolves when cond() is true, and rejects after ms.
async function waitFor (cond, ms, what) {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

// stepper returns step(what, fn): it runs fn, bounded by --timeout plus
// 5 s; a failure is thrown on, or with --keep-going logged and kept as the
// result's first error while the next step runs.
function stepper (args, result, log) {
  const ms = args.timeout * 1000 + 5000
  return async (what, fn) => {
    let timer
    const timeout = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000}s`)), ms)
    })
    try {
      await Promise.race([fn(), timeout])
    } catch (e) {
      log(`${what}: ${e.message}`)
      if (!args.keepGoing) throw e
      result.error = result.error || `${what}: ${e.message}`
    } finally {
      clearTimeout(timer)
    }
  }
}

// tally sets result's counts from seen (value -> times received) against
// the values "rec-<i>", i < count, that were produced.
function tally (result, seen, count) {
  result.consumed = seen.size
  for (const n of seen.values()) result.duplicates += n - 1
  let missing = 0
  for (let i = 0; i < count; i++) if (!seen.has(`rec-${i}`)) missing++
  const unexpected = [...seen.keys()].filter((v) => !/^rec-\d+$/.test(v) || parseInt(v.slice(4), 10) >= count).length
  if (missing || unexpected) Object.assign(result, { missing, unexpected })
}

// finish runs the scenario, prints the one-line JSON verdict and exits 0
// only on exact counts, no duplicate, nothing for the second member.
async function finish (result, count, run) {
  try {
    await run()
  } catch (e) {
    result.error = `${e.name}: ${e.message}`
  }
  result.ok = !result.error &&
    result.produced === count &&
    result.consumed === count &&
    result.duplicates === 0 &&
    result.second_member_records === 0
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(result.ok ? 0 : 1)
}

// newResult is the result line before the run.
function newResult (client, version, pkg) {
  return { client, version, package: pkg, produced: 0, consumed: 0, duplicates: 0, second_member_records: -1, ok: false }
}

module.exports = { parseArgs, sleep, waitFor, stepper, tally, finish, newResult }
