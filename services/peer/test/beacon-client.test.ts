/**
 * The SDK against a scripted beacon (overlay driver plus scripted sync and key-exchange
 * answers): what it does when a beacon refuses, lags, lies or says nothing. Each test names
 * the beacon behaviour the SDK relies on; the real worker is exercised in cli-e2e.test.ts.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { encodeCbor, FEED_POST_ACTION, keyHashOf, openAllowList, signEntry } from '@pharos/protocol/log/index.ts'
import type { EntryBlock, EntryStatus, KnownHead } from '@pharos/protocol/log/index.ts'
import { OverlayRefusedError } from '@pharos/net/overlay/overlay-driver.ts'
import {
  JoinTimeoutError,
  KeyDeniedError,
  LogVerificationError,
  MalformedResponseError,
  MissingEntryError,
  OwnHeadUnknownError,
  RemoteError,
  RequestTimeoutError
} from '../src/errors.ts'
import { generateKey, signerFor } from '../src/keys.ts'
import { createPharosPeer } from '../src/pharos-peer.ts'
import type { PharosPeer, PharosPeerInit } from '../src/pharos-peer.ts'
import { startFakeBeacon } from './helpers/fake-beacon.ts'
import type { FakeBeacon, FakeBeaconScript } from './helpers/fake-beacon.ts'

const CONTENT = CID.parse('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
const running: Array<{ stop: () => void | Promise<void> }> = []
after(async () => { await Promise.all(running.map(async (node) => { await node.stop() })) })

async function beacon (script: FakeBeaconScript): Promise<FakeBeacon> {
  const node = await startFakeBeacon(script)
  running.push(node)
  return node
}

async function peerOf (fake: FakeBeacon, init: Partial<PharosPeerInit> = {}): Promise<PharosPeer> {
  const peer = await createPharosPeer({ privateKey: await generateKey(), bootstrap: [fake.address], timeouts: { requestMs: 2000, joinMs: 5000 }, ...init })
  running.push(peer)
  return peer
}

async function buildLog (length: number, given?: ReturnType<typeof signerFor>): Promise<EntryBlock[]> {
  const signer = given ?? signerFor(await generateKey())
  const log: EntryBlock[] = []
  for (let seq = 0; seq < length; seq++) {
    log.push(await signEntry({ seq, prev: log.at(-1)?.cid ?? null, action: FEED_POST_ACTION, timestamp: 1_700_000_000_000 + seq, params: { content: CONTENT } }, signer))
  }
  return log
}

/** A beacon that holds `log` and answers heads and entries from it, as the real one does. */
function serving (log: EntryBlock[], overrides: Partial<{ entries: EntryBlock[] }> = {}): FakeBeaconScript['sync'] {
  const blocks = overrides.entries ?? log
  return (request) => {
    const head = log.at(-1)
    switch (request.t) {
      case 'heads':
        return { t: 'heads', heads: head !== undefined && request.authors.includes(head.entry.author) ? [{ author: head.entry.author, cid: head.cid, seq: head.entry.seq, forks: 0, entries: log.length }] : [] }
      case 'entries': {
        const index = blocks.findIndex((block) => block.cid.equals(request.from))
        return { t: 'entries', blocks: index < 0 ? [] : blocks.slice(0, index + 1).reverse().slice(0, request.limit).map((block) => block.bytes) }
      }
      case 'status':
        return { t: 'status', statuses: request.cids.map(() => 'unknown' as const) }
      default:
        return { t: 'error', code: 'bad-request', message: 'unsupported' }
    }
  }
}

describe('the SDK against a beacon', () => {
  it('surfaces a beacon that refuses it from the overlay (not-registered) as OverlayRefusedError, and stops', async () => {
    const fake = await beacon({ admit: () => ({ admitted: false, reason: 'not-registered' }), sync: serving([]) })
    const peer = await peerOf(fake)
    await assert.rejects(peer.start(), (err: unknown) => err instanceof OverlayRefusedError && err.reason === 'not-registered')
    assert.equal(peer.libp2p.status, 'stopped')
  })

  it('keeps dialling its bootstrap list for a few passes at start, so a beacon still starting is reached', async () => {
    const key = await generateKey()
    const first = await startFakeBeacon({}, 'pharos', key)
    const port = Number(first.address.split('/')[4])
    await first.stop()
    const peer = await peerOf(first)
    const starting = peer.start().then(() => undefined, (err: unknown) => err)
    // The beacon comes back on the same port and key after the first pass has failed.
    await new Promise((resolve) => setTimeout(resolve, 300))
    running.push(await startFakeBeacon({}, 'pharos', key, port))
    assert.equal(await starting, undefined, 'start() succeeds')
    assert.equal(peer.libp2p.getConnections(first.peerId).length > 0, true, 'connected to the beacon that came up late')
  })

  it('gives up joining after timeouts.joinMs when no neighbour comes', async () => {
    // A libp2p node with no overlay at all: the overlay links cannot open.
    const fake = await beacon({ sync: serving([]) })
    await fake.services.overlay.stop()
    const peer = await peerOf(fake, { timeouts: { joinMs: 800, requestMs: 2000 } })
    await assert.rejects(peer.start(), JoinTimeoutError)
  })

  it('continues the log a previous run started: the beacon says where its own head is', async () => {
    const key = await generateKey()
    const previous = await buildLog(5, signerFor(key))
    const fake = await beacon({ sync: serving(previous) })
    const peer = await peerOf(fake, { privateKey: key })
    await peer.start()
    const head = previous.at(-1) ?? assert.fail()
    assert.deepEqual(peer.head(), { cid: head.cid, seq: 4 })
    const published = await peer.publishPost({ text: 'the sixth' })
    assert.equal(published.seq, 5)
    assert.ok(published.block.entry.prev?.equals(head.cid))
    const asked = fake.requests.find((request) => request.t === 'heads')
    assert.deepEqual(asked, { t: 'heads', authors: [peer.peerId.toString()], known: [] })
  })

  it('refuses to publish while no beacon can say where its log stands', async () => {
    const fake = await beacon({ sync: () => ({ t: 'error', code: 'unavailable', message: 'database down' }) })
    const peer = await peerOf(fake)
    await peer.start()
    await assert.rejects(peer.publishPost({ text: 'would fork' }), (err: unknown) => err instanceof OwnHeadUnknownError && err.cause instanceof RemoteError)
    assert.equal(peer.head(), undefined, 'nothing was signed')
  })

  it('waits until the beacon reports pinned, re-announcing its head (known) meanwhile', async () => {
    let announced: KnownHead[] = []
    let polls = 0
    const fake = await beacon({
      sync: (request) => {
        if (request.t === 'heads') {
          if (request.known.length > 0) announced = request.known
          return { t: 'heads', heads: [] }
        }
        if (request.t === 'status') {
          polls++
          // The beacon missed the gossip: it learns the entry only from the re-announcement.
          const status: EntryStatus = announced.length === 0 ? 'unknown' : polls % 2 === 0 ? 'pinned' : 'stored'
          return { t: 'status', statuses: request.cids.map(() => status) }
        }
        return { t: 'error', code: 'bad-request', message: 'unsupported' }
      }
    })
    const peer = await peerOf(fake)
    await peer.start()
    const { cid, seq } = await peer.publishPost({ text: 'hold me' })
    await peer.waitUntilHeld([cid], { timeoutMs: 15_000 })
    assert.deepEqual(announced.map(({ author, cid, seq }) => ({ author, cid: cid.toString(), seq })), [{ author: peer.peerId.toString(), cid: cid.toString(), seq }])
    assert.ok(polls >= 2)
  })

  it('says which CIDs were not held, and their last status, when the wait times out', async () => {
    const fake = await beacon({
      sync: (request) => request.t === 'status'
        ? { t: 'status', statuses: request.cids.map(() => 'stored' as const) }
        : request.t === 'heads' ? { t: 'heads', heads: [] } : { t: 'error', code: 'bad-request', message: 'no' }
    })
    const peer = await peerOf(fake)
    await peer.start()
    const { cid } = await peer.publishPost({ text: 'stuck' })
    await peer.waitUntilHeld([cid], { state: 'stored', timeoutMs: 5000 })
    await assert.rejects(peer.waitUntilHeld([cid], { timeoutMs: 1200 }), (err: unknown) => err instanceof RequestTimeoutError && err.message.includes(`${cid.toString()}: stored`))
  })

  it('fetches and verifies a log from the beacon, and names the entry of a broken chain', async () => {
    const log = await buildLog(4)
    const author = log[0]?.entry.author ?? assert.fail()
    const good = await beacon({ sync: serving(log) })
    const reader = await peerOf(good)
    await reader.start()
    const fetched = await reader.fetchLog(author)
    assert.deepEqual(fetched.map((block) => block.entry.seq), [3, 2, 1, 0])

    const fork = await buildLog(2, signerFor(await generateKey()))
    const broken = [log[0], fork[1], log[2], log[3]].filter((block): block is EntryBlock => block !== undefined)
    const liar = await beacon({ sync: serving(log, { entries: broken }) })
    const victim = await peerOf(liar)
    await victim.start()
    // The beacon answers from the head: 3, 2, then a foreign entry where 1 should be.
    await assert.rejects(victim.fetchLog(author), (err: unknown) => err instanceof LogVerificationError && err.cid === log[1]?.cid.toString() && err.reason === 'broken-chain')
  })

  it('reports a head it cannot complete as MissingEntryError, and garbage as MalformedResponseError', async () => {
    const log = await buildLog(3)
    const author = log[0]?.entry.author ?? assert.fail()
    const partial = await beacon({ sync: serving(log, { entries: log.slice(1) }) })
    const peer = await peerOf(partial)
    await peer.start()
    await assert.rejects(peer.fetchLog(author), (err: unknown) => err instanceof MissingEntryError && err.cid === log[0]?.cid.toString())

    const garbage = await beacon({ sync: (request) => request.t === 'heads' && request.authors.includes(author) ? { raw: encodeCbor({ t: 'heads', heads: 'lots' }) } : { t: 'heads', heads: [] } })
    const confused = await peerOf(garbage)
    await confused.start()
    await assert.rejects(confused.fetchLog(author), MalformedResponseError)
  })

  it('keeps nothing of a chain it could not complete, so the next sync fetches and announces all of it', async () => {
    const log = await buildLog(3)
    const author = log[0]?.entry.author ?? assert.fail()
    // First the beacon has lost the genesis entry; later it has it again.
    let entries = log.slice(1)
    const flaky = await beacon({ sync: (request, from) => serving(log, { entries })?.(request, from) ?? { t: 'heads', heads: [] } })
    const peer = await peerOf(flaky)
    await peer.start()
    const heard: number[] = []
    peer.onEntry((block) => { heard.push(block.entry.seq) })
    peer.follow([author])

    const failed = await peer.sync()
    assert.deepEqual(failed.failed.map((failure) => [failure.author, failure.error instanceof MissingEntryError]), [[author, true]])
    assert.equal(peer.head(author), undefined, 'the verified part above the gap is not kept: it would pass for the head')
    assert.deepEqual(heard, [])

    entries = log
    assert.deepEqual(await peer.sync(), { fetched: 3, updated: [author], failed: [] })
    assert.deepEqual(heard, [0, 1, 2], 'every entry announced once, oldest first')
    assert.ok(peer.head(author)?.cid.equals(log[2]?.cid ?? assert.fail()))
  })

  it('bounds a request a beacon never answers', async () => {
    const log = await buildLog(1)
    const author = log[0]?.entry.author ?? assert.fail()
    const silent = await beacon({ sync: (request) => request.t === 'heads' && request.authors.includes(author) ? 'hang' : { t: 'heads', heads: [] } })
    const peer = await peerOf(silent, { timeouts: { requestMs: 500, joinMs: 5000 } })
    await peer.start()
    const started = Date.now()
    await assert.rejects(peer.fetchLog(author), RequestTimeoutError)
    assert.ok(Date.now() - started < 5000)
  })

  it('deposits a key under a signed allow-list, gets it back, and surfaces a denial with its reason', async () => {
    const key = new Uint8Array(32).fill(7)
    const keyHash = await keyHashOf(key)
    const reader = (await generateKey())
    let rule: Awaited<ReturnType<typeof openAllowList>> | undefined
    const fake = await beacon({
      sync: serving([]),
      keyExchange: async (request) => {
        switch (request.t) {
          case 'deposit':
            rule = await openAllowList(request.rule)
            return { t: 'deposited', keyHash: await keyHashOf(request.key) }
          case 'getkey':
            if (Buffer.from(request.keyHash).equals(Buffer.from(keyHash))) return { t: 'key', keyHash, key }
            if (request.keyHash[0] === 0) return { t: 'key', keyHash: request.keyHash, key }
            return { t: 'denied', reason: 'not on the allow-list' }
          default:
            return { t: 'error', code: 'bad-request', message: 'no' }
        }
      }
    })
    const author = await peerOf(fake)
    await author.start()
    const readerId = signerFor(reader).peerId
    assert.deepEqual(await author.depositKey({ key, allow: [readerId], version: 3 }), { keyHash })
    assert.ok(rule?.ok)
    assert.deepEqual({ author: rule.value.author, peers: rule.value.peers, version: rule.value.version }, { author: author.peerId.toString(), peers: [readerId], version: 3 })
    assert.deepEqual(rule.value.keyHash, keyHash)

    assert.deepEqual(await author.getKey(keyHash), key)
    await assert.rejects(author.getKey(new Uint8Array(32).fill(9)), (err: unknown) => err instanceof KeyDeniedError && err.reason === 'not on the allow-list')
    // A beacon handing out a key that does not hash to what was asked is not believed.
    await assert.rejects(author.getKey(new Uint8Array(32)), (err: unknown) => err instanceof KeyDeniedError && err.code === 'key-hash-mismatch')
    await assert.rejects(author.depositKey({ key, keyHash: new Uint8Array(32), allow: [], version: 1 }), RangeError)
  })
})
