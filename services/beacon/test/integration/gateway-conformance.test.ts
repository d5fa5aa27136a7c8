import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { createVerifiedFetchWithHelia } from '@helia/verified-fetch'
import type { VerifiedFetch } from '@helia/verified-fetch'
import { withHTTP } from '@helia/http'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { MemoryBlockstore } from 'blockstore-core'
import { createHeliaLight } from 'helia'
import type { Helia } from 'helia'
import { UnixFS } from 'ipfs-unixfs'
import { exporter, walkPath } from 'ipfs-unixfs-exporter'
import { importer } from 'ipfs-unixfs-importer'
import type { ImporterOptions } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { resolvePath } from '../../src/storage/dag-path.ts'
import type { PgBlockstore } from '../../src/storage/pg-blockstore.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { metricValue, testConfig, testLogger, verifyCar } from '../helpers/storage.ts'
import type { VerifiedCar } from '../helpers/storage.ts'

/**
 * The trustless gateway against the spec (issue 20, item 2), one worker on Postgres with
 * small UnixFS DAGs put straight into its blockstore (a plain directory tree, HAMT-sharded
 * directories at fanouts 256 and 16, a dag-cbor document linking into them): content
 * paths (HAMT shards included) for raw and CAR responses with the spec's dag-scope
 * semantics, entity-bytes, the probe and identity CIDs, If-None-Match, Accept q-values and
 * the CAR parameters it cannot send, Content-Location; and @helia/verified-fetch with this
 * worker as its only gateway. The expected block lists follow the gateway-conformance
 * suite's trustless CAR tests (ipfs/gateway-conformance, tests/trustless_gateway_car_test.go).
 */

const CAR_TYPE = 'application/vnd.ipld.car; version=1; order=dfs; dups=n'
const RAW_TYPE = 'application/vnd.ipld.raw'
const CHUNK = 256
/** The conformance suite's multiblock.txt: four 256-byte chunks and a 2-byte one. */
const MULTIBLOCK = Uint8Array.from({ length: 4 * CHUNK + 2 }, (_, i) => (i * 7 + 3) % 251)

interface Tree {
  root: CID
  sub: CID
  hello: CID
  multi: CID
  /** multiblock.bin's raw leaves, in file order. */
  leaves: CID[]
  sharded: CID
  shardedNames: string[]
  narrow: CID
  narrowNames: string[]
  document: CID
}

async function importTo (store: PgBlockstore, entries: Array<{ path: string, content: Uint8Array }>, options: ImporterOptions = {}): Promise<Map<string, CID>> {
  const cids = new Map<string, CID>()
  const source = entries.map((entry) => ({ path: entry.path, content: entry.content }))
  for await (const entry of importer(source, store, { cidVersion: 1, rawLeaves: true, chunker: fixedSize({ chunkSize: CHUNK }), ...options })) cids.set(entry.path ?? '', entry.cid)
  return cids
}

function must (cids: Map<string, CID>, path: string): CID {
  const cid = cids.get(path)
  assert.ok(cid !== undefined, `imported ${path}`)
  return cid
}

async function putBlock (store: PgBlockstore, code: number, bytes: Uint8Array): Promise<CID> {
  const cid = CID.createV1(code, await sha256.digest(bytes))
  await store.put(cid, bytes)
  return cid
}

/** A UnixFS directory block linking `entries` (sorted by name, as UnixFS wants). */
async function directory (store: PgBlockstore, entries: Record<string, CID>): Promise<CID> {
  const Links = Object.keys(entries).sort().map((name) => ({ Name: name, Hash: entries[name] as CID }))
  return await putBlock(store, dagPb.code, dagPb.encode({ Data: new UnixFS({ type: 'directory' }).marshal(), Links }))
}

async function buildTree (store: PgBlockstore): Promise<Tree> {
  const plain = await importTo(store, [
    { path: 'sub/hello.txt', content: new TextEncoder().encode('hello from a sub directory\n') },
    { path: 'sub/multiblock.bin', content: MULTIBLOCK }
  ])
  const shardedNames = Array.from({ length: 600 }, (_, i) => `entry-${i}.txt`)
  const sharded = await importTo(store, [
    ...shardedNames.map((name) => ({ path: `sharded/${name}`, content: new TextEncoder().encode(`entry ${name}\n`) })),
    { path: 'sharded/multiblock.bin', content: MULTIBLOCK }
  ], { shardSplitThresholdBytes: 1 })
  shardedNames.push('multiblock.bin')
  const narrowNames = Array.from({ length: 80 }, (_, i) => `n${i}`)
  const narrow = await importTo(store, narrowNames.map((name) => ({ path: `narrow/${name}`, content: new TextEncoder().encode(name) })), { shardSplitThresholdBytes: 1, shardFanoutBits: 4 })
  const sub = must(plain, 'sub')
  const multi = must(plain, 'sub/multiblock.bin')
  const multiNode = dagPb.decode(await store.getBytes(multi))
  const document = await putBlock(store, dagCbor.code, dagCbor.encode({ title: 'a dag-cbor document', files: { single: must(plain, 'sub/hello.txt'), list: [sub] } }))
  const root = await directory(store, { sub, sharded: must(sharded, 'sharded'), narrow: must(narrow, 'narrow'), 'document.cbor': document })
  return {
    root,
    sub,
    hello: must(plain, 'sub/hello.txt'),
    multi,
    leaves: multiNode.Links.map((link) => link.Hash),
    sharded: must(sharded, 'sharded'),
    shardedNames,
    narrow: must(narrow, 'narrow'),
    narrowNames,
    document
  }
}

/** The CIDs of a CAR body, in order, every block checked against its CID. */
async function carBlocks (response: Response): Promise<VerifiedCar> {
  assert.equal(response.status, 200, `CAR request: ${response.status} ${response.status === 200 ? '' : await response.clone().text()}`)
  assert.equal(response.headers.get('content-type'), CAR_TYPE)
  return await verifyCar(new Uint8Array(await response.arrayBuffer()))
}

const ids = (car: VerifiedCar): string[] => car.blocks.map((block) => block.cid.toString())
const strings = (cids: CID[]): string[] => cids.map(String)

async function blockstoreOf (car: VerifiedCar): Promise<MemoryBlockstore> {
  const store = new MemoryBlockstore()
  for (const block of car.blocks) await store.put(block.cid, block.bytes)
  return store
}

async function failure (response: Response): Promise<{ status: number, reason: string, details: string }> {
  const body = await response.json() as { error: { reason: string, details: string } }
  return { status: response.status, reason: body.error.reason, details: body.error.details }
}

describe('trustless gateway conformance (Postgres)', () => {
  let worker: Worker
  let tree: Tree
  const url = (path: string): string => `${worker.httpUrl}${path}`
  const get = async (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Response> => await fetch(url(path), { method, headers })
  const car = async (path: string): Promise<VerifiedCar> => await carBlocks(await get(path, { accept: 'application/vnd.ipld.car' }))

  before(async () => {
    worker = await startWorker(await testConfig({ DATABASE_URL: await createTestDatabase('gateway_conformance') }), testLogger())
    tree = await buildTree(worker.storage.blockstore)
  })
  after(async () => { await worker?.stop() })

  describe('path resolution', () => {
    it('resolves every entry of HAMT-sharded directories (fanout 256 with sub-shards, and 16) as the importer placed them', async () => {
      const getBytes = async (cid: CID): Promise<Uint8Array> => await worker.storage.blockstore.getBytes(cid)
      let crossedSubShards = 0
      for (const [dir, names] of [[tree.sharded, tree.shardedNames], [tree.narrow, tree.narrowNames]] as const) {
        for (const name of names) {
          const resolved = await resolvePath(getBytes, dir, [name])
          // The reference: ipfs-unixfs-exporter's own walk of the same directory.
          let expected: CID | undefined
          for await (const entry of walkPath(`${dir.toString()}/${name}`, worker.storage.blockstore)) expected = entry.cid
          assert.equal(resolved.terminal.cid.toString(), expected?.toString(), name)
          if (resolved.blocks.length > 2) crossedSubShards++
        }
      }
      assert.ok(crossedSubShards > 50, `${crossedSubShards} entries sit in sub-shards: the nested case is covered`)
    })

    it('serves the raw block a path ends at, through a directory, a HAMT and a dag-cbor document, with X-Ipfs-Roots', async () => {
      const hello = await get(`/ipfs/${tree.root.toString()}/sub/hello.txt`, { accept: RAW_TYPE })
      assert.equal(hello.status, 200)
      assert.equal(hello.headers.get('content-type'), RAW_TYPE)
      assert.deepEqual(new Uint8Array(await hello.arrayBuffer()), await worker.storage.blockstore.getBytes(tree.hello))
      assert.equal(hello.headers.get('etag'), `"${tree.hello.toString()}.raw"`)
      assert.equal(hello.headers.get('x-ipfs-roots'), strings([tree.root, tree.sub, tree.hello]).join(','))
      assert.equal(hello.headers.get('x-ipfs-path'), `/ipfs/${tree.root.toString()}/sub/hello.txt`)

      const name = 'entry-321.txt'
      const entry = await get(`/ipfs/${tree.root.toString()}/sharded/${name}?format=raw`)
      assert.equal(entry.status, 200)
      assert.equal(new TextDecoder().decode(await entry.arrayBuffer()), `entry ${name}\n`)

      const viaCbor = await get(`/ipfs/${tree.root.toString()}/document.cbor/files/single?format=raw`)
      assert.equal(viaCbor.status, 200)
      assert.equal(viaCbor.headers.get('etag'), `"${tree.hello.toString()}.raw"`)
      const viaList = await get(`/ipfs/${tree.document.toString()}/files/list/0/hello.txt?format=raw`)
      assert.equal(viaList.headers.get('etag'), `"${tree.hello.toString()}.raw"`)

      // A trailing slash is the directory itself, as it is without one.
      const slash = await get(`/ipfs/${tree.root.toString()}/`, { accept: RAW_TYPE })
      assert.equal(slash.status, 200)
      assert.deepEqual(new Uint8Array(await slash.arrayBuffer()), await worker.storage.blockstore.getBytes(tree.root))
      const percent = await get(`/ipfs/${tree.root.toString()}/%73ub/hello%2Etxt?format=raw`)
      assert.equal(percent.headers.get('etag'), `"${tree.hello.toString()}.raw"`, 'segments are percent-decoded')
    })

    it('tells a path that names nothing (404 PATH_NOT_FOUND) from content not held (404 NOT_FOUND), and refuses . and ..', async () => {
      for (const path of [`/ipfs/${tree.root.toString()}/sub/no-such-file`, `/ipfs/${tree.root.toString()}/sharded/no-such-entry`, `/ipfs/${tree.root.toString()}/sub/hello.txt/deeper`, `/ipfs/${tree.document.toString()}/title/more`]) {
        for (const format of ['raw', 'car']) {
          const refused = await failure(await get(`${path}?format=${format}`))
          assert.equal(refused.status, 404, path)
          assert.equal(refused.reason, 'PATH_NOT_FOUND', path)
        }
      }
      const unknown = CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode('never stored')))
      const notHeld = await failure(await get(`/ipfs/${unknown.toString()}/a/b?format=car`))
      assert.deepEqual([notHeld.status, notHeld.reason], [404, 'NOT_FOUND'])
      // fetch() would resolve the dot segments itself: send the path as it is.
      for (const dots of ['..', '.', '%2E%2E']) {
        const status = await new Promise<number | undefined>((resolve, reject) => {
          const { hostname, port } = new URL(worker.httpUrl)
          httpRequest({ hostname, port, path: `/ipfs/${tree.root.toString()}/sub/${dots}/sub?format=raw` }, (response) => { response.resume(); resolve(response.statusCode) }).once('error', reject).end()
        })
        assert.equal(status, 400, dots)
      }
    })
  })

  describe('CAR dag-scope with paths', () => {
    it('all (the default): the path blocks, then the whole DAG at its end, depth-first', async () => {
      const file = await car(`/ipfs/${tree.root.toString()}/sub/multiblock.bin`)
      assert.deepEqual(file.roots.map(String), [tree.root.toString()])
      assert.deepEqual(ids(file), strings([tree.root, tree.sub, tree.multi, ...tree.leaves]))
      const dir = await car(`/ipfs/${tree.root.toString()}/sub?dag-scope=all`)
      assert.deepEqual(ids(dir), strings([tree.root, tree.sub, tree.hello, tree.multi, ...tree.leaves]))
    })

    it('block: the path blocks and the block at its end, for a directory and a file', async () => {
      assert.deepEqual(ids(await car(`/ipfs/${tree.root.toString()}/sub?dag-scope=block`)), strings([tree.root, tree.sub]))
      assert.deepEqual(ids(await car(`/ipfs/${tree.root.toString()}/sub/multiblock.bin?dag-scope=block`)), strings([tree.root, tree.sub, tree.multi]))
    })

    it('entity: a directory without its entries, a file whole, a HAMT with its shards only, dag-cbor without its links', async () => {
      assert.deepEqual(ids(await car(`/ipfs/${tree.root.toString()}/sub?dag-scope=entity`)), strings([tree.root, tree.sub]))
      assert.deepEqual(ids(await car(`/ipfs/${tree.root.toString()}/sub/multiblock.bin?dag-scope=entity`)), strings([tree.root, tree.sub, tree.multi, ...tree.leaves]))
      assert.deepEqual(ids(await car(`/ipfs/${tree.root.toString()}/document.cbor?dag-scope=entity`)), strings([tree.root, tree.document]))
      const hamt = await car(`/ipfs/${tree.root.toString()}/sharded?dag-scope=entity`)
      assert.deepEqual(ids(hamt).slice(0, 2), strings([tree.root, tree.sharded]))
      for (const block of hamt.blocks.slice(1)) {
        assert.equal(UnixFS.unmarshal(dagPb.decode(block.bytes).Data ?? new Uint8Array()).type, 'hamt-sharded-directory', 'only shard blocks')
      }
      assert.ok(hamt.blocks.length > 2, 'the sub-shards came too')
      // Enough to list the directory from the CAR alone.
      const listing = await exporter(tree.sharded, await blockstoreOf(hamt))
      assert.equal(listing.type, 'directory')
      let listed = 0
      for await (const _ of listing.entries()) listed++
      assert.equal(listed, tree.shardedNames.length)
    })

    it('through a HAMT: every shard block on the way, so the path verifies from the CAR alone (fanouts 256 and 16)', async () => {
      const getBytes = async (cid: CID): Promise<Uint8Array> => await worker.storage.blockstore.getBytes(cid)
      for (const [dirName, dir, names] of [['sharded', tree.sharded, tree.shardedNames], ['narrow', tree.narrow, tree.narrowNames]] as const) {
        // An entry in a sub-shard, two shard levels below the directory at least.
        let name: string | undefined
        for (const candidate of names) if ((await resolvePath(getBytes, dir, [candidate])).blocks.length > 2) { name = candidate; break }
        assert.ok(name !== undefined)
        const scoped = await car(`/ipfs/${tree.root.toString()}/${dirName}/${name}?dag-scope=block`)
        const store = await blockstoreOf(scoped)
        let end: CID | undefined
        for await (const entry of walkPath(`${tree.root.toString()}/${dirName}/${name}`, store)) end = entry.cid
        assert.equal(scoped.blocks.at(-1)?.cid.toString(), end?.toString(), 'the entry comes last')
        assert.deepEqual(ids(scoped).slice(0, 2), strings([tree.root, dir]))
        const between = scoped.blocks.slice(2, -1)
        assert.ok(between.length >= 1, `${dirName}: the sub-shards crossed are sent`)
        for (const block of between) assert.equal(UnixFS.unmarshal(dagPb.decode(block.bytes).Data ?? new Uint8Array()).type, 'hamt-sharded-directory')
      }
      // The whole of a multi-block file in a HAMT.
      const file = await car(`/ipfs/${tree.root.toString()}/sharded/multiblock.bin`)
      assert.deepEqual(ids(file).slice(-6), strings([tree.multi, ...tree.leaves]))
    })
  })

  describe('entity-bytes', () => {
    const ranged = async (range: string, path = `/ipfs/${tree.multi.toString()}`): Promise<VerifiedCar> => await car(`${path}?format=car&dag-scope=entity&entity-bytes=${range}`)

    it('sends only the blocks that hold the range (the conformance suite\'s cases)', async () => {
      const [l0, l1, l2, l3, l4] = tree.leaves as [CID, CID, CID, CID, CID]
      assert.deepEqual(ids(await ranged('0:*')), strings([tree.multi, ...tree.leaves]))
      assert.deepEqual(ids(await ranged('512:*')), strings([tree.multi, l2, l3, l4]))
      assert.deepEqual(ids(await ranged('512:1023')), strings([tree.multi, l2, l3]))
      assert.deepEqual(ids(await ranged('512:-256')), strings([tree.multi, l2, l3]))
      assert.deepEqual(ids(await ranged('-5:*')), strings([tree.multi, l3, l4]))
      assert.deepEqual(ids(await ranged('-9999:*')), strings([tree.multi, ...tree.leaves]))
      assert.deepEqual(ids(await ranged('-9999:-3')), strings([tree.multi, l0, l1, l2, l3]))
      assert.deepEqual(ids(await ranged('0:0')), strings([tree.multi, l0]))
      // Zero-length: as dag-scope=block.
      assert.deepEqual(ids(await ranged('500:-600')), strings([tree.multi]))
      // After a path: the path blocks first. On a directory the range is ignored (dag-scope=entity).
      assert.deepEqual(ids(await ranged('300:700', `/ipfs/${tree.root.toString()}/sub/multiblock.bin`)), strings([tree.root, tree.sub, tree.multi, l1, l2]))
      assert.deepEqual(ids(await ranged('0:10', `/ipfs/${tree.root.toString()}/sub`)), strings([tree.root, tree.sub]))
      // entity-bytes alone implies dag-scope=entity.
      assert.deepEqual(ids(await car(`/ipfs/${tree.multi.toString()}?entity-bytes=0:0`)), strings([tree.multi, l0]))
    })

    it('needs no block outside the range, and serves shared subtrees for every part of the range', async () => {
      const store = worker.storage.blockstore
      // Its own bytes: a leaf shared with the files above must stay.
      const head = (await importTo(store, [{ path: 'missing-tail.bin', content: MULTIBLOCK.map((byte) => byte ^ 0x55) }])).get('missing-tail.bin') as CID
      const leaves = dagPb.decode(await store.getBytes(head)).Links.map((link) => link.Hash)
      // A copy whose last leaf is gone: a range before it is still served whole.
      const tail = leaves.at(-1) as CID
      await store.delete(tail)
      assert.equal((await ranged('0:1000', `/ipfs/${head.toString()}`)).blocks.length, 5)

      // 64 equal chunks, two children a node: every intermediate node is shared by the file.
      const repeated = new Uint8Array(64 * CHUNK).fill(7)
      const file = (await importTo(store, [{ path: 'repeated.bin', content: repeated }], { layout: balanced({ maxChildrenPerNode: 2 }) })).get('repeated.bin') as CID
      for (const [from, to] of [[0, 64 * CHUNK - 1], [100, 5000], [CHUNK * 3 - 1, CHUNK * 40 + 3], [CHUNK * 63, CHUNK * 64 - 1]] as Array<[number, number]>) {
        const scoped = await ranged(`${from}:${to}`, `/ipfs/${file.toString()}`)
        const entry = await exporter(file, await blockstoreOf(scoped))
        assert.equal(entry.type, 'file')
        const chunks: Uint8Array[] = []
        for await (const chunk of entry.content({ offset: from, length: to - from + 1 })) chunks.push(chunk)
        assert.deepEqual(new Uint8Array(Buffer.concat(chunks)), repeated.subarray(from, to + 1), `${from}:${to} reads back from the CAR alone`)
        assert.equal(new Set(ids(scoped)).size, scoped.blocks.length, 'no block twice (dups=n)')
      }
    })

    it('gives each range its own ETag', async () => {
      const tags = new Set<string | null>()
      for (const query of ['', '&entity-bytes=0:*', '&entity-bytes=0:100', '&entity-bytes=-5:*']) {
        const response = await get(`/ipfs/${tree.multi.toString()}?format=car&dag-scope=entity${query}`)
        tags.add(response.headers.get('etag'))
        await response.arrayBuffer()
      }
      assert.equal(tags.size, 4)
      assert.ok(![...tags].includes(null))
    })

    it('refuses bad values with 400 and the reason', async () => {
      for (const value of ['abc', '5:2', '-2:-5', '1:2:3', 'x:*', '1.5:3', ':', '0:', '99999999999999999:*']) {
        const refused = await failure(await get(`/ipfs/${tree.multi.toString()}?format=car&entity-bytes=${encodeURIComponent(value)}`))
        assert.deepEqual([refused.status, refused.reason], [400, 'BAD_REQUEST'], value)
        assert.match(refused.details, /^entity-bytes=/, value)
      }
      const scope = await failure(await get(`/ipfs/${tree.multi.toString()}?format=car&dag-scope=all&entity-bytes=0:10`))
      assert.equal(scope.status, 400)
      assert.match(scope.details, /implies dag-scope=entity/)
      const past = await failure(await get(`/ipfs/${tree.multi.toString()}?format=car&entity-bytes=5000:*`))
      assert.equal(past.status, 400)
      assert.match(past.details, /past the end of the 1026-byte file/)
    })
  })

  describe('probe and identity CIDs', () => {
    it('answers GET and HEAD /ipfs/bafkqaaa 200: an empty raw block, a CAR whose root is bafkqaaa and no blocks', async () => {
      for (const request of [{ path: '/ipfs/bafkqaaa?format=raw', headers: {} }, { path: '/ipfs/bafkqaaa', headers: { accept: RAW_TYPE } }] as Array<{ path: string, headers: Record<string, string> }>) {
        const response = await get(request.path, request.headers)
        assert.equal(response.status, 200)
        assert.equal(response.headers.get('content-type'), RAW_TYPE)
        assert.equal((await response.arrayBuffer()).byteLength, 0)
        assert.equal((await get(request.path, request.headers, 'HEAD')).status, 200)
      }
      for (const request of [{ path: '/ipfs/bafkqaaa?format=car', headers: {} }, { path: '/ipfs/bafkqaaa', headers: { accept: 'application/vnd.ipld.car' } }] as Array<{ path: string, headers: Record<string, string> }>) {
        const probe = await carBlocks(await get(request.path, request.headers))
        assert.deepEqual(probe.roots.map(String), ['bafkqaaa'])
        assert.equal(probe.blocks.length, 0, 'identity blocks are never sent')
        assert.equal((await get(request.path, request.headers, 'HEAD')).status, 200)
      }
    })

    it('answers another identity CID from the CID itself', async () => {
      const bytes = new TextEncoder().encode('inline bytes')
      const inline = CID.createV1(raw.code, identity.digest(bytes))
      const response = await get(`/ipfs/${inline.toString()}?format=raw`)
      assert.equal(response.status, 200)
      assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes)
      const scoped = await carBlocks(await get(`/ipfs/${inline.toString()}?format=car`))
      assert.deepEqual([scoped.roots.map(String), scoped.blocks.length], [[inline.toString()], 0])
    })
  })

  describe('If-None-Match', () => {
    it('answers 304 without a body for a matching ETag (raw, raw by path, CAR; weak and * too), 200 otherwise', async () => {
      const streams = async (): Promise<number> => metricValue(await (await fetch(url('/metrics'))).text(), 'pharos_gateway_car_responses_total{outcome="complete"}')
      for (const path of [`/ipfs/${tree.hello.toString()}?format=raw`, `/ipfs/${tree.root.toString()}/sub/hello.txt?format=raw`, `/ipfs/${tree.root.toString()}/sub?format=car&dag-scope=entity`, `/ipfs/${tree.multi.toString()}?format=car&entity-bytes=0:10`]) {
        const first = await get(path)
        assert.equal(first.status, 200)
        await first.arrayBuffer()
        const etag = first.headers.get('etag')
        assert.ok(etag !== null && etag.startsWith('"'), path)
        const completeBefore = await streams()
        for (const condition of [etag, `W/${etag}`, `"something-else", ${etag}`, '*']) {
          const again = await get(path, { 'if-none-match': condition })
          assert.equal(again.status, 304, `${path} with If-None-Match: ${condition}`)
          assert.equal(again.headers.get('etag'), etag)
          assert.equal(again.headers.get('cache-control'), 'public, max-age=29030400, immutable')
          assert.equal((await again.arrayBuffer()).byteLength, 0)
        }
        assert.equal(await streams(), completeBefore, 'a 304 streams no CAR')
        const other = await get(path, { 'if-none-match': '"bafy-something-else.raw"' })
        assert.equal(other.status, 200)
        await other.arrayBuffer()
      }
      // Nothing held, nothing to match: still 404.
      const unknown = CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode('not here either')))
      assert.equal((await get(`/ipfs/${unknown.toString()}?format=raw`, { 'if-none-match': '*' })).status, 404)
    })
  })

  describe('Accept and the CAR parameters', () => {
    it('honours q-values: the best type this gateway can send wins', async () => {
      const cases: Array<[string, string]> = [
        ['application/vnd.ipld.car;q=0.5, application/vnd.ipld.raw;q=0.9', RAW_TYPE],
        ['application/vnd.ipld.raw;q=0.1, application/vnd.ipld.car', CAR_TYPE],
        ['application/vnd.ipld.car; dups=y, application/vnd.ipld.raw; q=0.2', RAW_TYPE],
        ['application/vnd.ipld.car; version=2; q=1, application/vnd.ipld.car; version=1; q=0.3', CAR_TYPE],
        ['text/html, application/vnd.ipld.raw;q=0.01', RAW_TYPE],
        ['application/vnd.ipld.car; order=unk', CAR_TYPE]
      ]
      for (const [accept, type] of cases) {
        const response = await get(`/ipfs/${tree.hello.toString()}`, { accept })
        assert.equal(response.status, 200, accept)
        assert.equal(response.headers.get('content-type'), type, accept)
        await response.arrayBuffer()
      }
    })

    it('answers 406 when nothing in Accept can be sent, 400 with no Accept and no format', async () => {
      for (const accept of ['text/html', 'application/vnd.ipld.raw;q=0', 'application/vnd.ipld.car; dups=y', 'application/vnd.ipld.car; version=2', 'application/vnd.ipld.car; order=foo', '*/*']) {
        const refused = await failure(await get(`/ipfs/${tree.hello.toString()}`, { accept }))
        assert.deepEqual([refused.status, refused.reason], [406, 'NOT_ACCEPTABLE'], accept)
      }
      const withFormat = await failure(await get(`/ipfs/${tree.hello.toString()}?format=car`, { accept: 'application/vnd.ipld.car; dups=y' }))
      assert.equal(withFormat.status, 406, '?format=car cannot override what Accept says the client reads')
      const bare = await fetch(url(`/ipfs/${tree.hello.toString()}`), { headers: { accept: '' } })
      assert.equal(bare.status, 400)
    })

    it('refuses car-dups=y, car-version=2 and an unknown car-order with 400; takes car-order=unk and car-dups=n', async () => {
      for (const query of ['car-dups=y', 'car-version=2', 'car-order=foo', 'car-order=']) {
        const refused = await failure(await get(`/ipfs/${tree.hello.toString()}?format=car&${query}`))
        assert.deepEqual([refused.status, refused.reason], [400, 'BAD_REQUEST'], query)
        assert.match(refused.details, /^car-/)
      }
      for (const query of ['car-order=unk', 'car-dups=n&car-version=1&car-order=dfs']) {
        const response = await get(`/ipfs/${tree.hello.toString()}?format=car&${query}`, { accept: 'application/vnd.ipld.car; dups=y' })
        assert.equal(response.status, 200, `${query}: the query parameters take precedence over Accept's`)
        assert.equal(response.headers.get('content-type'), CAR_TYPE)
        await response.arrayBuffer()
      }
    })
  })

  describe('Content-Location', () => {
    it('names the URL with ?format= when Accept chose the format, or disagrees with ?format=', async () => {
      const path = `/ipfs/${tree.root.toString()}/sub`
      const fromAccept = await get(path, { accept: RAW_TYPE })
      assert.equal(fromAccept.headers.get('content-location'), `${path}?format=raw`)
      await fromAccept.arrayBuffer()
      const kept = await get(`${path}?dag-scope=entity`, { accept: 'application/vnd.ipld.car' })
      assert.equal(kept.headers.get('content-location'), `${path}?dag-scope=entity&format=car`)
      await kept.arrayBuffer()
      const disagreeing = await get(`${path}?format=car`, { accept: RAW_TYPE })
      assert.equal(disagreeing.headers.get('content-location'), `${path}?format=car`)
      await disagreeing.arrayBuffer()
      for (const [query, accept] of [['?format=raw', RAW_TYPE], ['?format=car', undefined]] as const) {
        const same = await get(`${path}${query}`, accept === undefined ? {} : { accept })
        assert.equal(same.headers.get('content-location'), null, `${query} with Accept ${accept ?? 'none'}`)
        await same.arrayBuffer()
      }
      const notModified = await get(path, { accept: RAW_TYPE, 'if-none-match': fromAccept.headers.get('etag') ?? '' })
      assert.equal(notModified.status, 304)
      assert.equal(notModified.headers.get('content-location'), `${path}?format=raw`, 'a 304 carries it too')
    })
  })

  describe('@helia/verified-fetch with this worker as its only gateway', () => {
    let helia: Helia
    let verifiedFetch: VerifiedFetch

    before(async () => {
      // No delegated routers, no libp2p: the worker is the one gateway asked for every block.
      helia = withHTTP(createHeliaLight(), { delegatedRouters: [], recursiveGateways: [worker.httpUrl], allowInsecure: true, allowLocal: true })
      // helia 7.1's routing waits forever for providers when its only routers are fallback
      // routers (the gateway list): one router that knows no providers lets it move on to them.
      helia.addRouter({ name: 'knows-no-providers', findProviders: async function * () {} })
      await helia.start()
      verifiedFetch = await createVerifiedFetchWithHelia(helia)
    })
    after(async () => {
      await verifiedFetch?.stop()
      await helia?.stop()
    })

    it('fetches a file by path inside a directory, and through a HAMT shard', async () => {
      const file = await verifiedFetch(`ipfs://${tree.root.toString()}/sub/multiblock.bin`, { signal: AbortSignal.timeout(60_000) })
      assert.equal(file.status, 200)
      assert.deepEqual(new Uint8Array(await file.arrayBuffer()), MULTIBLOCK)
      const entry = await verifiedFetch(`ipfs://${tree.root.toString()}/sharded/entry-77.txt`, { signal: AbortSignal.timeout(60_000) })
      assert.equal(entry.status, 200)
      assert.equal(await entry.text(), 'entry entry-77.txt\n')
    })

    it('fetches a byte range (Range header)', async () => {
      const range = await verifiedFetch(`ipfs://${tree.root.toString()}/sub/multiblock.bin`, { headers: { range: 'bytes=300-700' }, signal: AbortSignal.timeout(60_000) })
      assert.equal(range.status, 206)
      assert.equal(range.headers.get('content-range'), `bytes 300-700/${MULTIBLOCK.byteLength}`)
      assert.deepEqual(new Uint8Array(await range.arrayBuffer()), MULTIBLOCK.subarray(300, 701))
    })
  })
})
