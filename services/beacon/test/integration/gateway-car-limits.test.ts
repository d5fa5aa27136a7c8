import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { after, before, describe, it } from 'node:test'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { CarBlockIterator } from '@ipld/car'
import * as dagCbor from '@ipld/dag-cbor'
import { fastify, LogController } from 'fastify'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { Registry } from 'prom-client'
import { errorHandler, FailureSchema } from '../../src/http/errors.ts'
import { gatewayRoutes } from '../../src/http/routes/gateway.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { createGatewayMetrics } from '../../src/http/gateway-metrics.ts'
import { createLimitMetrics } from '../../src/metrics/limit-metrics.ts'
import { migrate } from '../../src/storage/migrate.ts'
import { PgBlockstore } from '../../src/storage/pg-blockstore.ts'
import { openPostgres } from '../../src/storage/pg-client.ts'
import type { SqlClient } from '../../src/storage/sql.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { retainedBytes } from '../helpers/memory.ts'
import { metricValue, MiB, randomContent, testConfig, testLogger } from '../helpers/storage.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import type { AbortOptions } from '@libp2p/interface'

/**
 * The public CAR gateway over hostile DAGs (issue 17, item 1): the walk sends each block
 * once and holds at most PHAROS_GATEWAY_CAR_MAX_BLOCKS CIDs, so a DAG that repeats one
 * leaf in every block costs what its distinct blocks cost; a stream that crosses a limit
 * stops reading storage, is counted and logged, and the client sees a truncated transfer;
 * CAR streams are capped per client and per worker (429 before any body).
 *
 * Reads are counted through a wrapper of the Postgres blockstore; memory is the test
 * process's heap (the server runs in it) after a full GC, sampled as the CAR arrives.
 */


/**
 * The bound this file asserts on the heap a CAR request adds while it runs (the walk, a
 * block in flight, the HTTP and Postgres buffers of both ends). Before the fix, the
 * repeated-leaf chain below (60 blocks each linking the next and one leaf 6,000 times)
 * held all 360,000 links at once: +206 MiB measured; after it, 2 to 6 MiB.
 */
const HEAP_BOUND = 32 * MiB

async function put (store: PgBlockstore, code: number, bytes: Uint8Array): Promise<CID> {
  const cid = CID.createV1(code, await sha256.digest(bytes))
  await store.put(cid, bytes)
  return cid
}

/**
 * The shape of the report: `levels` dag-cbor blocks, each a list of the next block and then
 * one raw leaf `repeats` times; the last lists the leaf alone.
 */
async function repeatedLeafChain (store: PgBlockstore, levels: number, repeats: number): Promise<{ root: CID, leaf: CID, chain: CID[] }> {
  const leaf = await put(store, raw.code, new TextEncoder().encode(`the repeated leaf ${levels}x${repeats}`))
  const chain: CID[] = []
  let next: CID | undefined
  for (let level = levels - 1; level >= 0; level--) {
    const links: CID[] = next === undefined ? [] : [next]
    for (let i = 0; i < repeats; i++) links.push(leaf)
    next = await put(store, dagCbor.code, dagCbor.encode(links))
    chain.unshift(next)
  }
  return { root: chain[0] as CID, leaf, chain }
}

/** `levels` dag-cbor blocks each linking the next; the last links a raw leaf. */
async function deepChain (store: PgBlockstore, levels: number): Promise<CID> {
  let next = await put(store, raw.code, new TextEncoder().encode(`the bottom of a ${levels}-deep chain`))
  for (let level = 0; level < levels; level++) next = await put(store, dagCbor.code, dagCbor.encode({ level, next }))
  return next
}

/** A dag-cbor root linking `count` random raw blocks of `size` bytes: a large transfer. */
async function bigDag (store: PgBlockstore, count: number, size: number): Promise<CID> {
  const links: CID[] = []
  for (let i = 0; i < count; i++) links.push(await put(store, raw.code, randomContent(size)))
  return await put(store, dagCbor.code, dagCbor.encode(links))
}

interface CarReply {
  status: number
  headers: IncomingMessage['headers']
  /** The blocks received whole, in order, each checked against its CID (200 only). */
  blocks: string[]
  /** The body of any other status. */
  body: string
  /** Whether the response ended as HTTP says it should (false: the connection was cut). */
  complete: boolean
  /** Largest live-heap growth seen while the body arrived (blocks are not kept). */
  heapGrowth: number
}

/** GET `path` over a connection from `localAddress`; resolves with the headers, the body left unread. */
async function open (base: string, path: string, localAddress = '127.0.0.1'): Promise<IncomingMessage> {
  return await new Promise((resolve, reject) => {
    const request = httpRequest(new URL(path, base), { localAddress, headers: { accept: 'application/vnd.ipld.car' }, agent: false }, resolve)
    request.once('error', reject)
    request.end()
  })
}

/** Reads the response: a CAR block by block (sampling the live heap every 16 blocks), or the body of an error. */
async function readAll (response: IncomingMessage, heapBefore = retainedBytes()): Promise<CarReply> {
  const closed = new Promise<void>((resolve) => { response.once('close', resolve) })
  response.on('error', () => {}) // a cut transfer: `complete` says so
  const reply: CarReply = { status: response.statusCode ?? 0, headers: response.headers, blocks: [], body: '', complete: false, heapGrowth: 0 }
  if (reply.status !== 200) {
    for await (const chunk of response) reply.body += String(chunk)
  } else {
    try {
      const car = await CarBlockIterator.fromIterable(response)
      for await (const { cid, bytes } of car) {
        assert.ok(cid.multihash.code === sha256.code && Buffer.from((await sha256.digest(bytes)).digest).equals(cid.multihash.digest), `block ${cid.toString()} matches its CID`)
        reply.blocks.push(cid.toString())
        if (reply.blocks.length % 16 === 0) reply.heapGrowth = Math.max(reply.heapGrowth, retainedBytes() - heapBefore)
      }
    } catch {
      // Cut mid-block: `complete` is false.
    }
  }
  await closed
  reply.complete = response.complete
  reply.heapGrowth = Math.max(reply.heapGrowth, retainedBytes() - heapBefore)
  return reply
}

async function get (base: string, path: string): Promise<CarReply> {
  const heapBefore = retainedBytes()
  return await readAll(await open(base, path), heapBefore)
}

describe('gateway CAR walk over hostile DAGs (Postgres, reads counted)', () => {
  let db: SqlClient
  let store: PgBlockstore
  let reads = 0
  const counting = {
    async getBytes (cid: CID, options?: AbortOptions): Promise<Uint8Array> {
      reads++
      return await store.getBytes(cid, options)
    }
  }
  const logLines: Array<Record<string, unknown>> = []
  const apps: Array<{ close: () => Promise<void> }> = []

  /** The gateway routes alone (as buildApp mounts them) on loopback, over the counting blockstore. */
  async function gateway (carLimits: { maxBlocks: number, maxBytes?: number, maxDepth?: number, maxLinksPerBlock?: number }, carTimeoutMs = 600_000) {
    const registry = new Registry()
    const log = createLogger('info', { write: (line: string) => { logLines.push(JSON.parse(line) as Record<string, unknown>) } })
    const app = fastify({
      loggerInstance: log,
      logController: new LogController({ disableRequestLogging: true }),
      ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } }
    }).withTypeProvider<TypeBoxTypeProvider>()
    app.addSchema(FailureSchema)
    app.setErrorHandler(errorHandler)
    await app.register(gatewayRoutes, {
      blockstore: counting,
      carLimits: { maxBytes: 1024 * MiB, maxDepth: 256, maxLinksPerBlock: 10_000, ...carLimits },
      carTimeoutMs,
      carStreams: { maxStreams: 16, maxStreamsPerClient: 4 },
      limitMetrics: createLimitMetrics(registry),
      metrics: createGatewayMetrics(registry)
    })
    const base = await app.listen({ host: '127.0.0.1', port: 0 })
    apps.push(app)
    return { base, metrics: async () => await registry.metrics() }
  }

  before(async () => {
    db = await openPostgres(await createTestDatabase('gateway_limits'))
    await migrate(db)
    store = new PgBlockstore({ db })
  })
  after(async () => {
    for (const app of apps) await app.close()
    await db?.close()
  })

  it('sends a chain that repeats one leaf 6,000 times per block whole: each block once, heap bounded', async (t) => {
    const { root, leaf, chain } = await repeatedLeafChain(store, 60, 6000)
    const { base, metrics } = await gateway({ maxBlocks: 250_000 })
    reads = 0
    const reply = await get(base, `/ipfs/${root.toString()}?format=car`)
    assert.equal(reply.status, 200)
    assert.ok(reply.complete, 'the transfer completed')
    // Depth-first: the chain, then the leaf, which the deepest block is the first to list.
    assert.deepEqual(reply.blocks, [...chain, leaf].map(String))
    t.diagnostic(`${reads} reads, heap growth ${(reply.heapGrowth / MiB).toFixed(1)} MiB`)
    assert.equal(reads, chain.length + 1, 'each block read once (the root too)')
    assert.ok(reply.heapGrowth < HEAP_BOUND, `the request grew the heap by ${(reply.heapGrowth / MiB).toFixed(1)} MiB (bound ${HEAP_BOUND / MiB} MiB)`)
    assert.equal(metricValue(await metrics(), 'pharos_gateway_car_responses_total{outcome="complete"}'), 1)
  })

  it('cuts the chain at PHAROS_GATEWAY_CAR_MAX_BLOCKS: stops reading, counts and logs it, the client sees a truncated transfer', async (t) => {
    const { root } = await repeatedLeafChain(store, 60, 6000)
    const maxBlocks = 40
    const { base, metrics } = await gateway({ maxBlocks })
    reads = 0
    logLines.length = 0
    const reply = await get(base, `/ipfs/${root.toString()}?format=car`)
    assert.equal(reply.status, 200)
    assert.equal(reply.complete, false, 'the transfer was cut, never a CAR that looks complete')
    t.diagnostic(`${reply.blocks.length} blocks sent, ${reads} reads, heap growth ${(reply.heapGrowth / MiB).toFixed(1)} MiB`)
    assert.ok(reply.blocks.length > 0 && reply.blocks.length <= maxBlocks, `${reply.blocks.length} blocks sent`)
    assert.ok(reads <= maxBlocks, `${reads} blocks read from storage for a limit of ${maxBlocks}`)
    assert.ok(reply.heapGrowth < HEAP_BOUND, `the request grew the heap by ${(reply.heapGrowth / MiB).toFixed(1)} MiB`)
    const exposition = await metrics()
    assert.equal(metricValue(exposition, 'pharos_limit_blocked_total{limit="PHAROS_GATEWAY_CAR_MAX_BLOCKS"}'), 1)
    assert.equal(metricValue(exposition, 'pharos_gateway_car_responses_total{outcome="limit"}'), 1)
    const line = logLines.find((entry) => entry.msg === 'CAR response stopped at a limit')
    assert.equal(line?.level, 30, 'logged at info')
    assert.equal(line?.limit, 'PHAROS_GATEWAY_CAR_MAX_BLOCKS')
    assert.match(String(line?.reason), /^PHAROS_GATEWAY_CAR_MAX_BLOCKS: the DAG has more than 40 blocks/)
  })

  it('cuts a 300-deep chain at PHAROS_GATEWAY_CAR_MAX_DEPTH, reading no block past it', async (t) => {
    const root = await deepChain(store, 300)
    const { base, metrics } = await gateway({ maxBlocks: 250_000, maxDepth: 256 })
    reads = 0
    const reply = await get(base, `/ipfs/${root.toString()}?format=car`)
    assert.equal(reply.status, 200)
    assert.equal(reply.complete, false)
    t.diagnostic(`${reply.blocks.length} blocks sent, ${reads} reads, heap growth ${(reply.heapGrowth / MiB).toFixed(1)} MiB`)
    assert.ok(reply.blocks.length > 0 && reply.blocks.length <= 257, 'blocks at depth 0 to 256 at most')
    assert.ok(reads <= 257, `${reads} blocks read`)
    assert.ok(reply.heapGrowth < HEAP_BOUND, `the request grew the heap by ${(reply.heapGrowth / MiB).toFixed(1)} MiB`)
    assert.equal(metricValue(await metrics(), 'pharos_limit_blocked_total{limit="PHAROS_GATEWAY_CAR_MAX_DEPTH"}'), 1)
  })

  it('refuses a root over PHAROS_DAG_MAX_LINKS_PER_BLOCK with 403 and the reason, before any body', async () => {
    // The report's block: ~1 MiB listing one leaf 26,000 times.
    const { root } = await repeatedLeafChain(store, 1, 26_000)
    const { base, metrics } = await gateway({ maxBlocks: 250_000 })
    reads = 0
    const reply = await get(base, `/ipfs/${root.toString()}?format=car`)
    assert.equal(reply.status, 403)
    assert.notEqual(reply.headers['cache-control'], 'public, max-age=29030400, immutable', 'a refusal is not cached as the content')
    const failure = JSON.parse(reply.body) as { error: { reason: string, details: string } }
    assert.equal(failure.error.reason, 'CAR_LIMIT_EXCEEDED')
    assert.match(failure.error.details, /^PHAROS_DAG_MAX_LINKS_PER_BLOCK: block \S+ links more than 10000 blocks/)
    assert.equal(reads, 1, 'only the root was read')
    assert.equal(metricValue(await metrics(), 'pharos_limit_blocked_total{limit="PHAROS_DAG_MAX_LINKS_PER_BLOCK"}'), 1)
  })

  it('cuts a stream its client does not read at PHAROS_GATEWAY_CAR_TIMEOUT_MS, and reads no more', async () => {
    const root = await bigDag(store, 24, MiB)
    const { base, metrics } = await gateway({ maxBlocks: 250_000 }, 1000)
    reads = 0
    const response = await open(base, `/ipfs/${root.toString()}?format=car`)
    assert.equal(response.statusCode, 200)
    response.pause()
    await waitFor('the time limit to cut the stream', async () => metricValue(await metrics(), 'pharos_limit_blocked_total{limit="PHAROS_GATEWAY_CAR_TIMEOUT_MS"}') === 1)
    const readsAtCut = reads
    assert.ok(readsAtCut < 25, `${readsAtCut} of 25 blocks read when it was cut`)
    response.resume()
    const reply = await readAll(response)
    assert.equal(reply.complete, false, 'the client sees a truncated transfer')
    assert.equal(reads, readsAtCut, 'no block was read after the cut')
    await waitFor('the stream slot to be freed', async () => metricValue(await metrics(), 'pharos_gateway_car_streams') === 0)
  })

  it('keeps depth-first order with shared blocks: each block where a depth-first walk first meets it', async () => {
    const e = await put(store, raw.code, new TextEncoder().encode('e'))
    const d = await put(store, raw.code, new TextEncoder().encode('d'))
    const b = await put(store, dagCbor.code, dagCbor.encode([e]))
    const a = await put(store, dagCbor.code, dagCbor.encode([b, d]))
    const root = await put(store, dagCbor.code, dagCbor.encode([a, b]))
    const { base } = await gateway({ maxBlocks: 250_000 })
    const reply = await get(base, `/ipfs/${root.toString()}?format=car`)
    assert.ok(reply.complete)
    assert.deepEqual(reply.blocks, [root, a, b, e, d].map(String))
  })
})

describe('gateway CAR stream caps on a worker (Postgres)', () => {
  let worker: Worker
  let root: CID
  const metrics = async (): Promise<string> => await (await fetch(`${worker.httpUrl}/metrics`)).text()

  before(async () => {
    worker = await startWorker(await testConfig({
      DATABASE_URL: await createTestDatabase('gateway_caps'),
      PHAROS_GATEWAY_CAR_MAX_STREAMS: '2',
      PHAROS_GATEWAY_CAR_MAX_STREAMS_PER_IP: '1'
    }), testLogger())
    // Far more than the loopback socket buffers hold, so a client that does not read keeps its stream open.
    root = await bigDag(worker.storage.blockstore, 32, MiB)
  })
  after(async () => { await worker?.stop() })

  it('answers 429 with Retry-After and the cap\'s key, before any body, per client and per worker', async () => {
    const path = `/ipfs/${root.toString()}?format=car`
    const first = await open(worker.httpUrl, path, '127.0.0.1')
    assert.equal(first.statusCode, 200)
    first.pause()

    const sameClient = await readAll(await open(worker.httpUrl, path, '127.0.0.1'))
    assert.equal(sameClient.status, 429)
    assert.equal(sameClient.headers['retry-after'], '5')
    assert.match(String(sameClient.headers['content-type']), /^application\/json/)
    const perIp = JSON.parse(sameClient.body) as { error: { reason: string, details: string } }
    assert.equal(perIp.error.reason, 'TOO_MANY_CAR_STREAMS')
    assert.match(perIp.error.details, /^PHAROS_GATEWAY_CAR_MAX_STREAMS_PER_IP: 1 CAR streams are open for this client/)

    const second = await open(worker.httpUrl, path, '127.0.0.2')
    assert.equal(second.statusCode, 200, 'another client has a slot')
    second.pause()
    const third = await readAll(await open(worker.httpUrl, path, '127.0.0.3'))
    assert.equal(third.status, 429)
    assert.equal(third.headers['retry-after'], '5')
    const global = JSON.parse(third.body) as { error: { reason: string, details: string } }
    assert.match(global.error.details, /^PHAROS_GATEWAY_CAR_MAX_STREAMS: 2 CAR streams are open on this worker/)

    const exposition = await metrics()
    assert.equal(metricValue(exposition, 'pharos_limit_blocked_total{limit="PHAROS_GATEWAY_CAR_MAX_STREAMS_PER_IP"}'), 1)
    assert.equal(metricValue(exposition, 'pharos_limit_blocked_total{limit="PHAROS_GATEWAY_CAR_MAX_STREAMS"}'), 1)
    assert.equal(metricValue(exposition, 'pharos_gateway_car_streams'), 2)
    first.destroy()
    second.destroy()
    await waitFor('both slots to be freed', async () => metricValue(await metrics(), 'pharos_gateway_car_streams') === 0)
  })

  it('frees the slot of a client that goes away mid-stream', async () => {
    const path = `/ipfs/${root.toString()}?format=car`
    const aborted = await open(worker.httpUrl, path, '127.0.0.4')
    assert.equal(aborted.statusCode, 200)
    aborted.pause()
    assert.equal((await readAll(await open(worker.httpUrl, path, '127.0.0.4'))).status, 429, 'the client holds its one slot')
    const closedBefore = metricValue(await metrics(), 'pharos_gateway_car_responses_total{outcome="client-closed"}')
    aborted.destroy()
    await waitFor('the slot to be freed', async () => metricValue(await metrics(), 'pharos_gateway_car_streams') === 0)
    assert.equal(metricValue(await metrics(), 'pharos_gateway_car_responses_total{outcome="client-closed"}'), closedBefore + 1)
    const again = await readAll(await open(worker.httpUrl, path, '127.0.0.4'))
    assert.equal(again.status, 200)
    assert.ok(again.complete, 'the same client gets a whole CAR again')
    assert.equal(again.blocks.length, 33)
    // A keep-alive connection (fetch's) frees the slot when the response ends, not when the connection does.
    const kept = await fetch(`${worker.httpUrl}${path}`, { headers: { accept: 'application/vnd.ipld.car' } })
    assert.equal((await kept.arrayBuffer()).byteLength > 32 * MiB, true)
    await waitFor('the keep-alive response\'s slot to be freed', async () => metricValue(await metrics(), 'pharos_gateway_car_streams') === 0)
    assert.equal(metricValue(await metrics(), 'pharos_gateway_car_responses_total{outcome="complete"}'), 2)
  })
})
