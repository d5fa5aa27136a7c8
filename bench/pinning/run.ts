/**
 * `npm run bench:pinning [-- --quick] [-- --json] [-- --cpu-prof-dir DIR]`: pinning and
 * serving a UnixFS DAG, the worker against Helia (issue 21 item 3).
 *
 * One worker, in its own process on Postgres, and Helia nodes (helia's createHeliaLight with
 * @helia/bitswap, blockstore-fs, js-libp2p TCP + Noise + Yamux), all on loopback. The origin
 * and the Helia node compared with the worker run in processes of their own (helia-node.ts),
 * as the worker does; the clients of step 2 run in this one, the same for both servers.
 *
 * 1. Pin: an origin Helia node holds a fresh random UnixFS file (100 MiB; 16 MiB with
 *    --quick). A second Helia node fetches the whole DAG from it, walking it with the pin
 *    walk's own concurrency model (pinning/dag-walk.ts, PHAROS_PIN_FETCH_CONCURRENCY blocks
 *    in flight), from dialling the origin to the last block stored. Then the worker pins the
 *    same DAG from the same origin through the Pinning Service API, from POST /pins to the
 *    status `pinned`.
 * 2. Serve over Bitswap: a fresh Helia client fetches the whole DAG from the worker (its
 *    only connection), the same walk; another fresh client from the Helia node of step 1.
 * 3. Serve as CAR: the worker is restarted on the same database (so the memory the Bitswap
 *    phases left in the process does not hide the CAR streams' own), then 4 clients at once
 *    GET /ipfs/<cid>?format=car; its RSS (/proc/<pid>/status) is sampled every 20 ms.
 *
 * With --cpu-prof-dir the worker runs under `node --cpu-prof`; its profile and the window of
 * each phase (windows.json) are written there when it stops, for
 * `node bench/admission/profile-summary.ts DIR`.
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { CID } from 'multiformats/cid'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { httpClient } from '../../services/beacon/test/helpers/storage.ts'
import { spawnWorker, workerEnv } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'
import { exitWithUsageOnHelp, figure, printResult } from '../contract.ts'
import { fetchDag, heliaNode, WALK_CONCURRENCY } from './helia.ts'
import type { Fetched } from './helia.ts'

exitWithUsageOnHelp('node bench/pinning/run.ts [--quick] [--json] [--cpu-prof-dir DIR]')
const { values: flags } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, 'cpu-prof-dir': { type: 'string' } }
})

const MiB = 1024 * 1024
const MB = 1_000_000
const DAG_BYTES = (flags.quick ? 16 : 100) * MiB
const CAR_CLIENTS = 4
/** Rounds of each comparison, each on a DAG of its own, the sides' order alternating. */
const ROUNDS = 2
const RSS_SAMPLE_MS = 20
/** How long the fresh worker of the CAR phase idles before its RSS at rest is read (guess: past its start-up work). */
const CAR_SETTLE_MS = 2000
const TOKEN = 'bench-pinning-token-0123456789'
const log = (line: string): void => { process.stderr.write(`pinning: ${line}\n`) }
/** The clock V8's profiler stamps samples with, in µs. */
const monotonicMicros = (): number => Number(process.hrtime.bigint() / 1000n)
/** With --cpu-prof-dir: each phase's window in the worker's profile (bench/admission/profile-summary.ts). */
const profileWindows: Array<{ label: string, pid: number, fromMicros: number, toMicros: number }> = []

/** Runs `work` as a phase named `label`, its window recorded for the worker's profile. */
async function phase<T> (label: string, pid: number, work: () => Promise<T>): Promise<T> {
  const fromMicros = monotonicMicros()
  try {
    return await work()
  } finally {
    profileWindows.push({ label, pid, fromMicros, toMicros: monotonicMicros() })
  }
}

/** A Helia node in its own process (helia-node.ts), as the worker is in its own. */
interface HeliaProcess {
  multiaddrs: string[]
  add: (bytes: number) => Promise<CID>
  fetch: (from: string[], cid: CID) => Promise<Fetched>
  stop: () => Promise<void>
}

async function heliaProcess (): Promise<HeliaProcess> {
  const child: ChildProcess = fork(fileURLToPath(new URL('./helia-node.ts', import.meta.url)), {
    execArgv: ['--disable-warning=ExperimentalWarning'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  const next = async <T>(type: string): Promise<T> => await new Promise<T>((resolve, reject) => {
    const onMessage = (message: { type: string, message?: string }): void => {
      if (message.type !== type && message.type !== 'error') return
      child.off('message', onMessage)
      child.off('exit', onExit)
      if (message.type === 'error') reject(new Error(`the Helia process failed: ${message.message ?? ''}`))
      else resolve(message as T)
    }
    const onExit = (code: number | null): void => { child.off('message', onMessage); reject(new Error(`the Helia process exited with ${code}`)) }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
  const { multiaddrs } = await next<{ multiaddrs: string[] }>('ready')
  return {
    multiaddrs,
    add: async (bytes) => {
      const added = next<{ cid: string }>('added')
      child.send({ type: 'add', bytes })
      return CID.parse((await added).cid)
    },
    fetch: async (from, cid) => {
      const fetched = next<Fetched>('fetched')
      child.send({ type: 'fetch', from, cid: cid.toString() })
      return await fetched
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.send({ type: 'stop' })
      const killer = setTimeout(() => { child.kill('SIGKILL') }, 10_000)
      await exited
      clearTimeout(killer)
    }
  }
}

async function rssBytes (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = /VmRSS:\s+(\d+) kB/.exec(status)?.[1]
  if (kib === undefined) throw new Error(`no VmRSS for process ${pid}`)
  return Number(kib) * 1024
}

/** Samples `pid`'s RSS every RSS_SAMPLE_MS while `work` runs; the largest sample. */
async function peakRssDuring<T> (pid: number, work: () => Promise<T>): Promise<{ result: T, peak: number, samples: number }> {
  let peak = await rssBytes(pid)
  let samples = 1
  let running = true
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, await rssBytes(pid))
      samples++
      await new Promise((resolve) => setTimeout(resolve, RSS_SAMPLE_MS))
    }
  })()
  try {
    return { result: await work(), peak, samples }
  } finally {
    running = false
    await sampler
  }
}

/** Waits for the worker's log line that pin `id` settled; the job's own time (claim to settled) it logs. */
async function settledJobMs (worker: WorkerProcess, id: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (let seen = 0; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 5))) {
    for (; seen < worker.lines.length; seen++) {
      const line = worker.lines[seen] ?? ''
      if (!line.includes(id)) continue
      const record = JSON.parse(line) as { msg?: string, ms?: number, reason?: string }
      if (record.msg === 'pinned') return record.ms ?? Number.NaN
      if (record.msg === 'pin failed' || record.msg === 'pin attempt failed') throw new Error(`the worker failed the pin: ${line}`)
    }
  }
  throw new Error(`pin ${id} did not settle within ${timeoutMs} ms`)
}

function pidOf (process: WorkerProcess): number {
  const pid = process.child.pid
  if (pid === undefined) throw new Error('the worker has no pid')
  return pid
}

async function stopProcess (worker: WorkerProcess): Promise<void> {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) return
  worker.child.kill('SIGTERM')
  const killer = setTimeout(() => { worker.child.kill('SIGKILL') }, 30_000)
  await worker.exited
  clearTimeout(killer)
}

const profileDir = flags['cpu-prof-dir'] === undefined ? undefined : resolve(flags['cpu-prof-dir'])
if (profileDir !== undefined) await mkdir(profileDir, { recursive: true })

const env = await workerEnv({
  DATABASE_URL: await createTestDatabase('bench_pinning'),
  PHAROS_PIN_TOKENS: `bench:${TOKEN}`,
  PHAROS_PIN_POLL_INTERVAL_MS: '100',
  PHAROS_GC_INTERVAL_MS: '0',
  ...(profileDir === undefined ? {} : { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` })
})
let worker = await spawnWorker(env)
const workerPid = pidOf(worker)
const origin = await heliaProcess()
const heliaReceiver = await heliaProcess()

/** Pins `cid` through the worker's Pinning Service API; seconds from POST to settled, and the job's own ms. */
async function workerPin (call: ReturnType<typeof httpClient>, pid: number, cid: CID, origins: string[]): Promise<{ seconds: number, jobMs: number }> {
  const started = performance.now()
  const jobMs = await phase('worker: pin', pid, async () => {
    const added = await call('POST', '/pins', { cid: cid.toString(), origins })
    if (added.status !== 202) throw new Error(`POST /pins answered ${added.status}: ${JSON.stringify(added.body)}`)
    const id = added.body.requestid as string
    // The runner's log line says when the job settled (after its status was written): watched
    // on the worker's stdout rather than by polling GET /pins, whose requests would take the
    // worker's CPU from the pin being measured.
    const ms = await settledJobMs(worker, id, 600_000)
    const { body } = await call('GET', `/pins/${id}`)
    if (body.status !== 'pinned') throw new Error(`the worker did not pin it: ${JSON.stringify(body)}`)
    return ms
  })
  return { seconds: (performance.now() - started) / 1000, jobMs }
}

/** A fresh Helia client in this process fetches `cid` from `server` alone, then stops. */
async function freshClientFetch (server: string[], cid: CID): Promise<Fetched> {
  const client = await heliaNode()
  try {
    return await fetchDag(client, server, cid)
  } finally {
    await client.stop()
  }
}

try {
  // One DAG per round; the rounds take the two sides in turn (Helia first, then the worker
  // first), so a change in the shared machine's load falls on both alike.
  const dags: CID[] = []
  for (let round = 0; round < ROUNDS; round++) dags.push(await origin.add(DAG_BYTES))
  log(`the origin holds ${ROUNDS} × ${DAG_BYTES / MiB} MiB`)
  const call = httpClient(worker.httpUrl, TOKEN)
  const pins = { helia: 0, worker: 0, jobMs: [] as number[] }
  const serving = { helia: 0, worker: 0 }
  let dagBytes = 0
  let dagBlocks = 0

  // 1. Pin: Helia to Helia, and the worker through the Pinning Service API.
  for (const [round, cid] of dags.entries()) {
    const sides = [
      async () => {
        const fetched = await heliaReceiver.fetch(origin.multiaddrs, cid)
        pins.helia += fetched.seconds
        dagBytes = fetched.bytes
        dagBlocks = fetched.blocks
        log(`round ${round + 1}: Helia fetched ${fetched.blocks} blocks in ${fetched.seconds.toFixed(2)} s`)
      },
      async () => {
        const pinned = await workerPin(call, workerPid, cid, origin.multiaddrs)
        pins.worker += pinned.seconds
        pins.jobMs.push(pinned.jobMs)
        log(`round ${round + 1}: the worker pinned it in ${pinned.seconds.toFixed(2)} s (the job itself: ${pinned.jobMs} ms)`)
      }
    ]
    for (const side of round % 2 === 0 ? sides : sides.reverse()) await side()
  }

  // 2. Serve over Bitswap: a fresh client from each, the same DAG.
  for (const [round, cid] of dags.entries()) {
    const sides = [
      async () => {
        const fetched = await phase('worker: Bitswap serving', workerPid, async () => await freshClientFetch(worker.multiaddrs, cid))
        if (fetched.bytes !== dagBytes) throw new Error('the worker served a different DAG')
        serving.worker += fetched.seconds
        log(`round ${round + 1}: a client fetched the DAG from the worker in ${fetched.seconds.toFixed(2)} s`)
      },
      async () => {
        const fetched = await freshClientFetch(heliaReceiver.multiaddrs, cid)
        if (fetched.bytes !== dagBytes) throw new Error('Helia served a different DAG')
        serving.helia += fetched.seconds
        log(`round ${round + 1}: a client fetched the DAG from Helia in ${fetched.seconds.toFixed(2)} s`)
      }
    ]
    for (const side of round % 2 === 0 ? sides : sides.reverse()) await side()
  }
  const cid = dags[0]
  if (cid === undefined) throw new Error('no DAG')

  // 3. Serve as CAR to 4 clients at once, sampling the worker's RSS. A fresh worker on the
  // same database: the memory the Bitswap phases left in the process (freed, not given back)
  // would otherwise be reused by the CAR streams and hide their own growth.
  await stopProcess(worker)
  worker = await spawnWorker(env)
  const carPid = pidOf(worker)
  await new Promise((resolve) => setTimeout(resolve, CAR_SETTLE_MS))
  const restingRss = await rssBytes(carPid)
  const carStarted = performance.now()
  const car = await phase('worker: 4 CARs', carPid, async () => await peakRssDuring(carPid, async () => await Promise.all(Array.from({ length: CAR_CLIENTS }, async () => {
    const response = await fetch(new URL(`/ipfs/${cid.toString()}?format=car`, worker.httpUrl))
    if (response.status !== 200 || response.body === null) throw new Error(`GET /ipfs/…?format=car answered ${response.status}: ${await response.text()}`)
    let length = 0
    for await (const chunk of response.body) length += chunk.byteLength
    return length
  }))))
  const carSeconds = (performance.now() - carStarted) / 1000
  const carBytes = car.result.reduce((sum, length) => sum + length, 0)
  if (car.result.some((length) => length < dagBytes)) throw new Error(`a CAR was short: ${car.result.join(', ')} bytes, the DAG holds ${dagBytes}`)
  const growth = car.peak - restingRss
  log(`4 CARs (${(carBytes / MiB).toFixed(0)} MiB) in ${carSeconds.toFixed(2)} s; RSS ${(restingRss / MiB).toFixed(0)} → peak ${(car.peak / MiB).toFixed(0)} MiB over ${car.samples} samples`)

  const dagMiB = `${DAG_BYTES / MiB} MiB`
  const mbps = (bytes: number, seconds: number): number => bytes / MB / seconds
  const result = {
    name: 'pinning',
    figures: [
      figure(`pin a ${dagMiB} UnixFS DAG from a loopback Helia peer (worker on Postgres, POST /pins → pinned)`, mbps(ROUNDS * dagBytes, pins.worker), 'MB/s',
        { label: `Helia (blockstore-fs) fetching the same DAG from the same peer, ${WALK_CONCURRENCY} blocks in flight`, value: mbps(ROUNDS * dagBytes, pins.helia) }, 'higher'),
      figure(`serve the pinned ${dagMiB} DAG over Bitswap to a fresh Helia client (worker on Postgres)`, mbps(ROUNDS * dagBytes, serving.worker), 'MB/s',
        { label: 'Helia serving the same DAG from blockstore-fs to a fresh Helia client', value: mbps(ROUNDS * dagBytes, serving.helia) }, 'higher'),
      figure(`worker RSS growth while streaming the ${dagMiB} DAG as CAR to ${CAR_CLIENTS} clients at once`, growth / MiB, 'MiB',
        { label: `bytes the ${CAR_CLIENTS} clients received`, value: carBytes / MiB }, 'lower')
    ],
    notes: [
      `A ${dagMiB} random file in a UnixFS DAG (@helia/unixfs defaults: 1 MiB raw leaves), ${dagBlocks} blocks, ${dagBytes} bytes. Every Helia node: createHeliaLight + @helia/bitswap, blockstore-fs, js-libp2p TCP + Noise + Yamux on loopback. The worker runs in its own process (main.ts) on Postgres, with its default config.`,
      `${ROUNDS} rounds, each on a DAG of its own, the order of the sides alternating. Pin: Helia ${pins.helia.toFixed(2)} s in all (dial to last block, timed in its process), worker ${pins.worker.toFixed(2)} s (POST /pins to the runner's log line that the pin settled as pinned, watched on its stdout; the jobs themselves, claim to settled, ${pins.jobMs.join(' and ')} ms). Target (issue 21): ≥ 0.5 of Helia.`,
      `Bitswap serving: a fresh Helia client, connected to the server alone, walks the DAG with ${WALK_CONCURRENCY} blocks in flight: from the worker ${serving.worker.toFixed(2)} s in all, from Helia ${serving.helia.toFixed(2)} s. Target: ≥ 0.5 of Helia.`,
      `CAR: ${CAR_CLIENTS} GET /ipfs/<cid>?format=car at once, ${(carBytes / MiB).toFixed(0)} MiB in ${carSeconds.toFixed(2)} s (${mbps(carBytes, carSeconds).toFixed(0)} MB/s in all); a fresh worker on the same database (restarted after the Bitswap phases, idle ${CAR_SETTLE_MS / 1000} s first), its RSS at rest ${(restingRss / MiB).toFixed(0)} MiB, peak ${(car.peak / MiB).toFixed(0)} MiB (${car.samples} samples, every ${RSS_SAMPLE_MS} ms). Target: growth < 64 MiB; the ratio is the share of the bytes served that the growth amounts to.`
    ]
  }
  if (flags.json) printResult(result)
  else {
    for (const item of result.figures) console.log(`- ${item.label}: ${item.value.toFixed(1)} ${item.unit} (${item.baseline.label}: ${item.baseline.value.toFixed(1)}; ratio ${item.ratio.toFixed(3)})`)
    for (const note of result.notes) console.log(`- ${note}`)
  }
} finally {
  await heliaReceiver.stop()
  await origin.stop()
  await stopProcess(worker)
  if (profileDir !== undefined) {
    await writeFile(join(profileDir, 'windows.json'), JSON.stringify(profileWindows, null, 2))
    log(`worker profile and windows.json in ${profileDir}: node bench/admission/profile-summary.ts ${profileDir}`)
  }
}
