import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { linksOf, MalformedBlockError, scanLinks, TooManyLinksError } from '../../src/storage/dag-links.ts'

/**
 * Link extraction (issue 17, item 11) reads each token of a block once, with no recursion:
 * nesting depth costs neither the call stack nor quadratic time, a block's cost is linear
 * in its size, and a block with more links than PHAROS_DAG_MAX_LINKS_PER_BLOCK is refused.
 * No timings here: the bench (bench/storage/dag-links.ts) measures CPU.
 */

async function leaf (i: number): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(`leaf ${i}`)))
}

async function cidOf (code: number, bytes: Uint8Array): Promise<CID> {
  return CID.createV1(code, await sha256.digest(bytes))
}

/** `depth` dag-cbor arrays of one item each, around one link: 0x81 per level, then the link. */
function nestedArrays (depth: number, link: CID): Uint8Array {
  const inner = dagCbor.encode(link)
  const bytes = new Uint8Array(depth + inner.length)
  bytes.fill(0x81, 0, depth)
  bytes.set(inner, depth)
  return bytes
}

/** `depth` dag-cbor maps {"a": …} around one link: 0xa1 0x61 0x61 per level. */
function nestedMaps (depth: number, link: CID): Uint8Array {
  const inner = dagCbor.encode(link)
  const bytes = new Uint8Array(depth * 3 + inner.length)
  for (let level = 0; level < depth; level++) bytes.set([0xa1, 0x61, 0x61], level * 3)
  bytes.set(inner, depth * 3)
  return bytes
}

/** Data-model nodes of a decoded value, counted the obvious (recursive) way: containers, map keys, scalars, a link once. */
function countNodes (value: unknown): number {
  if (CID.asCID(value) !== null || value === null || typeof value !== 'object' || value instanceof Uint8Array) return 1
  if (Array.isArray(value)) return 1 + value.reduce((sum: number, item) => sum + countNodes(item), 0)
  return 1 + Object.values(value).reduce((sum: number, item) => sum + 1 + countNodes(item), 0)
}

describe('dag-cbor link extraction', () => {
  it('extracts the link of a block nested 4,000 and 200,000 levels deep, reading each level once', async () => {
    const link = await leaf(1)
    for (const depth of [4_000, 200_000]) {
      for (const [shape, bytes, nodesPerLevel] of [['arrays', nestedArrays(depth, link), 1], ['maps', nestedMaps(depth, link), 2]] as const) {
        const scan = scanLinks(await cidOf(dagCbor.code, bytes), bytes, 10)
        assert.deepEqual(scan.links.map(String), [link.toString()], `${depth} nested ${shape}`)
        // Each level is one container (and for maps one key), plus the link: every node once.
        assert.equal(scan.nodes, depth * nodesPerLevel + 1, `${depth} nested ${shape}`)
      }
    }
  })

  it('extracts every link of a CID-dense 1 MiB block, in order, each node once', async () => {
    const links: CID[] = []
    for (let i = 0; links.length * 40 < 1024 * 1024; i++) links.push(await leaf(i))
    const bytes = dagCbor.encode({ links })
    assert.ok(bytes.length >= 1024 * 1024, `${bytes.length} bytes`)
    const scan = scanLinks(await cidOf(dagCbor.code, bytes), bytes, links.length)
    assert.equal(scan.links.length, links.length)
    assert.ok(scan.links.every((link, i) => link.equals(links[i])), 'the links in block order')
    // The map, its one key, the list, and each link.
    assert.equal(scan.nodes, 3 + links.length)
  })

  it('counts each data-model node once, as a recursive count of the decoded value does', async () => {
    const [a, b, c] = await Promise.all([leaf(1), leaf(2), leaf(3)])
    const value = { v: 1, author: new Uint8Array([1, 2, 3]), prev: a, params: { content: b, tags: ['x', 'y', { nested: [c, null, true, -5, 1.5] }] }, empty: {}, none: [] }
    const bytes = dagCbor.encode(value)
    const scan = scanLinks(await cidOf(dagCbor.code, bytes), bytes, 10)
    assert.equal(scan.nodes, countNodes(dagCbor.decode(bytes)))
    // Encoded order: dag-cbor sorts keys by length, so "prev" before "params", and in
    // params "tags" before "content".
    assert.deepEqual(scan.links.map(String), [a, c, b].map(String))
  })

  it('lists links in encoded (IPLD map) order, not the JavaScript order of integer-like keys', async () => {
    const [first, second] = await Promise.all([leaf(1), leaf(2)])
    // dag-cbor sorts keys by length first: "b" is encoded before "10". A JS object puts "10" first.
    const bytes = dagCbor.encode({ 10: second, b: first })
    assert.deepEqual(Object.keys(dagCbor.decode<Record<string, unknown>>(bytes)), ['10', 'b'])
    assert.deepEqual(linksOf(await cidOf(dagCbor.code, bytes), bytes, 10).map(String), [first, second].map(String))
  })

  it('hands out links that own their bytes, so a held link does not hold its block', async () => {
    const bytes = dagCbor.encode([await leaf(1), await leaf(2)])
    for (const link of linksOf(await cidOf(dagCbor.code, bytes), bytes, 10)) assert.notEqual(link.bytes.buffer, bytes.buffer)
    const pb = dagPb.encode(dagPb.prepare({ Links: [{ Hash: await leaf(3), Name: 'a' }] }))
    for (const link of linksOf(await cidOf(dagPb.code, pb), pb, 10)) assert.notEqual(link.bytes.buffer, pb.buffer)
  })

  it('refuses a block with more links than the cap, naming PHAROS_DAG_MAX_LINKS_PER_BLOCK', async () => {
    const links = await Promise.all(Array.from({ length: 101 }, async (_, i) => await leaf(i)))
    const blocks = [
      { code: dagCbor.code, bytes: dagCbor.encode({ links }) },
      { code: dagJson.code, bytes: dagJson.encode({ links }) },
      { code: dagPb.code, bytes: dagPb.encode(dagPb.prepare({ Links: links.map((Hash, i) => ({ Hash, Name: String(i) })) })) }
    ]
    for (const { code, bytes } of blocks) {
      const cid = await cidOf(code, bytes)
      assert.equal(linksOf(cid, bytes, 101).length, 101, 'at the cap: accepted')
      assert.throws(() => linksOf(cid, bytes, 100), (err: unknown) => {
        assert.ok(err instanceof TooManyLinksError, String(err))
        assert.equal(err.limit, 100)
        assert.match(err.message, /^PHAROS_DAG_MAX_LINKS_PER_BLOCK: block \S+ links more than 100 /)
        return true
      })
    }
    // One link repeated counts each time: it costs a decode each time.
    const repeated = dagCbor.encode(Array.from({ length: 101 }, () => links[0]))
    const repeatedCid = await cidOf(dagCbor.code, repeated)
    assert.throws(() => linksOf(repeatedCid, repeated, 100), TooManyLinksError)
  })

  it('refuses bytes that are not dag-cbor as MalformedBlockError, naming the block', async () => {
    const link = await leaf(1)
    const good = dagCbor.encode({ a: link })
    const bad = [
      good.subarray(0, good.length - 3), // truncated
      new Uint8Array([...good, 0x01]), // bytes after the value
      new Uint8Array([0xa1, 0x01, 0x02]), // a map key that is not a string
      new Uint8Array([0xd8, 0x2b, 0x01]), // tag 43
      new Uint8Array([0xd8, 0x2a, 0x42, 0x01, 0x02]), // tag 42 over bytes without the 0x00 prefix
      new Uint8Array([0x9f, 0x01, 0xff]), // indefinite length: not in dag-cbor
      new Uint8Array([0xff]), // a break with nothing to end
      new Uint8Array(0)
    ]
    for (const bytes of bad) {
      const cid = await cidOf(dagCbor.code, bytes)
      assert.throws(() => linksOf(cid, bytes, 10), (err: unknown) => {
        assert.ok(err instanceof MalformedBlockError, `${Buffer.from(bytes).toString('hex')}: ${String(err)}`)
        assert.ok(err.message.startsWith(`block ${cid.toString()} is not valid dag-cbor: `), err.message)
        return true
      })
    }
  })
})

describe('dag-json link extraction', () => {
  it('reads {"/": cid} links and {"/": {"bytes"}} bytes as dag-json does, at any depth', async () => {
    const [a, b] = await Promise.all([leaf(1), leaf(2)])
    const value = { a, data: new Uint8Array([1, 2, 3]), list: [b, 'x', { '/x': 1 }] }
    const bytes = dagJson.encode(value)
    const scan = scanLinks(await cidOf(dagJson.code, bytes), bytes, 10)
    assert.deepEqual(scan.links.map(String), [a, b].map(String))
    assert.equal(scan.nodes, countNodes(dagJson.decode(bytes)))

    const depth = 100_000
    const deep = new TextEncoder().encode(`${'['.repeat(depth)}{"/":"${a.toString()}"}${']'.repeat(depth)}`)
    const deepScan = scanLinks(await cidOf(dagJson.code, deep), deep, 10)
    assert.deepEqual(deepScan.links.map(String), [a.toString()])
    assert.equal(deepScan.nodes, depth + 1)
  })

  it('refuses a link form with other keys', async () => {
    const bytes = new TextEncoder().encode(`{"/":"${(await leaf(1)).toString()}","x":1}`)
    const cid = await cidOf(dagJson.code, bytes)
    assert.throws(() => linksOf(cid, bytes, 10), MalformedBlockError)
  })
})

describe('other codecs', () => {
  it('raw has no links; dag-pb lists its links in order', async () => {
    assert.deepEqual(linksOf(await leaf(0), new Uint8Array([1, 2, 3]), 0), [])
    const links = await Promise.all([leaf(1), leaf(2), leaf(1)])
    const pb = dagPb.encode(dagPb.prepare({ Links: links.map((Hash, i) => ({ Hash, Name: `n${i}` })) }))
    assert.deepEqual(linksOf(await cidOf(dagPb.code, pb), pb, 10).map(String), links.map(String))
  })
})
