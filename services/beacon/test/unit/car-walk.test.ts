import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { randomBytes } from 'node:crypto'
import * as dagCbor from '@ipld/dag-cbor'
import { CarBlockIterator } from '@ipld/car'
import { varint } from 'multiformats'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { CarLimitError, CarWalk, UNCOPIED_BLOCK_BYTES } from '../../src/storage/car-stream.ts'
import type { CarLimits } from '../../src/storage/car-stream.ts'

/**
 * The gateway's CAR walk on its own (issue 17, item 1), over an in-memory blockstore: its
 * order is exactly a depth-first walk's (first occurrence of each block), and what it holds
 * never passes PHAROS_GATEWAY_CAR_MAX_BLOCKS, whatever the DAG's shape. The HTTP side, on
 * Postgres, is gateway-car-limits.test.ts.
 */

const LIMITS: CarLimits = { maxBlocks: 250_000, maxBytes: 1 << 30, maxDepth: 256, maxLinksPerBlock: 10_000 }

/** A seeded xorshift, so a failing shape can be replayed. */
function random (seed: number): () => number {
  let state = seed || 1
  return () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) / 2 ** 32
  }
}

interface Dag {
  root: CID
  blocks: Map<string, Uint8Array>
  links: Map<string, CID[]>
}

/**
 * A random DAG: `size` dag-cbor nodes, each listing some later nodes (repeats and shared
 * children included) and some raw leaves; node 0 is the root.
 */
async function randomDag (seed: number, size: number): Promise<Dag> {
  const next = random(seed)
  const blocks = new Map<string, Uint8Array>()
  const links = new Map<string, CID[]>()
  const leaves: CID[] = []
  for (let i = 0; i < 8; i++) {
    const bytes = new TextEncoder().encode(`leaf ${seed} ${i}`)
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    blocks.set(cid.toString(), bytes)
    leaves.push(cid)
  }
  const nodes: CID[] = []
  for (let i = size - 1; i >= 0; i--) {
    const out: CID[] = []
    const count = Math.floor(next() * 5)
    for (let j = 0; j < count; j++) {
      const later = nodes.length > 0 && next() < 0.6 ? nodes[Math.floor(next() * nodes.length)] : leaves[Math.floor(next() * leaves.length)]
      if (later !== undefined) out.push(later)
    }
    const bytes = dagCbor.encode({ i, out })
    const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes))
    blocks.set(cid.toString(), bytes)
    links.set(cid.toString(), out)
    nodes.push(cid)
  }
  return { root: nodes.at(-1) as CID, blocks, links }
}

/** The reference order: a recursive depth-first pre-order, each block at its first occurrence. */
function depthFirst (dag: Dag): string[] {
  const order: string[] = []
  const seen = new Set<string>()
  const visit = (cid: CID): void => {
    const key = cid.toString()
    if (seen.has(key)) return
    seen.add(key)
    order.push(key)
    for (const link of dag.links.get(key) ?? []) visit(link)
  }
  visit(dag.root)
  return order
}

/** Runs the walk; the CIDs it sent, its largest hold, and the limit that stopped it, if one did. */
async function walk (dag: Dag, limits: CarLimits): Promise<{ sent: string[], reads: number, peakHeld: number, stopped?: CarLimitError }> {
  let reads = 0
  const blockstore = {
    async getBytes (cid: CID): Promise<Uint8Array> {
      reads++
      const bytes = dag.blocks.get(cid.toString())
      if (bytes === undefined) throw new Error(`no block ${cid.toString()}`)
      return bytes
    }
  }
  const carWalk = new CarWalk(dag.root, 'all', limits)
  const sent: string[] = []
  let stopped: CarLimitError | undefined
  try {
    carWalk.begin(await blockstore.getBytes(dag.root))
    let header = true
    for await (const section of carWalk.stream(blockstore, new AbortController().signal)) {
      if (!header) sent.push(CID.decodeFirst(section.subarray(varint.decode(section)[1]))[0].toString())
      header = false
      assert.ok(carWalk.progress.held <= limits.maxBlocks, `holds ${carWalk.progress.held} CIDs, limit ${limits.maxBlocks}`)
    }
  } catch (err) {
    if (!(err instanceof CarLimitError)) throw err
    stopped = err
  }
  return { sent, reads, peakHeld: carWalk.progress.peakHeld, stopped }
}

describe('CAR walk', () => {
  it('sends random DAGs with shared and repeated links in exactly depth-first order, each block once', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const dag = await randomDag(seed, 30)
      const expected = depthFirst(dag)
      const { sent, reads, stopped } = await walk(dag, LIMITS)
      assert.equal(stopped, undefined, `seed ${seed}`)
      assert.deepEqual(sent, expected, `seed ${seed}`)
      assert.equal(reads, expected.length, `seed ${seed}: each block read once`)
    }
  })

  it('never holds more CIDs than maxBlocks, and never sends more blocks, when the limit cuts a DAG', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const dag = await randomDag(seed, 60)
      const needed = depthFirst(dag).length
      for (const maxBlocks of [1, 2, 5, Math.max(1, Math.floor(needed / 2))]) {
        const { sent, reads, peakHeld, stopped } = await walk(dag, { ...LIMITS, maxBlocks })
        assert.ok(peakHeld <= maxBlocks, `seed ${seed}, limit ${maxBlocks}: held ${peakHeld}`)
        assert.ok(sent.length <= maxBlocks && reads <= maxBlocks, `seed ${seed}, limit ${maxBlocks}: sent ${sent.length}, read ${reads}`)
        if (needed > maxBlocks) assert.equal(stopped?.key, 'gatewayCarMaxBlocks', `seed ${seed}, limit ${maxBlocks}: a DAG of ${needed} blocks is cut`)
        // What was sent is a prefix of the whole CAR: the client can tell where it was cut.
        assert.deepEqual(sent, depthFirst(dag).slice(0, sent.length))
      }
    }
  })

  it('does not send identity blocks, but walks their links', async () => {
    const leafBytes = new TextEncoder().encode('under an inline block')
    const leaf = CID.createV1(raw.code, await sha256.digest(leafBytes))
    const inline = CID.createV1(dagCbor.code, identity.digest(dagCbor.encode([leaf])))
    const rootBytes = dagCbor.encode([inline, leaf])
    const root = CID.createV1(dagCbor.code, await sha256.digest(rootBytes))
    const dag: Dag = { root, blocks: new Map([[root.toString(), rootBytes], [leaf.toString(), leafBytes]]), links: new Map() }
    const { sent } = await walk(dag, LIMITS)
    assert.deepEqual(sent, [root.toString(), leaf.toString()], 'the leaf once, reached through the inline block; the inline block itself not sent')
  })

  it('sends a large block as the very bytes the blockstore read, after a header of its own, and the CAR still parses', async () => {
    // A CAR of 1 MiB blocks to 4 clients at once copied each block into a new buffer with
    // its header: garbage that pushed the worker's RSS up (bench/pinning, issue 21 item 3).
    const large = new Uint8Array(randomBytes(UNCOPIED_BLOCK_BYTES * 4))
    const small = new TextEncoder().encode('a small leaf')
    const largeCid = CID.createV1(raw.code, await sha256.digest(large))
    const smallCid = CID.createV1(raw.code, await sha256.digest(small))
    const rootBytes = dagCbor.encode([largeCid, smallCid])
    const root = CID.createV1(dagCbor.code, await sha256.digest(rootBytes))
    const stored = new Map<string, Uint8Array>([[root.toString(), rootBytes], [largeCid.toString(), large], [smallCid.toString(), small]])
    const blockstore = {
      async getBytes (cid: CID): Promise<Uint8Array> {
        const bytes = stored.get(cid.toString())
        if (bytes === undefined) throw new Error(`no block ${cid.toString()}`)
        return bytes
      }
    }
    const carWalk = new CarWalk(root, 'all', LIMITS)
    carWalk.begin(rootBytes)
    const chunks: Uint8Array[] = []
    for await (const chunk of carWalk.stream(blockstore, new AbortController().signal)) chunks.push(chunk)
    assert.ok(chunks.includes(large), 'the large block went out as the buffer the blockstore returned, not a copy')
    assert.ok(!chunks.includes(small), 'a small block is sent in one chunk with its header')
    const parsed: Array<{ cid: string, bytes: Uint8Array }> = []
    for await (const block of await CarBlockIterator.fromBytes(Buffer.concat(chunks))) parsed.push({ cid: block.cid.toString(), bytes: block.bytes })
    assert.deepEqual(parsed.map((block) => block.cid), [root.toString(), largeCid.toString(), smallCid.toString()])
    assert.ok(Buffer.from(large).equals(parsed[1]?.bytes ?? new Uint8Array(0)), 'the large block arrived whole')
    assert.ok(Buffer.from(small).equals(parsed[2]?.bytes ?? new Uint8Array(0)), 'the small block arrived whole')
  })
})
