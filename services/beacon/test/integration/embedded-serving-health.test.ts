/**
 * An embedded worker stays responsive while peers pull blocks from it (issue 17 item 6).
 * With PGlite on the main thread every 1 MiB block read held the event loop for ~100 ms, and
 * peers pulling files made /healthz miss its probes; PGlite now runs in a worker thread.
 *
 * One embedded worker (PGlite) in this process, eight Helia peers on loopback each fetching a
 * file of 1 MiB blocks over Bitswap, an HTTP client fetching blocks from the gateway, and
 * /healthz probed throughout. The probes and the peers
 * share this process's event loop with the worker, so a stalled loop shows in every probe.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { threadId as mainThreadId } from 'node:worker_threads'
import { unixfs } from '@helia/unixfs'
import * as dagPb from '@ipld/dag-pb'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core'
import type { CID } from 'multiformats/cid'
import { Registry } from 'prom-client'
import { createStorageMetrics } from '../../src/pinning/storage-metrics.ts'
import { createBeaconHelia } from '../../src/storage/beacon-helia.ts'
import type { BeaconHelia } from '../../src/storage/beacon-helia.ts'
import type { PgliteThreadClient } from '../../src/storage/pglite-client.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { MiB, randomContent, sha256Hex, testConfig, testLogger } from '../helpers/storage.ts'

const PEERS = 8
const FILE_BYTES = 4 * MiB
/** Generous: a responsive worker answers in milliseconds; PGlite on the main thread missed it. */
const PROBE_BOUND_MS = 1000
const PROBE_EVERY_MS = 100

interface Probe { ok: boolean, ms: number, error?: string }

describe('embedded worker serving blocks', () => {
  let worker: Worker
  const peers: Array<{ node: ClientPeer, helia: BeaconHelia }> = []

  before(async () => {
    // The peers all dial from 127.0.0.1 at once.
    worker = await startWorker(await testConfig({ PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND: '100' }), testLogger())
  })
  after(async () => {
    for (const { node, helia } of peers) {
      await Promise.resolve(helia.stop()).catch(() => {})
      await Promise.resolve(node.stop()).catch(() => {})
    }
    await worker.stop()
  })

  async function probe (): Promise<Probe> {
    const started = performance.now()
    try {
      const response = await fetch(new URL('/healthz', worker.httpUrl), { signal: AbortSignal.timeout(PROBE_BOUND_MS) })
      await response.arrayBuffer()
      return { ok: response.status === 200, ms: performance.now() - started }
    } catch (err) {
      return { ok: false, ms: performance.now() - started, error: String(err) }
    }
  }

  it(`answers every /healthz probe within ${PROBE_BOUND_MS} ms while ${PEERS} peers pull ${FILE_BYTES / MiB} MiB each and the gateway serves blocks, reading them in the PGlite thread`, async () => {
    assert.equal(worker.mode, 'embedded')
    const fs = unixfs(worker.storage.helia)
    const files: Array<{ cid: CID, bytes: Uint8Array }> = []
    for (let i = 0; i < PEERS; i++) {
      const bytes = randomContent(FILE_BYTES)
      files.push({ cid: await fs.addBytes(bytes), bytes })
    }
    const address = worker.node.getMultiaddrs()[0] ?? assert.fail('the worker listens nowhere')
    for (let i = 0; i < PEERS; i++) {
      const node = await createClientPeer()
      const helia = createBeaconHelia({ libp2p: node, blockstore: new MemoryBlockstore(), log: testLogger(), metrics: createStorageMetrics(new Registry()) })
      await helia.start()
      await node.dial(multiaddr(address.toString()))
      peers.push({ node, helia })
    }
    const db = worker.db as Partial<PgliteThreadClient>
    const readBefore = db.stats?.().byteaBytes ?? 0

    const probes: Probe[] = []
    let pulling = true
    const probing = (async () => {
      while (pulling) {
        probes.push(await probe())
        await new Promise((resolve) => setTimeout(resolve, PROBE_EVERY_MS))
      }
    })()
    // The gateway's raw blocks: every leaf of two of the files, one request each.
    const leaves = (await Promise.all(files.slice(0, 2).map(async (file) => dagPb.decode(await worker.storage.blockstore.getBytes(file.cid)).Links.map((link) => link.Hash))))
      .flat()
    try {
      const gateway = Promise.all(leaves.map(async (leaf) => {
        const response = await fetch(new URL(`/ipfs/${leaf.toString()}?format=raw`, worker.httpUrl), { signal: AbortSignal.timeout(120_000) })
        assert.equal(response.status, 200)
        return (await response.arrayBuffer()).byteLength
      }))
      const fetched = await Promise.all(files.map(async (file, index) => {
        const chunks: Uint8Array[] = []
        const helia = peers[index]?.helia ?? assert.fail()
        for await (const chunk of unixfs(helia).cat(file.cid, { signal: AbortSignal.timeout(120_000) })) chunks.push(chunk)
        return Buffer.concat(chunks)
      }))
      for (const [index, file] of files.entries()) assert.equal(sha256Hex(fetched[index] ?? new Uint8Array()), sha256Hex(file.bytes))
      assert.equal((await gateway).reduce((sum, bytes) => sum + bytes, 0), 2 * FILE_BYTES, 'the gateway served every leaf')
    } finally {
      pulling = false
      await probing
    }

    const late = probes.filter((result) => !result.ok)
    assert.ok(probes.length >= 3, `only ${probes.length} probes ran while the peers pulled`)
    assert.equal(late.length, 0, `${late.length} of ${probes.length} /healthz probes failed or took over ${PROBE_BOUND_MS} ms: ${JSON.stringify(late.slice(0, 5))}`)

    // The blocks came out of PGlite's thread: the client the worker queries is the thread's,
    // and it handed over at least every byte the peers received.
    assert.ok(db.thread !== undefined && db.stats !== undefined, 'the embedded worker\'s storage is the PGlite thread client')
    assert.notEqual(db.thread.threadId, mainThreadId)
    const read = db.stats().byteaBytes - readBefore
    assert.ok(read >= (PEERS + 2) * FILE_BYTES, `the PGlite thread returned ${read} bytes of blocks; the peers and the gateway received ${(PEERS + 2) * FILE_BYTES}`)
  })
})
