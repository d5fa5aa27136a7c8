/**
 * Admission benchmark (issue 19): `node bench/admission/run.ts [--quick] [--json]
 * [--cpu-prof-dir <dir>] [--perf-dir <dir>] [--accepts-only] [--flood-rate <per second>] [--flood-sources N]
 * [--accepts N] [--warmup N]`.
 *
 * One real Pharos worker (main.ts, embedded PGlite, its defaults, pinned to CPU 1) and, in
 * one run:
 *
 * 1. **idle**: the canary (a registered peer pinging the worker over its established
 *    connection), the honest peer (a registered peer dialling again and again from its own
 *    127.x address) and a /healthz poller run against the quiet worker: the baseline;
 * 2. **pending-slot attack**: 300 raw sockets from 30 source addresses (10 each, each source
 *    in its own /24, each opening at most 4 a second, under the worker's per-IP rate of 5)
 *    send 3 bytes of multistream-select's header and then one byte a second (half) or
 *    nothing (half), and reopen when closed; the same probes run;
 * 3. **handshake flood**: raw connections that complete a libp2p Noise handshake with a
 *    fresh Ed25519 identity each (not registered) and hang up before any muxer, 1000 a second
 *    offered from 250 source addresses (each under the per-IP rate); the same probes run;
 * 4. **CPU per accept**: with nothing else running, a paced stream of registered peers'
 *    connections (each a fresh node from its own address, held), the worker's CPU time from
 *    /proc less its idle rate, ÷ the connections accepted; then the same stream against a
 *    bare js-libp2p node (bare-node.ts: TCP, Noise, Yamux, nothing else), pinned the same.
 *
 * The generators run on CPU 0 at nice 10 (the probes at nice -5 where allowed), so the
 * worker's figures are its own and the probes are not starved by the attack they measure;
 * the notes say how long the worker waited for its core, and how much of its core its own
 * helper threads took, per phase. Event-loop delay is
 * read from the worker's /metrics, scraped only at phase boundaries. `--cpu-prof-dir`
 * profiles the worker and the bare node (node --cpu-prof) and writes the window (monotonic
 * clock, µs) of each phase, accept stream and settling period to `<dir>/windows.json` for
 * profile-summary.ts;
 * `--perf-dir` records each accept stream with Linux `perf` (kernel, native code and other
 * threads too, which --cpu-prof does not see); `--accepts-only` runs step 4 alone. docs/benchmarks.md, "Admission", has the figures.
 */
import { fork, spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, setPriority } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { distribution, quantile, round } from '../../loadtest/swarm/report.ts'
import { spawnWorker, workerEnv } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'
import { exitWithUsageOnHelp, figure, printResult } from '../contract.ts'
import type { BenchFigure } from '../contract.ts'
import { cpuSplitBetween, cpuSplitOf, longestFailureRun, loopOverPhase, runQueueWaitSecondsOf, scrapeMetrics, tally } from './measures.ts'
import type { CpuSplit, LoopOverPhase, MetricsSnapshot } from './measures.ts'
import { PING_TIMEOUT_MS } from './protocol.ts'
import type { DialEvent, DialRun, FloodEvent, FloodRun, ProbeEvent, SlotAttackEvent, SlotAttackStats } from './protocol.ts'

exitWithUsageOnHelp('npm run bench:admission [-- --quick] [-- --json] [-- --cpu-prof-dir <dir>] [-- --perf-dir <dir>] [-- --accepts-only] [-- --flood-rate <per second>] [-- --flood-sources N] [-- --accepts N] [-- --warmup N]')
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'cpu-prof-dir': { type: 'string' },
    'perf-dir': { type: 'string' },
    'accepts-only': { type: 'boolean', default: false },
    'flood-rate': { type: 'string' },
    'flood-sources': { type: 'string' },
    accepts: { type: 'string' },
    warmup: { type: 'string' }
  }
})
const QUICK = values.quick
const SIZE = {
  idleS: QUICK ? 10 : 40,
  attackS: QUICK ? 15 : 90,
  floodS: QUICK ? 10 : 60,
  accepts: Number(values.accepts ?? (QUICK ? 200 : 1000)),
  /** Accepts before the measured ones, unmeasured: the target's code is compiled and optimised (guess). */
  warmupAccepts: Number(values.warmup ?? (QUICK ? 500 : 1500))
}
/** Not measured: the attack's sockets take their slots, the flood reaches its rate. */
const RAMP_S = 3
/** Between the attack and the flood, for slots to drain. */
const RECOVERY_S = QUICK ? 3 : 5
const ATTACK = { sources: 30, socketsPerSource: 10, firstBytes: 3, trickleIntervalMs: 1000 }
/** The worker's default per-IP inbound rate is 5/s (PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND): each source stays one under. */
const OPENS_PER_SOURCE_PER_SECOND = 4
/**
 * The handshake flood's offered rate, and its sources. The issue saw 45/s from 50 sources
 * stall a worker that shared its cores; on a core of its own 45/s is 12 % of that core
 * (event-loop p99 5.6 ms against 3.5 idle), and even 150/s of libp2p nodes (all one
 * generator core can open) left its loop p99 under 5 ms. An attacker needs no libp2p node:
 * flood-child.ts does only the handshake, and 1000/s is about what a worker's core can take
 * on the development VM (it completed 956/s at 100 % of its core when offered 1500/s), so
 * the flood measures a worker at the end of its CPU — what CPU admission is for. Sources:
 * enough to keep each under the per-IP rate (4/s each). `--flood-rate 45 --flood-sources 50`
 * runs the flood.
 */
const FLOOD_RATE = Number(values['flood-rate'] ?? '1000')
const FLOOD = { perSecond: FLOOD_RATE, sources: Number(values['flood-sources'] ?? Math.max(50, Math.ceil(FLOOD_RATE / OPENS_PER_SOURCE_PER_SECOND))), concurrency: 512 }
/** Before each target's accept stream, unmeasured: a handshake flood this long at this rate (guess: enough for V8 to optimise the handshake)… */
const WARMUP_FLOOD = { seconds: QUICK ? 3 : 10, perSecond: 500 }
/** …then a stream of full accepts: the measured stream's rate (a fifth of a core at ~4 ms each), and the warm-up's (what one generator core opens). */
const ACCEPT_STREAM = { perSecond: 50, warmupPerSecond: 150, concurrency: 64 }
const PROBES = { pingIntervalMs: 100, dialIntervalMs: 1000, healthzIntervalMs: 250 }
/** Before each accept stream, the target's idle CPU rate: the median of this many one-second windows… */
const IDLE_WINDOWS = 5
/** …once one has used under this share of a core (guess: an idle worker uses 1–3 %)… */
const IDLE_SETTLED_SHARE = 0.05
/** …or this many seconds have passed (after a flood a worker is busy for 15 s and more). */
const IDLE_SETTLE_MAX_S = 30
/** After the last accept: the worker's identify exchange and bookkeeping of the last connections finish. */
const ACCEPT_SETTLE_MS = 2000
const WORKER_CPU = '1'
const GENERATOR_CPU = '0'
const GENERATOR_NICE = 10
/**
 * The probes run above normal priority where allowed (CAP_SYS_NICE), so that the machine's
 * other work delays the canary's and the honest peer's own event loop less; they use little
 * CPU. Where not allowed they run at 0, and say so.
 */
const PROBE_NICE = -5
const ACCOUNT_REGISTRATIONS_IN_FLIGHT = 16

const log = (message: string): void => { process.stderr.write(`[admission] ${message}\n`) }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const monotonicMicros = (): number => Number(process.hrtime.bigint() / 1000n)
const notes: string[] = []
/** With --cpu-prof-dir: the windows profile-summary.ts cuts the profiles into (monotonic µs). */
interface ProfileWindow { label: string, pid: number, fromMicros: number, toMicros: number }
const profileWindows: ProfileWindow[] = []

/** Pins `pid` and all its threads to `cpuList` (taskset); false where that is not possible. */
function pin (pid: number, cpuList: string): boolean {
  if (cpus().length < 2) return false
  const result = spawnSync('taskset', ['-a', '-cp', cpuList, String(pid)], { stdio: 'ignore' })
  return result.status === 0
}

function forkChild (file: string, options: { nice?: number, execArgv?: string[] } = {}): ChildProcess {
  const child = fork(fileURLToPath(new URL(file, import.meta.url)), {
    execArgv: ['--disable-warning=ExperimentalWarning', ...(options.execArgv ?? [])],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
  if (options.nice !== undefined && child.pid !== undefined) {
    try {
      setPriority(child.pid, options.nice)
    } catch {
      notes.push(`${file} could not be given nice ${options.nice} (not permitted): it runs at 0.`)
    }
  }
  return child
}

/** The next message from `child` that `accept` returns a value for. */
async function nextMessage<M extends { type: string }, T> (child: ChildProcess, accept: (message: M) => T | undefined, timeoutMs = 120_000): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`no answer from ${child.spawnfile} within ${timeoutMs} ms`)) }, timeoutMs)
    const onMessage = (message: M): void => {
      const value = accept(message)
      if (value !== undefined) { cleanup(); resolve(value) }
    }
    const onExit = (code: number | null): void => { cleanup(); reject(new Error(`${child.spawnfile} exited with ${code}`)) }
    const cleanup = (): void => { clearTimeout(timer); child.off('message', onMessage); child.off('exit', onExit) }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}
const readyOf = async (child: ChildProcess): Promise<void> => { await nextMessage(child, (message: { type: string }) => message.type === 'ready' ? true : undefined, 60_000) }

async function registerAccount (httpUrl: string, token: string, peerId: string): Promise<void> {
  const response = await fetch(new URL('/v1/accounts', httpUrl), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ peerId, label: 'bench-admission' }),
    signal: AbortSignal.timeout(30_000)
  })
  if (response.status !== 200 && response.status !== 201) throw new Error(`POST /v1/accounts answered ${response.status}: ${await response.text()}`)
}

async function registerAll (httpUrl: string, token: string, peerIds: readonly string[]): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: ACCOUNT_REGISTRATIONS_IN_FLIGHT }, async () => {
    while (next < peerIds.length) await registerAccount(httpUrl, token, peerIds[next++] ?? '')
  }))
}

/** The i-th accept-stream connection's source: its own address, in its own /24 for the first 250. */
const acceptSource = (i: number): string => `127.30.${1 + (i % 250)}.${1 + Math.floor(i / 250)}`

interface AcceptCost {
  accepted: number
  failed: string
  msPerAccept: number
  split: CpuSplit
  idleCpuPercent: number
  seconds: number
  skipped: number
  /** The share of the stream the target's main thread waited for its CPU. */
  waitedShare: number
}

/** Dials one held connection per key at the stream's rate, from acceptSource(offset + i); resolves when all have opened or failed. */
async function holdStream (dialer: ChildProcess, target: string, keys: readonly string[], offset: number, perSecond = ACCEPT_STREAM.perSecond): Promise<{ outcomes: Array<Extract<DialEvent, { type: 'dialled' }>>, done: Extract<DialEvent, { type: 'run-done' }> }> {
  const outcomes: Array<Extract<DialEvent, { type: 'dialled' }>> = []
  const onMessage = (message: DialEvent): void => { if (message.type === 'dialled') outcomes.push(message) }
  dialer.on('message', onMessage)
  const run: DialRun = {
    type: 'run',
    target,
    ratePerSecond: perSecond,
    sources: keys.map((_, i) => acceptSource(offset + i)),
    count: keys.length,
    durationMs: keys.length / perSecond * 1000 + 60_000,
    concurrency: ACCEPT_STREAM.concurrency,
    keys: [...keys]
  }
  dialer.send(run)
  try {
    const done = await nextMessage(dialer, (message: DialEvent) => message.type === 'run-done' ? message : undefined, run.durationMs + 30_000)
    return { outcomes, done }
  } finally {
    dialer.off('message', onMessage)
  }
}

async function release (dialer: ChildProcess): Promise<void> {
  dialer.send({ type: 'release' })
  await nextMessage(dialer, (message: DialEvent) => message.type === 'released' ? true : undefined)
}

/**
 * The CPU a process uses per second while nothing is asked of it, by part (CpuSplit): once
 * a one-second window has used under IDLE_SETTLED_SHARE of a core (the work left from the
 * phase before is done; at most IDLE_SETTLE_MAX_S), the median of IDLE_WINDOWS one-second
 * windows, so one periodic task (a registry refresh, a collection) is not taken for the rate.
 */
async function idleRate (pid: number): Promise<CpuSplit> {
  const window = async (): Promise<CpuSplit> => {
    const before = await cpuSplitOf(pid)
    const from = performance.now()
    await sleep(1000)
    const used = cpuSplitBetween(before, await cpuSplitOf(pid))
    const seconds = (performance.now() - from) / 1000
    return { user: used.user / seconds, system: used.system / seconds, mainThread: used.mainThread / seconds, otherThreads: used.otherThreads / seconds }
  }
  for (let i = 0; i < IDLE_SETTLE_MAX_S; i++) {
    const rate = await window()
    if (rate.user + rate.system < IDLE_SETTLED_SHARE) break
  }
  const windows: CpuSplit[] = []
  for (let i = 0; i < IDLE_WINDOWS; i++) windows.push(await window())
  const median = (part: keyof CpuSplit): number => quantile(windows.map((rate) => rate[part]), 0.5)
  return { user: median('user'), system: median('system'), mainThread: median('mainThread'), otherThreads: median('otherThreads') }
}

/**
 * CPU per accepted connection of process `pid` listening on `target`: after a warm-up
 * stream (unmeasured, released), its idle CPU rate, then a paced stream of held
 * connections: its CPU from the stream's start until ACCEPT_SETTLE_MS after the last was
 * upgraded, less the idle rate over that time, ÷ the connections accepted.
 */
async function acceptCost (label: string, pid: number, target: string, { dialer, flooder }: { dialer: ChildProcess, flooder: ChildProcess }, keys: { warmup: readonly string[], measured: readonly string[] }): Promise<AcceptCost> {
  const settleFrom = monotonicMicros()
  // Warm-up: the same for every target (the worker has had the attacks too). Handshakes
  // first, as many as a flood brings, then full accepts, which run the rest of the path.
  const port = Number(/\/tcp\/(\d+)/.exec(target)?.[1])
  flooder.send({
    type: 'run',
    host: '127.0.0.1',
    port,
    ratePerSecond: WARMUP_FLOOD.perSecond,
    sources: Array.from({ length: Math.ceil(WARMUP_FLOOD.perSecond / OPENS_PER_SOURCE_PER_SECOND) }, (_, k) => `127.21.${1 + (k % 250)}.${1 + Math.floor(k / 250)}`),
    durationMs: WARMUP_FLOOD.seconds * 1000,
    concurrency: FLOOD.concurrency
  } satisfies FloodRun)
  await nextMessage(flooder, (message: FloodEvent) => message.type === 'run-done' ? message : undefined, WARMUP_FLOOD.seconds * 1000 + 60_000)
  await holdStream(dialer, target, keys.warmup, keys.measured.length, ACCEPT_STREAM.warmupPerSecond)
  await release(dialer)
  const idle = await idleRate(pid)
  profileWindows.push({ label: `${label}: warm-up and settling before the accept stream`, pid, fromMicros: settleFrom, toMicros: monotonicMicros() })
  const streamFrom = performance.now()
  const cpuFrom = await cpuSplitOf(pid)
  const waitFrom = await runQueueWaitSecondsOf(pid)
  const windowFrom = monotonicMicros()
  const perf = perfRecord(pid, label)
  const { outcomes, done } = await holdStream(dialer, target, keys.measured, 0)
  await sleep(Math.max(0, done.lastOpenedAt + ACCEPT_SETTLE_MS - Date.now()))
  const streamTo = performance.now()
  const stream = cpuSplitBetween(cpuFrom, await cpuSplitOf(pid))
  const waited = await runQueueWaitSecondsOf(pid) - waitFrom
  if (perf !== undefined) await stopProcess(perf, 'SIGINT', 30_000)
  profileWindows.push({ label: `${label}: accept stream`, pid, fromMicros: windowFrom, toMicros: monotonicMicros() })
  await release(dialer)
  const accepted = outcomes.filter((outcome) => outcome.ok).length
  const seconds = (streamTo - streamFrom) / 1000
  // Each part of the stream's CPU, less what the same part uses at the idle rate, per accept, in ms.
  const perAccept = (part: keyof CpuSplit): number => (stream[part] - idle[part] * seconds) / accepted * 1000
  const cost: AcceptCost = {
    accepted,
    failed: tally(outcomes.map((outcome) => outcome.reason)),
    msPerAccept: perAccept('user') + perAccept('system'),
    split: { user: perAccept('user'), system: perAccept('system'), mainThread: perAccept('mainThread'), otherThreads: perAccept('otherThreads') },
    idleCpuPercent: 100 * (idle.user + idle.system),
    seconds,
    skipped: done.skipped,
    waitedShare: waited / ((performance.now() - streamFrom) / 1000)
  }
  log(`${label}: ${accepted} accepts in ${round(seconds, 1)} s, ${round(cost.msPerAccept, 2)} ms CPU each (${describeSplit(cost)}; idle ${round(cost.idleCpuPercent, 1)} % of a core; failed: ${cost.failed})`)
  return cost
}

const describeSplit = (cost: AcceptCost): string => `user ${round(cost.split.user, 2)} + system ${round(cost.split.system, 2)}; main thread ${round(cost.split.mainThread, 2)}, other threads ${round(cost.split.otherThreads, 2)}`

/**
 * With --perf-dir: `perf record` of `pid` (every thread, kernel and native code included, call
 * graphs) for the accept stream only, into <dir>/<label>.perf.data. The targets run with
 * --perf-basic-prof, so JavaScript frames have names (perf reads /tmp/perf-<pid>.map).
 */
function perfRecord (pid: number, label: string): ChildProcess | undefined {
  const dir = values['perf-dir']
  if (dir === undefined) return undefined
  const output = join(resolve(dir), `${label.replace(/[^a-z0-9]+/gi, '-')}.perf.data`)
  return spawn('perf', ['record', '-F', '999', '-g', '-p', String(pid), '-o', output], { stdio: ['ignore', 'ignore', 'inherit'] })
}

async function bareNode (profileArgs: string[]): Promise<{ child: ChildProcess, target: string }> {
  const child = forkChild('./bare-node.ts', { execArgv: profileArgs })
  const multiaddrs = await nextMessage(child, (message: { type: string, multiaddrs?: string[] }) => message.type === 'ready' ? message.multiaddrs : undefined, 60_000)
  const target = multiaddrs.find((addr) => addr.includes('/tcp/') && !addr.includes('/ws'))
  if (target === undefined) throw new Error('the bare node listens on no TCP address')
  return { child, target }
}

async function stopProcess (child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => { child.once('exit', resolve) })
  child.kill(signal)
  const timer = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
  await exited
  clearTimeout(timer)
}

// Phases: named wall-clock intervals; every probe event carries its start time and falls in one.
interface Phase { name: string, from: number, to: number }
const phases: Phase[] = []
async function phase (name: string, seconds: number): Promise<void> {
  const from = Date.now()
  log(`${name}: ${seconds} s`)
  await sleep(seconds * 1000)
  phases.push({ name, from, to: Date.now() })
}
function inPhase<E extends { at: number }> (events: readonly E[], name: string): E[] {
  const span = phases.find((entry) => entry.name === name)
  if (span === undefined) throw new Error(`no phase ${name}`)
  return events.filter((event) => event.at >= span.from && event.at < span.to)
}

interface ProbesOverPhase {
  pings: number
  pingsLost: string
  pingP99Ms: number
  dials: number
  dialSuccess: number
  /** The attempts it took in the worst case: the longest run of failures, plus the one that got through. */
  worstAttempts: number
  dialFailures: string
  dialMsP50: number
  healthzP99Ms: number
  healthzFailed: number
}

function probesOver (events: readonly ProbeEvent[], name: string): ProbesOverPhase {
  const pings = inPhase(events.filter((event): event is Extract<ProbeEvent, { type: 'ping' }> => event.type === 'ping'), name)
  const dials = inPhase(events.filter((event): event is Extract<ProbeEvent, { type: 'dial' }> => event.type === 'dial'), name)
  const healthz = inPhase(events.filter((event): event is Extract<ProbeEvent, { type: 'healthz' }> => event.type === 'healthz'), name)
  if (pings.length === 0 || dials.length === 0 || healthz.length === 0) throw new Error(`phase ${name}: the probes recorded nothing`)
  return {
    pings: pings.length,
    pingsLost: tally(pings.map((ping) => ping.reason)),
    pingP99Ms: quantile(pings.map((ping) => ping.ms), 0.99),
    dials: dials.length,
    dialSuccess: dials.filter((dial) => dial.ok).length / dials.length,
    worstAttempts: longestFailureRun(dials.map((dial) => dial.ok)) + 1,
    dialFailures: tally(dials.map((dial) => dial.reason)),
    dialMsP50: distribution(dials.filter((dial) => dial.ok).map((dial) => dial.ms)).p50,
    healthzP99Ms: quantile(healthz.map((probe) => probe.ms), 0.99),
    healthzFailed: healthz.filter((probe) => !probe.ok).length
  }
}

const percent = (share: number | undefined): string => share === undefined ? '?' : `${round(100 * share, 1)} %`
const describeRefusals = (loop: LoopOverPhase): string => Object.entries(loop.refusals).map(([series, count]) => `${series} +${count}`).join(', ') || 'none counted'

async function main (): Promise<void> {
  const profileDir = values['cpu-prof-dir'] === undefined ? undefined : resolve(values['cpu-prof-dir'])
  if (profileDir !== undefined) await mkdir(profileDir, { recursive: true })
  if (values['perf-dir'] !== undefined) await mkdir(values['perf-dir'], { recursive: true })
  const profileArgs = [
    ...(profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]),
    ...(values['perf-dir'] === undefined ? [] : ['--perf-basic-prof'])
  ]
  const pinned = pin(process.pid, GENERATOR_CPU)
  notes.push(pinned
    ? `Worker (and bare node) pinned to CPU ${WORKER_CPU}, the bench and its generators to CPU ${GENERATOR_CPU} (taskset), generators at nice ${GENERATOR_NICE}, probes at nice ${PROBE_NICE}; the machine is shared with other work, so figures taken while other engineers' tests run are noisy.`
    : 'Not pinned (fewer than 2 CPUs or no taskset): the worker shares its CPU with the generators, so its figures include their load.')

  const token = `bench-admission-${randomBytes(12).toString('hex')}`
  const canaryKey = await generateKeyPair('Ed25519')
  const honestKey = await generateKeyPair('Ed25519')
  const acceptKeys = await Promise.all(Array.from({ length: SIZE.accepts + SIZE.warmupAccepts }, async () => await generateKeyPair('Ed25519')))
  const hex = (key: Parameters<typeof privateKeyToProtobuf>[0]): string => Buffer.from(privateKeyToProtobuf(key)).toString('hex')
  const streamKeys = { warmup: acceptKeys.slice(SIZE.accepts).map(hex), measured: acceptKeys.slice(0, SIZE.accepts).map(hex) }

  const worker: WorkerProcess = await spawnWorker(await workerEnv({
    PHAROS_ADMIN_TOKENS: token,
    ...(profileArgs.length === 0 ? {} : { NODE_OPTIONS: profileArgs.join(' ') })
  }), [], 60_000)
  const workerPid = worker.child.pid ?? 0
  if (pinned) pin(workerPid, WORKER_CPU)
  const tcpAddr = worker.multiaddrs.find((addr) => addr.includes('/tcp/') && !addr.includes('/ws'))
  if (tcpAddr === undefined) throw new Error('the worker listens on no TCP address')
  const target = tcpAddr.includes('/p2p/') ? tcpAddr : `${tcpAddr}/p2p/${worker.peerId}`
  const port = Number(/\/tcp\/(\d+)/.exec(target)?.[1])
  log(`worker ${worker.peerId} on ${target} (pid ${workerPid})`)
  await registerAll(worker.httpUrl, token, [canaryKey, honestKey, ...acceptKeys].map((key) => peerIdFromPrivateKey(key).toString()))

  const dialer = forkChild('./dial-child.ts', { nice: GENERATOR_NICE })
  const flooder = forkChild('./flood-child.ts', { nice: GENERATOR_NICE })
  const children: ChildProcess[] = [dialer, flooder]
  const figures: BenchFigure[] = []
  try {
    await Promise.all([readyOf(dialer), readyOf(flooder)])
    if (!values['accepts-only']) await attacks(worker, target, port, { canary: hex(canaryKey), honest: hex(honestKey) }, flooder, children, figures)
    // After the attacks, once what they left is done.
    const workerCost = await acceptCost('worker', workerPid, target, { dialer, flooder }, streamKeys)
    await stopProcess(worker.child, profileDir === undefined ? 'SIGKILL' : 'SIGTERM', 30_000)
    const bare = await bareNode(profileArgs)
    children.push(bare.child)
    if (pinned && bare.child.pid !== undefined) pin(bare.child.pid, WORKER_CPU)
    const bareCost = await acceptCost('bare js-libp2p', bare.child.pid ?? 0, bare.target, { dialer, flooder }, streamKeys)
    figures.push(figure(`worker CPU per accepted connection (${workerCost.accepted} accepts at ${ACCEPT_STREAM.perSecond}/s)`, workerCost.msPerAccept, 'ms',
      { label: `bare js-libp2p node, TCP + Noise + Yamux (${bareCost.accepted} accepts)`, value: bareCost.msPerAccept }, 'lower'))
    notes.push(`CPU per accept: after an unmeasured warm-up (a ${WARMUP_FLOOD.seconds} s handshake flood at ${WARMUP_FLOOD.perSecond}/s, then ${SIZE.warmupAccepts} accepts; the worker has also had the attacks), ${SIZE.accepts} registered peers, each a fresh node with its own key and 127.30.x.y address, dialled at ${ACCEPT_STREAM.perSecond}/s and held; the target's CPU (/proc/<pid>/stat, all threads) from the stream's start to ${ACCEPT_SETTLE_MS / 1000} s after the last accept, less its idle rate (the median of ${IDLE_WINDOWS} one-second windows just before, once settled: worker ${round(workerCost.idleCpuPercent, 1)} %, bare ${round(bareCost.idleCpuPercent, 1)} % of a core); failed dials: worker ${workerCost.failed}, bare ${bareCost.failed}. Per accept, ms: worker ${describeSplit(workerCost)}; bare ${describeSplit(bareCost)} (system time includes the kernel's loopback TCP work for the packets the process sends). Main thread waiting for its CPU during the stream: worker ${percent(workerCost.waitedShare)}, bare ${percent(bareCost.waitedShare)}.`)
    if (profileDir !== undefined) {
      await stopProcess(bare.child, 'SIGTERM', 30_000)
      await writeFile(join(profileDir, 'windows.json'), JSON.stringify(profileWindows, null, 2))
      log(`profiles and windows.json in ${profileDir}: node bench/admission/profile-summary.ts ${profileDir}`)
    }
  } finally {
    for (const child of children) child.kill('SIGKILL')
    worker.child.kill('SIGKILL')
  }

  const result = { name: 'admission', figures, notes }
  if (values.json) {
    printResult(result)
  } else {
    process.stdout.write('Admission: under attack vs idle, worker vs bare js-libp2p\n')
    for (const entry of figures) process.stdout.write(`  ${entry.label}: ${round(entry.value, 2)} ${entry.unit} vs ${round(entry.baseline.value, 2)} ${entry.unit} (${entry.baseline.label}), ratio ${round(entry.ratio, 2)}, ${entry.better} is better\n`)
    for (const note of notes) process.stdout.write(`  - ${note}\n`)
  }
}

/** Phases 1–3: idle, pending-slot attack, handshake flood, with the probes running throughout. */
async function attacks (worker: WorkerProcess, target: string, port: number, keys: { canary: string, honest: string }, flooder: ChildProcess, children: ChildProcess[], figures: BenchFigure[]): Promise<void> {
  const probe = forkChild('./probe-child.ts', { nice: PROBE_NICE })
  const slots = forkChild('./slot-attack-child.ts', { nice: GENERATOR_NICE })
  children.push(probe, slots)
  await Promise.all([readyOf(probe), readyOf(slots)])
  const events: ProbeEvent[] = []
  probe.on('message', (message: ProbeEvent) => { events.push(message) })
  probe.send({
    type: 'start',
    target,
    httpUrl: worker.httpUrl,
    canary: { key: keys.canary, source: '127.8.0.1', intervalMs: PROBES.pingIntervalMs },
    honest: { key: keys.honest, source: '127.9.0.1', intervalMs: PROBES.dialIntervalMs },
    healthzIntervalMs: PROBES.healthzIntervalMs
  })
  await nextMessage(probe, (message: ProbeEvent) => message.type === 'started' ? true : undefined, 30_000)
  await sleep(3000)

  const loops: Record<string, LoopOverPhase> = {}
  const waits: Record<string, number> = {}
  const cpu: Record<string, CpuSplit> = {}
  const workerPid = worker.child.pid ?? 0
  const measured = async (name: string, seconds: number): Promise<void> => {
    const start: MetricsSnapshot = await scrapeMetrics(worker.httpUrl)
    const waitFrom = await runQueueWaitSecondsOf(workerPid)
    const cpuFrom = await cpuSplitOf(workerPid)
    const from = performance.now()
    const fromMicros = monotonicMicros()
    await phase(name, seconds)
    profileWindows.push({ label: `worker: ${name} phase`, pid: workerPid, fromMicros, toMicros: monotonicMicros() })
    const wall = (performance.now() - from) / 1000
    waits[name] = (await runQueueWaitSecondsOf(workerPid) - waitFrom) / wall
    const used = cpuSplitBetween(cpuFrom, await cpuSplitOf(workerPid))
    cpu[name] = { user: used.user / wall, system: used.system / wall, mainThread: used.mainThread / wall, otherThreads: used.otherThreads / wall }
    loops[name] = loopOverPhase(start, await scrapeMetrics(worker.httpUrl))
  }
  await measured('idle', SIZE.idleS)

  slots.send({
    type: 'start',
    host: '127.0.0.1',
    port,
    sources: Array.from({ length: ATTACK.sources }, (_, k) => `127.10.${k + 1}.1`),
    socketsPerSource: ATTACK.socketsPerSource,
    opensPerSourcePerSecond: OPENS_PER_SOURCE_PER_SECOND,
    firstBytes: ATTACK.firstBytes,
    trickleIntervalMs: ATTACK.trickleIntervalMs
  })
  await phase('attack-ramp', RAMP_S)
  await measured('attack', SIZE.attackS)
  slots.send({ type: 'stop' })
  const attackStats: SlotAttackStats = await nextMessage(slots, (message: SlotAttackEvent) => message.type === 'stopped' ? message : undefined)
  await phase('recovery', RECOVERY_S)

  const floodMs = (RAMP_S + SIZE.floodS) * 1000
  flooder.send({
    type: 'run',
    host: '127.0.0.1',
    port,
    ratePerSecond: FLOOD.perSecond,
    sources: Array.from({ length: FLOOD.sources }, (_, k) => `127.20.${1 + (k % 250)}.${1 + Math.floor(k / 250)}`),
    durationMs: floodMs,
    concurrency: FLOOD.concurrency
  } satisfies FloodRun)
  const floodDone = nextMessage(flooder, (message: FloodEvent) => message.type === 'run-done' ? message : undefined, floodMs + 60_000)
  await phase('flood-ramp', RAMP_S)
  await measured('flood', SIZE.floodS)
  const flood = await floodDone
  probe.send({ type: 'stop' })
  await nextMessage(probe, (message: ProbeEvent) => message.type === 'stopped' ? true : undefined, 30_000)

  const idle = probesOver(events, 'idle')
  const attack = probesOver(events, 'attack')
  const flooded = probesOver(events, 'flood')
  const [idleLoop, attackLoop, floodLoop] = [loops.idle, loops.attack, loops.flood]
  if (idleLoop === undefined || attackLoop === undefined || floodLoop === undefined) throw new Error('a phase was not measured')
  if (idleLoop.p99Ms <= 0) throw new Error('the idle event-loop delay p99 read 0: no baseline')
  for (const [label, during] of [['pending-slot attack', attack], ['handshake flood', flooded]] as const) {
    figures.push(figure(`canary ping p99 during the ${label}`, during.pingP99Ms, 'ms', { label: 'the same canary, idle worker', value: idle.pingP99Ms }, 'lower'))
  }
  figures.push(figure('worker event-loop delay p99 during the pending-slot attack', attackLoop.p99Ms, 'ms', { label: 'idle worker', value: idleLoop.p99Ms }, 'lower'))
  figures.push(figure('worker event-loop delay p99 during the handshake flood', floodLoop.p99Ms, 'ms', { label: 'idle worker', value: idleLoop.p99Ms }, 'lower'))
  for (const [label, during] of [['pending-slot attack', attack], ['handshake flood', flooded]] as const) {
    figures.push(figure(`/healthz p99 during the ${label}`, during.healthzP99Ms, 'ms', { label: 'idle worker', value: idle.healthzP99Ms }, 'lower'))
  }
  for (const [label, during] of [['pending-slot attack', attack], ['handshake flood', flooded]] as const) {
    figures.push(figure(`honest peer's dial success rate during the ${label}`, 100 * during.dialSuccess, '%', { label: 'idle worker', value: 100 * idle.dialSuccess }, 'higher'))
    figures.push(figure(`honest peer's attempts to get in, worst case (longest failure run + 1), during the ${label}`, during.worstAttempts, 'attempts', { label: 'idle worker', value: idle.worstAttempts }, 'lower'))
  }

  const floodSeconds = (flood.endedAt - flood.startedAt) / 1000
  notes.push(
    `Phases: idle ${SIZE.idleS} s; pending-slot attack ${SIZE.attackS} s measured after a ${RAMP_S} s ramp; ${RECOVERY_S} s recovery; handshake flood ${SIZE.floodS} s measured after a ${RAMP_S} s ramp. The worker runs main.ts with its defaults (embedded PGlite, per-IP inbound rate 5/s, 256 pending upgrades, 10 s upgrade timeout).`,
    `Probes: the canary pings every ${PROBES.pingIntervalMs} ms over its established connection (a lost ping counts as ${PING_TIMEOUT_MS} ms); the honest peer (127.9.0.1) dials, pings once and hangs up, once a second at most, an attempt failing after 10 s; /healthz every ${PROBES.healthzIntervalMs} ms. Canary and honest peer are registered accounts.`,
    `Pending-slot attack: ${ATTACK.sources} sources (127.10.k.1, each its own /24) × ${ATTACK.socketsPerSource} sockets, ${ATTACK.firstBytes} bytes of the multistream header, then half send a byte every ${ATTACK.trickleIntervalMs / 1000} s and half nothing; reopened when closed, at most ${OPENS_PER_SOURCE_PER_SECOND} opens per source per second. It opened ${attackStats.opens} sockets (at most ${attackStats.peakOpen} at once); the worker closed ${attackStats.closedByWorker}: ${attackStats.refusedAtAccept} at once (refused at accept), the rest after p50 ${round(quantile(attackStats.heldMs, 0.5) / 1000, 1)} s (max ${round(Math.max(0, ...attackStats.heldMs) / 1000, 1)} s).`,
    `Handshake flood: ${FLOOD.perSecond}/s offered from ${FLOOD.sources} sources (127.20.x.y), each a raw connection completing Noise with a fresh unregistered Ed25519 identity, then hanging up: ${flood.completed} completed in ${round(floodSeconds, 1)} s (${round(flood.completed / floodSeconds, 1)}/s), ${flood.failures.length} failed (${tally(flood.failures)}), ${flood.skipped} skipped with ${FLOOD.concurrency} in flight.`,
    `Canary: ${idle.pings}/${attack.pings}/${flooded.pings} pings idle/attack/flood, lost: idle ${idle.pingsLost}; attack ${attack.pingsLost}; flood ${flooded.pingsLost}; its connection closed ${events.filter((event) => event.type === 'canary-closed').length} time(s).`,
    `Honest peer: ${idle.dials}/${attack.dials}/${flooded.dials} attempts idle/attack/flood; failures during the attack: ${attack.dialFailures}; during the flood: ${flooded.dialFailures}; successful attempt p50 ${idle.dialMsP50}/${attack.dialMsP50}/${flooded.dialMsP50} ms. /healthz failures idle/attack/flood: ${idle.healthzFailed}/${attack.healthzFailed}/${flooded.healthzFailed}.`,
    `Event-loop delay (prom-client's monitor, less its 10 ms interval, one scrape at each phase's start and end): max ${round(idleLoop.maxMs, 1)}/${round(attackLoop.maxMs, 1)}/${round(floodLoop.maxMs, 1)} ms idle/attack/flood; the worker's own histogram (pharos_event_loop_delay_seconds) reads p99 ${round(idleLoop.histogramP99Ms, 1)}/${round(attackLoop.histogramP99Ms, 1)}/${round(floodLoop.histogramP99Ms, 1)} ms, ${round(100 * idleLoop.within20Ms, 1)}/${round(100 * attackLoop.within20Ms, 1)}/${round(100 * floodLoop.within20Ms, 1)} % of samples within 20 ms.`,
    `Refusals counted by the worker: attack ${describeRefusals(attackLoop)}; flood ${describeRefusals(floodLoop)}.`,
    `Worker CPU idle/attack/flood, % of its core: main thread ${percent(cpu.idle?.mainThread)}/${percent(cpu.attack?.mainThread)}/${percent(cpu.flood?.mainThread)}, its other threads (GC, compilers, libuv) ${percent(cpu.idle?.otherThreads)}/${percent(cpu.attack?.otherThreads)}/${percent(cpu.flood?.otherThreads)}; its main thread waited, runnable, for the core ${percent(waits.idle)}/${percent(waits.attack)}/${percent(waits.flood)} of the phase (/proc/<pid>/schedstat): wait beyond what its own other threads used is other processes on the machine.`
  )
}

await main()
process.exit(0)
