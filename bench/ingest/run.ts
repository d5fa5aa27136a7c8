/**
 * Ingest benchmark: `npm run bench:ingest`.
 *
 * Signed entries verified and stored per second by one worker on Postgres, beside the raw
 * ed25519 verify rate of this machine measured in the same run, as a ratio:
 *
 * 1. baseline: WebCrypto Ed25519 verifies (the verifier Pharos uses), one at a time and 32
 *    in flight, and node:crypto's synchronous verify, over the same signed entries;
 * 2. direct: the worker's batched ingest pipeline called in-process, batches of 64 envelopes
 *    (the ingest queue's content batch), 4 batches in flight — envelope check, strict decode,
 *    entry verify, registered author, block write, log update, pin job — on Postgres, then
 *    the same on embedded PGlite;
 * 3. gossip: the same work arriving over the overlay from a real libp2p peer on loopback,
 *    from the first broadcast to the last entry stored.
 *
 * Each gossiped entry costs two verifies (the publisher's envelope and the author's entry),
 * so the ceiling of the ratio against the raw verify rate is 0.5. Then it reports how long
 * the pin queue takes to pin every entry. Needs TEST_PG_ADMIN_URL (the npm script starts a
 * throwaway Postgres when it is unset). BENCH_SCALE=0.1 runs a tenth of the work; `--quick`
 * runs a quarter unless BENCH_SCALE says otherwise; `--json` prints the result as
 * bench/contract.ts describes (for `npm run bench`).
 */
import { verify as nodeVerify, createPublicKey } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import {
  publicKeyFromPeerId,
  sealEnvelope,
  signEntry,
  signingBytes,
  verifyEd25519
} from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer, EntryBlock } from '@pharos/protocol/log/index.ts'
import { loadConfig } from '@pharos/beacon/config/load.ts'
import { createLogger } from '@pharos/beacon/logging/logger.ts'
import { startWorker } from '@pharos/beacon/worker.ts'
import type { Worker } from '@pharos/beacon/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { createOverlayPeer } from '../../services/beacon/test/helpers/overlay-peer.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'
import { pino } from 'pino'
import { benchFlags, figure, printResult } from '../contract.ts'

const flags = benchFlags()
const SCALE = Number(process.env.BENCH_SCALE ?? (flags.quick ? '0.25' : '1'))
const AUTHORS = 20
const ENTRIES_PER_AUTHOR = Math.max(5, Math.round(200 * SCALE))
const IN_FLIGHT = 32
/** The log service's content batch (CONTENT_BATCH_MAX), and batches stored at once. */
const BATCH = 64
const BATCHES_IN_FLIGHT = 4
/** Broadcasts ahead of what the worker has stored: under the overlay's 1024-frame send queue. */
const GOSSIP_WINDOW = 512
/** A phase that makes no progress for this long has failed: the bench stops and says where, rather than hang. */
const STALL_MS = 60_000
const NETWORK = 'pharos-bench'

const signerOf = (key: PrivateKey): Ed25519Signer => ({ peerId: peerIdFromPrivateKey(key).toString(), sign: async (message) => await key.sign(message) })

interface Workload { envelopes: Array<{ block: EntryBlock, envelope: Uint8Array }>, authors: string[], publisher: PrivateKey }

/** AUTHORS logs of ENTRIES_PER_AUTHOR entries, interleaved, each sealed by one publisher. */
async function makeWorkload (): Promise<Workload> {
  const publisher = await generateKeyPair('Ed25519')
  const authors = await Promise.all(Array.from({ length: AUTHORS }, async () => await generateKeyPair('Ed25519')))
  const logs: EntryBlock[][] = []
  for (const key of authors) {
    const signer = signerOf(key)
    const log: EntryBlock[] = []
    let prev: CID | null = null
    for (let seq = 0; seq < ENTRIES_PER_AUTHOR; seq++) {
      const block: EntryBlock = await signEntry({ seq, prev, action: 'set-status', timestamp: 1_700_000_000_000 + seq, params: { status: `entry ${seq} of a benchmark log`, mood: seq % 7 } }, signer)
      log.push(block)
      prev = block.cid
    }
    logs.push(log)
  }
  const envelopes = []
  const publisherSigner = signerOf(publisher)
  for (let seq = 0; seq < ENTRIES_PER_AUTHOR; seq++) {
    for (const log of logs) {
      const block = log[seq]
      if (block !== undefined) envelopes.push({ block, envelope: await sealEnvelope(block.bytes, publisherSigner) })
    }
  }
  return { envelopes, authors: authors.map((key) => peerIdFromPrivateKey(key).toString()), publisher }
}

async function inFlight<T> (items: readonly T[], concurrency: number, task: (item: T) => Promise<unknown>): Promise<number> {
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const item = items[next++]
      if (item !== undefined) await task(item)
    }
  }))
  return items.length / ((performance.now() - started) / 1000)
}

async function baseline (blocks: EntryBlock[]): Promise<{ sequential: number, parallel: number, node: number }> {
  const inputs = blocks.map(({ entry }) => ({ key: publicKeyFromPeerId(entry.author) ?? new Uint8Array(32), message: signingBytes(entry), sig: entry.sig }))
  const check = (ok: string): void => { if (ok !== 'ok') throw new Error(`baseline verify failed: ${ok}`) }
  const sequentialStart = performance.now()
  for (const input of inputs) check(await verifyEd25519(input.key, input.message, input.sig))
  const sequential = inputs.length / ((performance.now() - sequentialStart) / 1000)
  const parallel = await inFlight(inputs, IN_FLIGHT, async (input) => { check(await verifyEd25519(input.key, input.message, input.sig)) })
  const spki = Buffer.from('302a300506032b6570032100', 'hex')
  const nodeKeys = new Map<string, ReturnType<typeof createPublicKey>>()
  const nodeStart = performance.now()
  for (const input of inputs) {
    const id = Buffer.from(input.key).toString('hex')
    let key = nodeKeys.get(id)
    if (key === undefined) nodeKeys.set(id, key = createPublicKey({ key: Buffer.concat([spki, input.key]), format: 'der', type: 'spki' }))
    if (!nodeVerify(null, input.message, key, input.sig)) throw new Error('node:crypto baseline verify failed')
  }
  const node = inputs.length / ((performance.now() - nodeStart) / 1000)
  return { sequential, parallel, node }
}

async function startBenchWorker (authors: string[], extra: string[] = [], engine: 'postgres' | 'pglite' = 'postgres'): Promise<Worker> {
  // Warnings go to stderr: stdout carries only the report (one JSON object under --json).
  const worker = await startWorker(loadConfig(await inProcessEnv({
    PHAROS_NETWORK: NETWORK,
    PHAROS_ADMIN_TOKENS: 'bench-admin-token-0123456789',
    ...(engine === 'postgres' ? { DATABASE_URL: await createTestDatabase('bench_ingest'), PHAROS_DATABASE_POOL_SIZE: '16' } : {}),
    // The bench measures throughput: each author pushes its whole log at once, far past the
    // per-author rate and pending-pin limits a deployment runs with.
    PHAROS_AUTHOR_ENTRY_BURST: '1000000',
    PHAROS_AUTHOR_ENTRIES_PER_MINUTE: '6000000',
    PHAROS_AUTHOR_MAX_PENDING_PINS: '1000000',
    // The same for the one publishing neighbour: it sends faster than a neighbour's data
    // budget allows (200 frames/s, burst 400), and frames over it are dropped, which is the
    // budget working, not ingest (measured: 327 of 1,000 stored, then nothing). Up to
    // GOSSIP_WINDOW entries are in flight, each validated before it is stored.
    PHAROS_OVERLAY_DATA_FRAMES_PER_SECOND: '1000000',
    PHAROS_OVERLAY_DATA_FRAMES_BURST: '1000000',
    PHAROS_OVERLAY_VALIDATIONS_IN_FLIGHT: '4096'
  })), createLogger('warn', pino.destination(2)))
  for (const [i, peer] of [...authors, ...extra].entries()) await worker.accounts.add(peer, `bench-${i}`)
  return worker
}

async function pinnedAfter (worker: Worker, expected: number): Promise<number> {
  const started = performance.now()
  let pinned = -1
  let progressAt = started
  for (;;) {
    const counts = await worker.storage.pins.countsByStatus()
    if (counts.pinned >= expected) return (performance.now() - started) / 1000
    if (counts.failed > 0) throw new Error(`${counts.failed} entry pins failed`)
    if (counts.pinned > pinned) [pinned, progressAt] = [counts.pinned, performance.now()]
    if (performance.now() - progressAt > STALL_MS) throw new Error(`the pin queue stalled at ${counts.pinned} of ${expected} pinned (${JSON.stringify(counts)})`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

function stored (worker: Worker): Promise<number> {
  return worker.logs.totals().then((totals) => totals.entries)
}

const work = await makeWorkload()
const total = work.envelopes.length
console.error(`ingest benchmark: ${AUTHORS} authors × ${ENTRIES_PER_AUTHOR} entries = ${total} signed entries (BENCH_SCALE=${SCALE})`)

console.error('baseline: raw ed25519 verifies')
const raw = await baseline(work.envelopes.map(({ block }) => block))

// Direct: the pipeline in-process, as the ingest queue runs it: batches of BATCH.
const publisherId = peerIdFromPrivateKey(work.publisher).toString()
const batches = Array.from({ length: Math.ceil(total / BATCH) }, (_, i) => work.envelopes.slice(i * BATCH, (i + 1) * BATCH))
async function directIngest (worker: Worker): Promise<number> {
  const batchRate = await inFlight(batches, BATCHES_IN_FLIGHT, async (batch) => {
    const results = await worker.logService.ingest.ingestEnvelopes(batch.map(({ envelope }) => ({ payload: envelope, from: publisherId })))
    const refused = results.find((result) => result.result !== 'accepted')
    if (refused !== undefined) throw new Error(`entry not accepted: ${JSON.stringify(refused)}`)
  })
  return batchRate * total / batches.length
}
console.error('direct: ingest in-process (Postgres)')
const direct = await startBenchWorker(work.authors)
const directRate = await directIngest(direct)
const directPinSeconds = await pinnedAfter(direct, total)
await direct.stop()
console.error('direct: ingest in-process (PGlite)')
const embedded = await startBenchWorker(work.authors, [], 'pglite')
const pgliteRate = await directIngest(embedded)
await embedded.stop()

// Gossip: a real peer broadcasts every envelope over the overlay.
console.error(`direct: ${directRate.toFixed(0)} entries/s; gossip: joining the overlay`)
const gossip = await startBenchWorker(work.authors, [publisherId])
const peer = await createOverlayPeer({ network: NETWORK, networkSize: AUTHORS }, work.publisher)
await peer.start()
await peer.dial(gossip.node.getMultiaddrs().find((addr) => addr.toString().startsWith('/ip4/127.0.0.1/') && !addr.toString().includes('/ws')) ?? (() => { throw new Error('no TCP address') })())
peer.services.overlay.join('content', gossip.node.peerId)
// Both ends: a broadcast the publisher makes before the worker is in its own active view
// reaches no one, and nothing resends it (seen on a loaded machine: 0 of 512 stored).
const workerId = gossip.node.peerId.toString()
await waitFor('the worker and the publisher to hold each other in their active views', () =>
  (gossip.node.services.overlay.snapshot().content?.active.includes(publisherId) ?? false) &&
  (peer.services.overlay.snapshot().content?.active.includes(workerId) ?? false), STALL_MS)
console.error('gossip: broadcasting')
const gossipStart = performance.now()
let sent = 0
let have = 0
let progressAt = gossipStart
while (have < total) {
  while (sent < total && sent - have < GOSSIP_WINDOW) {
    const item = work.envelopes[sent++]
    if (item !== undefined) peer.services.overlay.broadcast('content', item.block.cid.toString(), item.envelope)
  }
  await new Promise((resolve) => setTimeout(resolve, 10))
  const now = await stored(gossip)
  if (now > have) progressAt = performance.now()
  else if (performance.now() - progressAt > STALL_MS) throw new Error(`gossip ingest stalled: ${now} of ${total} entries stored, ${sent} broadcast`)
  have = now
}
console.error('gossip: all stored; waiting for the pin queue')
const gossipRate = total / ((performance.now() - gossipStart) / 1000)
const gossipPinSeconds = await pinnedAfter(gossip, total)
await peer.stop()
await gossip.stop()

const fixed = (value: number, digits = 0): string => value.toFixed(digits)
const verifyBaseline = { label: `raw ed25519 verify, WebCrypto, ${IN_FLIGHT} in flight`, value: raw.parallel }
if (flags.json) {
  printResult({
    name: 'ingest',
    figures: [
      figure(`ingest, in-process, batches of ${BATCH}, ${BATCHES_IN_FLIGHT} in flight`, directRate, 'entries/s', verifyBaseline, 'higher'),
      figure('ingest, over the overlay from a libp2p peer', gossipRate, 'entries/s', verifyBaseline, 'higher'),
      figure(`ingest, in-process on embedded PGlite, batches of ${BATCH}, ${BATCHES_IN_FLIGHT} in flight`, pgliteRate, 'entries/s', verifyBaseline, 'higher'),
      figure('raw ed25519 verify, WebCrypto, 1 at a time', raw.sequential, 'entries/s', verifyBaseline, 'higher'),
      figure('raw ed25519 verify, node:crypto (sync)', raw.node, 'entries/s', verifyBaseline, 'higher')
    ],
    notes: [
      `${AUTHORS} authors × ${ENTRIES_PER_AUTHOR} entries = ${total} signed entries (BENCH_SCALE ${SCALE}), one worker on Postgres (pool of 16), then on embedded PGlite for the PGlite figure.`,
      'A gossiped entry costs two verifies (the publisher\'s envelope and the author\'s entry), so the ratio\'s ceiling is 0.5.',
      `Pin queue: all ${total} entries pinned ${fixed(directPinSeconds, 1)} s after the last direct ingest (${fixed(total / directPinSeconds)} pins/s), ${fixed(gossipPinSeconds, 1)} s after the last gossiped one.`
    ]
  })
} else {
  const rows = [
    ['raw ed25519 verify, WebCrypto, 1 at a time', raw.sequential, ''],
    [`raw ed25519 verify, WebCrypto, ${IN_FLIGHT} in flight (baseline)`, raw.parallel, '1.00'],
    ['raw ed25519 verify, node:crypto (sync)', raw.node, fixed(raw.node / raw.parallel, 2)],
    [`ingest, in-process, batches of ${BATCH}, ${BATCHES_IN_FLIGHT} in flight`, directRate, fixed(directRate / raw.parallel, 3)],
    ['ingest, over the overlay from a libp2p peer', gossipRate, fixed(gossipRate / raw.parallel, 3)],
    [`ingest, in-process on embedded PGlite, batches of ${BATCH}, ${BATCHES_IN_FLIGHT} in flight`, pgliteRate, fixed(pgliteRate / raw.parallel, 3)]
  ] as const
  console.log('\n| measure | per second | ratio to raw verify |\n|---|---:|---:|')
  for (const [name, rate, ratio] of rows) console.log(`| ${name} | ${fixed(rate)} | ${ratio} |`)
  console.log(`\npin queue: all ${total} entries pinned ${fixed(directPinSeconds, 1)} s after the last direct ingest (${fixed(total / directPinSeconds)} pins/s), ${fixed(gossipPinSeconds, 1)} s after the last gossiped one`)
  console.log('(a gossiped entry costs two verifies — envelope and entry — so the ratio\'s ceiling is 0.5)')
}
process.exit(0)
