import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { waitForValue } from '@pharos/testing/wait.ts'
import {
  createContentPeer, fileFromBlocks, httpClient, metricValue, MiB, pinningSpecValidator, randomContent,
  sha256Hex, testConfig, testLogger, verifyCar, waitForPin
} from '../helpers/storage.ts'
import type { ContentPeer, HttpCall } from '../helpers/storage.ts'

const TOKEN = 'alice-token-0123456789abcdef'

/**
 * One worker on Postgres and real libp2p peers on loopback: a peer's 10 MiB UnixFS file is
 * pinned through the Pinning Service API, then served over Bitswap and as a CAR after the
 * peer has gone; limits fail pins by name; a block corrupted in Postgres is never served.
 */
describe('pinning end to end (Postgres)', () => {
  let worker: Worker
  let call: HttpCall
  let validate: Awaited<ReturnType<typeof pinningSpecValidator>>
  const peers: ContentPeer[] = []
  const peer = async (): Promise<ContentPeer> => {
    const created = await createContentPeer()
    peers.push(created)
    return created
  }

  before(async () => {
    validate = await pinningSpecValidator()
    worker = await startWorker(await testConfig({
      DATABASE_URL: await createTestDatabase('pinning_e2e'),
      PHAROS_PIN_TOKENS: `alice:${TOKEN}`,
      PHAROS_PIN_MAX_BYTES: String(16 * MiB),
      PHAROS_PIN_MAX_DEPTH: '3',
      PHAROS_PIN_TIMEOUT_MS: '20000',
      PHAROS_PIN_STALL_TIMEOUT_MS: '3000',
      PHAROS_PIN_RETRY_BASE_MS: '200'
    }), testLogger())
    call = httpClient(worker.httpUrl, TOKEN)
  })

  after(async () => {
    await Promise.all(peers.map(async (p) => { await p.stop() }))
    await worker?.stop()
  })

  const metrics = async (): Promise<string> => await (await fetch(`${worker.httpUrl}/metrics`)).text()

  let fileCid: CID
  let file: Uint8Array

  it('pins a 10 MiB UnixFS file from the peer named as origin', async () => {
    const origin = await peer()
    file = randomContent(10 * MiB)
    fileCid = await origin.addFile(file)

    const added = await call('POST', '/pins', { cid: fileCid.toString(), name: 'ten-mebibytes.bin', origins: origin.multiaddrs(), meta: { app_id: 'e2e' } })
    assert.equal(added.status, 202, JSON.stringify(added.body))
    validate('PinStatus', added.body)
    assert.deepEqual(added.body.delegates, worker.node.getMultiaddrs().map(String))

    const pinned = await waitForPin(call, added.body.requestid)
    validate('PinStatus', pinned)
    assert.equal(pinned.status, 'pinned', JSON.stringify(pinned))
    assert.equal(pinned.pin.cid, fileCid.toString())

    // Every block of the DAG is stored and recorded as held by the pin.
    const { rows } = await worker.db.query<{ blocks: number, bytes: number }>(
      `SELECT count(*)::int8 AS blocks, sum(b.size)::int8 AS bytes FROM pin_blocks pb JOIN blocks b ON b.multihash = pb.multihash WHERE pb.pin_id = $1`,
      [pinned.requestid]
    )
    assert.ok((rows[0]?.bytes ?? 0) > 10 * MiB, `the pin holds ${JSON.stringify(rows[0])}`)
    assert.equal(pinned.info.dag_size, String(rows[0]?.bytes))
    // The origin was connected and held every block: each was asked of it alone, never of
    // every connected peer.
    const exposition = await metrics()
    assert.equal(metricValue(exposition, 'pharos_pin_blocks_fetched_total{from="origin"}'), Number(rows[0]?.blocks))
    assert.equal(metricValue(exposition, 'pharos_pin_blocks_fetched_total{from="any"}'), 0)
    await origin.stop()
  })

  it('serves the whole file over Bitswap to another peer after the origin went away', async () => {
    const before = metricValue(await metrics(), 'pharos_bitswap_blocks_served_total')
    const reader = await peer()
    await reader.node.dial(multiaddr(worker.node.getMultiaddrs()[0]?.toString() ?? ''))
    const fetched = await reader.catFile(fileCid, AbortSignal.timeout(30_000))
    assert.equal(sha256Hex(fetched), sha256Hex(file))
    const served = metricValue(await metrics(), 'pharos_bitswap_blocks_served_total') - before
    assert.ok(served >= 11, `Bitswap served ${served} blocks`)
  })

  it('serves the DAG over the gateway as a CAR whose every block and link verifies', async () => {
    const response = await fetch(`${worker.httpUrl}/ipfs/${fileCid.toString()}`, { headers: { accept: 'application/vnd.ipld.car' } })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'application/vnd.ipld.car; version=1; order=dfs; dups=n')
    const car = await verifyCar(new Uint8Array(await response.arrayBuffer()))
    assert.deepEqual(car.roots.map(String), [fileCid.toString()])
    assert.equal(car.blocks[0]?.cid.toString(), fileCid.toString(), 'the root comes first')
    assert.equal(sha256Hex(await fileFromBlocks(fileCid, car.blocks)), sha256Hex(file))

    const scoped = await verifyCar(new Uint8Array(await (await fetch(`${worker.httpUrl}/ipfs/${fileCid.toString()}?format=car&dag-scope=block`)).arrayBuffer()))
    assert.deepEqual(scoped.blocks.map((block) => block.cid.toString()), [fileCid.toString()])
    const entity = await verifyCar(new Uint8Array(await (await fetch(`${worker.httpUrl}/ipfs/${fileCid.toString()}?format=car&dag-scope=entity`)).arrayBuffer()))
    assert.equal(entity.blocks.length, car.blocks.length, 'a file entity is all of its blocks')

    const leaf = car.blocks.at(-1)
    assert.ok(leaf !== undefined)
    const raw = await fetch(`${worker.httpUrl}/ipfs/${leaf.cid.toString()}`, { headers: { accept: 'application/vnd.ipld.raw' } })
    assert.equal(raw.status, 200)
    assert.equal(raw.headers.get('content-type'), 'application/vnd.ipld.raw')
    assert.deepEqual(new Uint8Array(await raw.arrayBuffer()), leaf.bytes)

    const head = await fetch(`${worker.httpUrl}/ipfs/${leaf.cid.toString()}`, { method: 'HEAD', headers: { accept: 'application/vnd.ipld.raw' } })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), String(leaf.bytes.byteLength))
    assert.equal((await head.arrayBuffer()).byteLength, 0)
  })

  it('answers 404 for content it does not hold, without asking the network', async () => {
    const elsewhere = await peer()
    const cid = await elsewhere.addFile(randomContent(1000))
    // Even a connected peer that has the block is not asked: the gateway reads storage only.
    await elsewhere.node.dial(multiaddr(worker.node.getMultiaddrs()[0]?.toString() ?? ''))
    for (const accept of ['application/vnd.ipld.raw', 'application/vnd.ipld.car']) {
      const response = await fetch(`${worker.httpUrl}/ipfs/${cid.toString()}`, { headers: { accept } })
      assert.equal(response.status, 404)
      validate('Failure', await response.json())
    }
    assert.equal(await worker.storage.blockstore.has(cid), false)
    assert.equal((await fetch(`${worker.httpUrl}/ipfs/not-a-cid`, { headers: { accept: 'application/vnd.ipld.raw' } })).status, 400)
    assert.equal((await fetch(`${worker.httpUrl}/ipfs/${fileCid.toString()}`, { headers: { accept: 'text/html' } })).status, 406)
  })

  it('fails a pin over PHAROS_PIN_MAX_BYTES and names the limit', async () => {
    const origin = await peer()
    const big = await origin.addFile(randomContent(20 * MiB))
    const added = await call('POST', '/pins', { cid: big.toString(), origins: origin.multiaddrs() })
    const settled = await waitForPin(call, added.body.requestid)
    validate('PinStatus', settled)
    assert.equal(settled.status, 'failed')
    assert.match(settled.info.status_details, /^PHAROS_PIN_MAX_BYTES: /)
    const { rows } = await worker.db.query('SELECT 1 FROM pin_blocks WHERE pin_id = $1', [settled.requestid])
    assert.equal(rows.length, 0, 'a failed pin holds no blocks')
  })

  it('fails a pin deeper than PHAROS_PIN_MAX_DEPTH and names the limit', async () => {
    const origin = await peer()
    // A dag-cbor chain five links deep; the worker allows three.
    let prev: CID | null = null
    for (let seq = 0; seq < 6; seq++) {
      const bytes: Uint8Array = dagCbor.encode({ seq, prev })
      const cid: CID = CID.createV1(dagCbor.code, await sha256.digest(bytes))
      await origin.blockstore.put(cid, bytes)
      prev = cid
    }
    assert.ok(prev !== null)
    const added = await call('POST', '/pins', { cid: prev.toString(), origins: origin.multiaddrs() })
    const settled = await waitForPin(call, added.body.requestid)
    assert.equal(settled.status, 'failed')
    assert.match(settled.info.status_details, /^PHAROS_PIN_MAX_DEPTH: /)
  })

  it('gives up an attempt whose blocks stopped arriving (PHAROS_PIN_STALL_TIMEOUT_MS) and pins on the retry', async () => {
    // The origin holds the block but does not serve it until released: a want nobody answers.
    let release = (): void => {}
    const released = new Promise<void>((resolve) => { release = resolve })
    const stalling = await createContentPeer({ beforeRead: async () => { await released } })
    peers.push(stalling)
    const cid = await stalling.addFile(randomContent(64 * 1024))
    const added = await call('POST', '/pins', { cid: cid.toString(), origins: stalling.multiaddrs() })
    assert.equal(added.status, 202, JSON.stringify(added.body))
    const stalled = await waitForValue('the first attempt to be given up as stalled', 20_000, async () => {
      const { rows } = await worker.db.query<{ reason: string | null, attempts: number }>('SELECT failure_reason AS reason, attempts FROM pins WHERE id = $1', [added.body.requestid])
      return rows[0]?.reason?.startsWith('PHAROS_PIN_STALL_TIMEOUT_MS: ') === true ? rows[0] : undefined
    })
    assert.match(stalled.reason ?? '', /no block arrived for 3000 ms \(0 blocks/)
    release()
    const pinned = await waitForPin(call, added.body.requestid)
    assert.equal(pinned.status, 'pinned', JSON.stringify(pinned))
  })

  it('never serves a block whose bytes were corrupted in Postgres, over the gateway or Bitswap', async () => {
    const car = await verifyCar(new Uint8Array(await (await fetch(`${worker.httpUrl}/ipfs/${fileCid.toString()}?format=car`)).arrayBuffer()))
    const victim = car.blocks[3]
    assert.ok(victim !== undefined)
    const marker = new TextEncoder().encode('TAMPERED-BLOCK-'.repeat(64))
    await worker.db.query('UPDATE blocks SET data = $2 WHERE multihash = $1', [victim.cid.multihash.bytes, marker])
    const mismatches = metricValue(await metrics(), 'pharos_block_hash_mismatches_total')

    const raw = await fetch(`${worker.httpUrl}/ipfs/${victim.cid.toString()}`, { headers: { accept: 'application/vnd.ipld.raw' } })
    assert.equal(raw.status, 500)
    const failure = await raw.json() as { error: { reason: string } }
    validate('Failure', failure)
    assert.equal(failure.error.reason, 'BLOCK_HASH_MISMATCH')

    // The CAR is cut off before the bad block: the transfer fails and the bytes never appear.
    const response = await fetch(`${worker.httpUrl}/ipfs/${fileCid.toString()}`, { headers: { accept: 'application/vnd.ipld.car' } })
    assert.equal(response.status, 200)
    const received: Uint8Array[] = []
    await assert.rejects(async () => { for await (const chunk of response.body ?? []) received.push(chunk) })
    assert.equal(Buffer.concat(received).includes(Buffer.from(marker.subarray(0, 30))), false)

    // Bitswap: a peer asking for the block gets nothing, and the worker sends nothing.
    const servedBefore = metricValue(await metrics(), 'pharos_bitswap_blocks_served_total')
    const reader = await peer()
    await reader.node.dial(multiaddr(worker.node.getMultiaddrs()[0]?.toString() ?? ''))
    await assert.rejects(async () => { for await (const _ of reader.helia.blockstore.get(victim.cid, { signal: AbortSignal.timeout(3000) })) { /* drain */ } })
    assert.equal(await reader.blockstore.has(victim.cid), false)
    const after = await metrics()
    assert.equal(metricValue(after, 'pharos_bitswap_blocks_served_total'), servedBefore)
    // The raw and the CAR read each found the mismatch; Bitswap then already knew the block as corrupt.
    assert.equal(metricValue(after, 'pharos_block_hash_mismatches_total'), mismatches + 2)
  })
})
