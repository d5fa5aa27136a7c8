/**
 * The swarm load generator (issue 8): `npm run loadtest:swarm -- --bootstrap <multiaddr>[,…]
 * --http <worker http url>[,…] --connections N --duration S [--json]`.
 *
 * Opens N real libp2p connections to one or more workers from several child processes: a
 * few full SDK peers (full-child.ts) that join the overlay, publish signed posts and fetch
 * each other's, and many light connections (light-child.ts) that are real libp2p
 * connections with their own keys and 127.x.y.z source addresses, held idle. It scrapes each
 * worker's /metrics throughout and reports connections held, failures by reason, worker
 * RSS per connection, event-loop lag p99, accept rate, join, publish → pinned and fetch.
 * Loopback only, bounded in connections and time. Design and costs: loadtest/README.md.
 */
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { addBuckets, bucketQuantile, bucketsBetween, distribution, formatReport, quantile, round, shareWithin } from './report.ts'
import type { Phase, SwarmReport } from './report.ts'
import { scrapeWorker } from './worker-metrics.ts'
import type { WorkerSample } from './worker-metrics.ts'
import { forkChild, LightPool, ready, stopChildren } from './light-pool.ts'
import type { FullCommand, FullConfig, FullReply } from './protocol.ts'

const MAX_CONNECTIONS = 60_000
const MAX_DURATION_S = 3600

class UsageError extends Error {
  override name = 'UsageError'
}

function loopbackHost (host: string): boolean {
  return /^127(\.\d{1,3}){3}$/.test(host) || host === '::1' || host === '[::1]' || host === 'localhost'
}

function checkBootstrap (address: string): string {
  const match = /^\/(ip4|ip6|dns4|dns6|dns)\/([^/]+)\/tcp\/\d+(\/ws)?\/p2p\/\w+$/.exec(address)
  if (match === null) throw new UsageError(`--bootstrap ${address}: expected /ip4/127.0.0.1/tcp/<port>[/ws]/p2p/<peer id>`)
  if (!loopbackHost(match[2] ?? '')) throw new UsageError(`--bootstrap ${address}: loopback addresses only`)
  return address
}

function checkHttp (url: string): string {
  let parsed: URL
  try { parsed = new URL(url) } catch { throw new UsageError(`--http ${url}: not a URL`) }
  if (!loopbackHost(parsed.hostname)) throw new UsageError(`--http ${url}: loopback addresses only`)
  return url
}

function integerOption (name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`--${name} ${text}: an integer from ${min} to ${max}`)
  return value
}

function parseOptions (): Options {
  const { values } = parseArgs({
    options: {
      bootstrap: { type: 'string' },
      http: { type: 'string' },
      'admin-token': { type: 'string' },
      connections: { type: 'string' },
      duration: { type: 'string' },
      rate: { type: 'string' },
      'full-peers': { type: 'string' },
      'full-start-rate': { type: 'string' },
      'light-processes': { type: 'string' },
      'publish-rate': { type: 'string' },
      'attachment-bytes': { type: 'string' },
      'probe-at': { type: 'string' },
      'probe-size': { type: 'string' },
      'top-up': { type: 'string' },
      'scrape-interval': { type: 'string' },
      network: { type: 'string' },
      json: { type: 'boolean', default: false }
    }
  })
  const bootstrap = (values.bootstrap ?? '').split(',').filter((part) => part !== '').map(checkBootstrap)
  if (bootstrap.length === 0) throw new UsageError('--bootstrap is required: the workers\' multiaddrs, comma-separated (list a TCP and a WS address to mix transports)')
  const http = (values.http ?? '').split(',').filter((part) => part !== '').map(checkHttp)
  if (http.length === 0) throw new UsageError('--http is required: each worker\'s HTTP base URL (for /metrics and registering accounts)')
  const adminToken = values['admin-token'] ?? process.env.PHAROS_ADMIN_TOKEN
  if (adminToken === undefined || adminToken === '') throw new UsageError('--admin-token (or PHAROS_ADMIN_TOKEN) is required: the full peers\' accounts are registered over /v1/accounts')
  const connections = integerOption('connections', values.connections, 100, 1, MAX_CONNECTIONS)
  return {
    bootstrap,
    http,
    adminToken,
    connections,
    durationS: integerOption('duration', values.duration, 30, 1, MAX_DURATION_S),
    rampPerSecond: integerOption('rate', values.rate, 200, 1, 10_000),
    fullPeers: Math.min(connections, integerOption('full-peers', values['full-peers'], Math.min(100, connections), 0, 1000)),
    fullStartPerSecond: integerOption('full-start-rate', values['full-start-rate'], 4, 1, 1000),
    lightProcesses: integerOption('light-processes', values['light-processes'], 4, 1, 64),
    publishPerSecond: integerOption('publish-rate', values['publish-rate'], 2, 0, 1000),
    attachmentBytes: integerOption('attachment-bytes', values['attachment-bytes'], 64 * 1024, 1, 16 * 1024 * 1024),
    probeAt: integerOption('probe-at', values['probe-at'], 1000, 1, MAX_CONNECTIONS),
    probeSize: integerOption('probe-size', values['probe-size'], 500, 0, 10_000),
    topUpRounds: integerOption('top-up', values['top-up'], 0, 0, 100),
    scrapeIntervalMs: integerOption('scrape-interval', values['scrape-interval'], 5, 1, 60) * 1000,
    network: values.network ?? 'pharos',
    json: values.json,
    workerPids: (process.env.SWARM_WORKER_PIDS ?? '').split(',').filter((part) => part !== '').map((part) => Number.isInteger(Number(part)) ? Number(part) : undefined)
  }
}

interface Options {
  bootstrap: string[]
  http: string[]
  adminToken: string
  connections: number
  durationS: number
  rampPerSecond: number
  fullPeers: number
  /** Full peers dial from 127.0.0.1 (the SDK binds no source address): stay under the worker's per-IP rate (default 5/s). */
  fullStartPerSecond: number
  lightProcesses: number
  publishPerSecond: number
  attachmentBytes: number
  probeAt: number
  probeSize: number
  /**
   * After the ramp, rounds that open again, at the ramp's rate, as many light connections as
   * failed (refused, shed or timed out), until the target is held: peers retry. 0: none.
   */
  topUpRounds: number
  scrapeIntervalMs: number
  network: string
  json: boolean
  /** Local workers' pids, in --http's order (env SWARM_WORKER_PIDS, comma-separated; target.sh sets it): their CPU wait is read from /proc. */
  workerPids: Array<number | undefined>
}

const log = (message: string): void => { process.stderr.write(`[swarm] ${message}\n`) }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function registerAccount (http: string, token: string, peerId: string): Promise<void> {
  const response = await fetch(new URL('/v1/accounts', http), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ peerId, label: 'loadtest-swarm' }),
    signal: AbortSignal.timeout(10_000)
  })
  if (response.status !== 200 && response.status !== 201) throw new Error(`POST ${http}/v1/accounts answered ${response.status}: ${await response.text()}`)
}

async function run (options: Options): Promise<SwarmReport> {
  const runStarted = Date.now()
  const failures: Record<string, number> = {}
  const fail = (reason: string, message?: string): void => {
    failures[reason] = (failures[reason] ?? 0) + 1
    // The first few messages of each reason go to stderr, to tell a timeout from a refusal.
    if (message !== undefined && (failures[reason] ?? 0) <= 3) log(`${reason}: ${message}`)
  }

  // Scrapes: each labelled with the phase its window covered; a phase change scrapes first,
  // because the lag p99 is reset by every scrape.
  let phase: Phase = 'baseline'
  const samples: Array<{ phase: Phase, sample: WorkerSample[] }> = []
  const scrape = async (): Promise<WorkerSample[]> => {
    const sample = await Promise.all(options.http.map(async (http, k) => await scrapeWorker(http, options.workerPids[k])))
    samples.push({ phase, sample })
    return sample
  }
  const setPhase = async (next: Phase): Promise<void> => { await scrape(); phase = next }
  // Resets the lag histograms, and is where the first window's CPU time starts.
  const start = await Promise.all(options.http.map(async (http, k) => await scrapeWorker(http, options.workerPids[k])))
  await sleep(options.scrapeIntervalMs)
  const baseline = await scrape()
  let scraping = true
  const scraper = (async () => {
    while (scraping) {
      await sleep(options.scrapeIntervalMs)
      if (scraping) await scrape().catch((err: unknown) => { fail('scrape'); log(`scrape failed: ${String(err)}`) })
    }
  })()

  // Full peers: keys, accounts, one child per 50.
  const fullSeeds = Array.from({ length: options.fullPeers }, () => randomBytes(32))
  const fullIds = await Promise.all(fullSeeds.map(async (seed) => peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', seed)).toString()))
  for (const http of options.http) for (const id of fullIds) await registerAccount(http, options.adminToken, id)
  const fullChildren: ChildProcess[] = []
  const fullHome: Array<{ child: number, index: number }> = []
  // Guess: with 100 SDK peers (each a Helia node serving Bitswap) in one process, pins of
  // their posts took a minute in the 10k run; spread them thinner.
  const perFullChild = 50
  for (let start = 0; start < options.fullPeers; start += perFullChild) {
    const seeds = fullSeeds.slice(start, start + perFullChild)
    const config: FullConfig = {
      network: options.network,
      networkSize: Math.max(options.fullPeers, 1),
      attachmentBytes: options.attachmentBytes,
      peers: seeds.map((seed, offset) => {
        const i = start + offset
        // Rotate the bootstrap list so peers alternate TCP and WS, and spread over workers.
        const bootstrap = options.bootstrap.map((_, k) => options.bootstrap[(i + k) % options.bootstrap.length] ?? '')
        return { seed: seed.toString('hex'), bootstrap }
      })
    }
    seeds.forEach((_, offset) => fullHome.push({ child: fullChildren.length, index: offset }))
    fullChildren.push(forkChild('./full-child.ts', { SWARM_FULL_CONFIG: JSON.stringify(config) }))
  }
  // Light connections.
  const openMs: number[] = []
  let lightEstablished = 0
  const pool = new LightPool(options.lightProcesses, {
    onOpened: (_, ms) => { lightEstablished++; openMs.push(ms) },
    onFailed: (_, reason, message) => { fail(`open:${reason}`, message) },
    onClosedByRemote: () => { fail('closed-by-remote') }
  })
  const lightOpen = pool.open
  await Promise.all([...fullChildren.map(ready), pool.ready()])

  // Full peers join (counted in the ramp).
  const joinMs: number[] = []
  const joined = new Set<number>()
  let fullsStarted = 0
  type Pending = { resolve: (reply: FullReply) => void }
  const pending = new Map<number, Pending>()
  const fullStatus: Array<(reply: Extract<FullReply, { type: 'status' }>) => void> = []
  fullChildren.forEach((child, k) => {
    child.on('message', (message: FullReply) => {
      switch (message.type) {
        case 'joined': {
          const global = fullHome.findIndex((home) => home.child === k && home.index === message.peer)
          joined.add(global)
          joinMs.push(message.ms)
          break
        }
        case 'join-failed': fail(`join:${message.reason}`, message.message); break
        case 'started': fullsStarted++; break
        case 'published': case 'publish-failed': case 'fetched': case 'fetch-failed':
          pending.get(message.id)?.resolve(message)
          pending.delete(message.id)
          break
        case 'status': fullStatus.shift()?.(message); break
        case 'ready': break
      }
    })
  })
  const sendFull = (k: number, command: FullCommand): void => { fullChildren[k]?.send(command) }

  await setPhase('ramp')
  const rampStarted = Date.now()
  fullChildren.forEach((_, k) => { sendFull(k, { type: 'start', concurrency: 4, intervalMs: 1000 * fullChildren.length / options.fullStartPerSecond }) })

  // Light ramp at the set rate, in 100 ms slices, pausing for the accept probe at probeAt.
  const acceptRate: SwarmReport['acceptRate'] = []
  const probe = async (size: number): Promise<void> => {
    await setPhase('probe')
    const held = lightOpen.size + joined.size
    const specs = pool.specs(size, options.bootstrap)
    const started = Date.now()
    await pool.openAll(specs, 64)
    const seconds = (Date.now() - started) / 1000
    const opened = specs.filter((spec) => lightOpen.has(spec.id))
    acceptRate.push({ held, opened: opened.length, perSecond: round(opened.length / seconds) })
    log(`accept probe at ${held} held: ${opened.length} in ${round(seconds, 2)} s`)
    pool.close(opened.map((spec) => spec.id))
    await sleep(2000)
    await setPhase('ramp')
  }
  const lightTarget = options.connections - options.fullPeers
  let lightRequested = 0
  let probedEarly = options.probeSize === 0 || options.connections < options.probeAt + options.probeSize
  const inFlight: Array<Promise<void>> = []
  const slice = Math.max(1, Math.round(options.rampPerSecond / 10))
  while (lightRequested < lightTarget) {
    if (!probedEarly && lightOpen.size + joined.size >= options.probeAt) {
      await Promise.all(inFlight)
      await probe(options.probeSize)
      probedEarly = true
    }
    const count = Math.min(slice, lightTarget - lightRequested)
    inFlight.push(pool.openAll(pool.specs(count, options.bootstrap), 256))
    lightRequested += count
    await sleep(100 * count / slice)
  }
  await Promise.all(inFlight)
  // Top-up rounds: the light connections that failed are opened again (fresh keys and sources).
  for (let round = 1; round <= options.topUpRounds && lightOpen.size < lightTarget; round++) {
    const shortfall = lightTarget - lightOpen.size
    log(`top-up round ${round}: ${lightOpen.size} light held, opening ${shortfall} more`)
    const roundInFlight: Array<Promise<void>> = []
    for (let opened = 0; opened < shortfall;) {
      const count = Math.min(slice, shortfall - opened)
      roundInFlight.push(pool.openAll(pool.specs(count, options.bootstrap), 256))
      opened += count
      await sleep(100 * count / slice)
    }
    await Promise.all(roundInFlight)
  }
  const fullsDeadline = Date.now() + 120_000 + options.fullPeers * 1000
  while (fullsStarted < fullChildren.length && Date.now() < fullsDeadline) await sleep(200)
  log(`ramp done in ${round((Date.now() - rampStarted) / 1000)} s: ${lightOpen.size} light + ${joined.size} full`)
  if (options.probeSize > 0) await probe(Math.min(options.probeSize, options.connections))

  // Hold: publishes at the set rate round robin over joined full peers, each pinned post
  // fetched by the next joined peer.
  await setPhase('hold')
  const holdStarted = Date.now()
  const pinnedMs: number[] = []
  const fetchMs: number[] = []
  let published = 0
  let fetchedBytes = 0
  let requestId = 0
  const request = async (k: number, command: (id: number) => FullCommand): Promise<FullReply> => {
    const id = requestId++
    const reply = new Promise<FullReply>((resolve) => { pending.set(id, { resolve }) })
    sendFull(k, command(id))
    return await reply
  }
  const work: Array<Promise<void>> = []
  const joinedList = (): number[] => [...joined].sort((a, b) => a - b)
  const holdEnd = holdStarted + options.durationS * 1000
  let turn = 0
  while (Date.now() < holdEnd) {
    const peersNow = joinedList()
    if (options.publishPerSecond > 0 && peersNow.length > 0) {
      const publisher = peersNow[turn % peersNow.length] ?? 0
      const fetcher = peersNow[(turn + 1) % peersNow.length] ?? 0
      turn++
      const home = fullHome[publisher]
      const fetchHome = fullHome[fetcher]
      if (home !== undefined && fetchHome !== undefined) {
        published++
        work.push((async () => {
          const result = await request(home.child, (id) => ({ type: 'publish', id, peer: home.index }))
          if (result.type === 'publish-failed') { fail(`publish:${result.reason}`); return }
          if (result.type !== 'published') return
          pinnedMs.push(result.pinnedMs)
          const fetched = await request(fetchHome.child, (id) => ({ type: 'fetch', id, peer: fetchHome.index, author: result.author }))
          if (fetched.type === 'fetch-failed') { fail(`fetch:${fetched.reason}`); return }
          if (fetched.type === 'fetched') { fetchMs.push(fetched.ms); fetchedBytes += fetched.bytes }
        })())
      }
      await sleep(1000 / options.publishPerSecond)
    } else {
      await sleep(Math.min(1000, Math.max(0, holdEnd - Date.now())))
    }
  }
  const held = await scrape()
  const lightStatus = await pool.status()
  const fullStatuses = await Promise.all(fullChildren.map(async (_, k) => {
    const status = new Promise<Extract<FullReply, { type: 'status' }>>((resolve) => { fullStatus.push(resolve) })
    sendFull(k, { type: 'status' })
    return await status
  }))
  // Publishes still in flight finish (pinned or failed), bounded by their own timeouts.
  await Promise.all(work)
  const workSeconds = (Date.now() - holdStarted) / 1000
  scraping = false
  await scraper

  await Promise.all([pool.stop(), stopChildren(fullChildren, (k) => { sendFull(k, { type: 'stop' }) })])

  const lightHeld = lightStatus.held
  const lightRss = lightStatus.rssBytes
  const heldByWorkers = held.reduce((sum, sample) => sum + sample.connections, 0)
  const rssBaselineBytes = baseline.reduce((sum, sample) => sum + sample.rssBytes, 0)
  const rssHeldBytes = held.reduce((sum, sample) => sum + sample.rssBytes, 0)
  const growthKiB = (part: 'rssBytes' | 'heapUsedBytes' | 'heapTotalBytes' | 'externalBytes'): number => heldByWorkers === 0
    ? Number.NaN
    : (held.reduce((sum, sample) => sum + sample[part], 0) - baseline.reduce((sum, sample) => sum + sample[part], 0)) / heldByWorkers / 1024
  const lagByPhase = (which: Phase): { windows: number, max: number, p90: number, median: number } => {
    const windows = samples.filter((entry) => entry.phase === which).flatMap((entry) => entry.sample.map((sample) => sample.lagP99Ms))
    const spread = distribution(windows)
    return { windows: windows.length, max: round(spread.max), p90: round(quantile(windows, 0.9)), median: round(spread.p50) }
  }
  /** Each scrape window of a phase, per worker: its sample at the window's start and at its end. */
  const windowsOf = (which: Phase): Array<{ before: WorkerSample, after: WorkerSample }> => samples.flatMap((entry, k) => {
    if (entry.phase !== which) return []
    const previous = k === 0 ? start : samples[k - 1]?.sample ?? []
    return entry.sample.flatMap((after, worker) => {
      const before = previous[worker]
      return before === undefined ? [] : [{ before, after }]
    })
  })
  const cpuByPhase = (which: Phase): number | null => {
    const windows = windowsOf(which)
    const cpuSeconds = windows.reduce((sum, { before, after }) => sum + after.cpuSeconds - before.cpuSeconds, 0)
    const wallSeconds = windows.reduce((sum, { before, after }) => sum + (after.at - before.at) / 1000, 0)
    return wallSeconds === 0 ? null : round(100 * cpuSeconds / wallSeconds)
  }
  /** The share of each phase the workers' main threads waited, runnable, for a CPU (percent; null without pids). */
  const waitByPhase = (which: Phase): number | null => {
    const windows = windowsOf(which).filter(({ before, after }) => before.runQueueWaitSeconds !== undefined && after.runQueueWaitSeconds !== undefined)
    const waited = windows.reduce((sum, { before, after }) => sum + (after.runQueueWaitSeconds ?? 0) - (before.runQueueWaitSeconds ?? 0), 0)
    const wallSeconds = windows.reduce((sum, { before, after }) => sum + (after.at - before.at) / 1000, 0)
    return wallSeconds === 0 ? null : round(100 * waited / wallSeconds)
  }
  const delayByPhase = (which: Phase): SwarmReport['workers']['eventLoopDelay'][Phase] => {
    const buckets = addBuckets(windowsOf(which).map(({ before, after }) => bucketsBetween(before.delayBuckets, after.delayBuckets)))
    const count = buckets.at(-1)?.count ?? 0
    if (count === 0) return null
    return {
      samples: count,
      p99Ms: round(bucketQuantile(buckets, 0.99) * 1000),
      within20Ms: round(shareWithin(buckets, 0.02), 4),
      within50Ms: round(shareWithin(buckets, 0.05), 4)
    }
  }
  const first = acceptRate[0]
  const last = acceptRate.at(-1)
  return {
    settings: {
      bootstrap: options.bootstrap,
      connections: options.connections,
      fullPeers: options.fullPeers,
      lightProcesses: options.lightProcesses,
      rampPerSecond: options.rampPerSecond,
      topUpRounds: options.topUpRounds,
      holdSeconds: options.durationS,
      publishPerSecond: options.publishPerSecond,
      attachmentBytes: options.attachmentBytes
    },
    connections: {
      target: options.connections,
      established: lightEstablished - acceptRate.reduce((sum, probe) => sum + probe.opened, 0) + joinMs.length,
      held: lightHeld + fullStatuses.reduce((sum, status) => sum + status.held, 0),
      heldByWorkers,
      failures,
      openMs: distribution(openMs)
    },
    acceptRate,
    acceptRateRatio: first !== undefined && last !== undefined && acceptRate.length > 1 ? round(last.perSecond / first.perSecond, 2) : null,
    workers: {
      rssBaselineBytes,
      rssHeldBytes,
      rssPerConnectionKiB: round(growthKiB('rssBytes')),
      rssTotalPerConnectionKiB: heldByWorkers === 0 ? Number.NaN : round(rssHeldBytes / heldByWorkers / 1024),
      memoryPerConnectionKiB: {
        heapUsed: round(growthKiB('heapUsedBytes')),
        heapTotal: round(growthKiB('heapTotalBytes')),
        external: round(growthKiB('externalBytes')),
        rest: round(growthKiB('rssBytes') - growthKiB('heapTotalBytes') - growthKiB('externalBytes'))
      },
      lagP99Ms: { baseline: lagByPhase('baseline'), ramp: lagByPhase('ramp'), probe: lagByPhase('probe'), hold: lagByPhase('hold') },
      cpuPercent: { baseline: cpuByPhase('baseline'), ramp: cpuByPhase('ramp'), probe: cpuByPhase('probe'), hold: cpuByPhase('hold') },
      cpuWaitPercent: { baseline: waitByPhase('baseline'), ramp: waitByPhase('ramp'), probe: waitByPhase('probe'), hold: waitByPhase('hold') },
      eventLoopDelay: { baseline: delayByPhase('baseline'), ramp: delayByPhase('ramp'), probe: delayByPhase('probe'), hold: delayByPhase('hold') }
    },
    join: { ms: distribution(joinMs) },
    publish: { published, pinned: pinnedMs.length, pinnedMs: distribution(pinnedMs) },
    fetch: { fetched: fetchMs.length, bytes: fetchedBytes, ms: distribution(fetchMs), bytesPerSecond: round(fetchedBytes / workSeconds) },
    generator: {
      rssBytes: lightRss + fullStatuses.reduce((sum, status) => sum + status.rssBytes, 0),
      lightRssPerConnectionKiB: lightHeld === 0 ? Number.NaN : round(lightRss / lightHeld / 1024)
    },
    durationSeconds: round((Date.now() - runStarted) / 1000)
  }
}

try {
  if (process.argv.slice(2).includes('--help')) {
    process.stdout.write('usage: npm run loadtest:swarm -- --bootstrap <multiaddr>[,…] --http <worker http url>[,…] --admin-token <token> [--connections N] [--duration S] [--json] (all options: loadtest/README.md)\n')
    process.exit(0)
  }
  const options = parseOptions()
  const report = await run(options)
  process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : `${formatReport(report)}\n`)
  process.exit(0)
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`loadtest:swarm: ${err.message}\n`)
    process.exit(2)
  }
  throw err
}
