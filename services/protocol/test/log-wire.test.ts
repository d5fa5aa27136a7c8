/**
 * The sync and key-exchange frames: every message round-trips, every bound is enforced, and
 * no input (random bytes, random CBOR, truncated or mutated frames) makes a decoder throw; a
 * frame that decodes re-encodes to one that decodes to the same value. The entry, envelope
 * and allow-list decoders get the same fuzz.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import {
  contentLinks,
  decodeEntry,
  decodeKeyExchange,
  decodeSyncRequest,
  decodeSyncResponse,
  encodeKeyExchange,
  encodeSyncRequest,
  encodeSyncResponse,
  KEY_BYTES,
  keyExchangeProtocolId,
  keyHashOf,
  MAX_ALLOW_LIST_PEERS,
  MAX_ENTRY_BYTES,
  MAX_KEY_EXCHANGE_FRAME_BYTES,
  MAX_SYNC_FRAME_BYTES,
  openAllowList,
  openEnvelope,
  sealEnvelope,
  signAllowList,
  signEntry,
  signingBytes,
  SYNC_LIMITS,
  syncProtocolId
} from '../src/log/index.ts'
import type { HeadInfo, KeyExchangeMessage, KnownHead, SyncRequest, SyncResponse } from '../src/log/index.ts'
import { createRng } from '../src/overlay/index.ts'
import type { Rng } from '../src/overlay/index.ts'
import { concat, ed25519PeerId, namedKey, sha256, utf8 } from './log-helpers.ts'

const alice = namedKey('alice')
const bob = namedKey('bob')
const entryCid = (label: string): CID => CID.createV1(0x71, Digest.create(0x12, sha256(utf8(label))))
const rawCid = (label: string): CID => CID.createV1(0x55, Digest.create(0x12, sha256(utf8(label))))
const peer = (i: number): string => ed25519PeerId(sha256(utf8(`peer ${i}`)))
const known = (i: number): KnownHead => ({ author: peer(i), cid: entryCid(`head ${i}`), seq: i })
const info = (i: number): HeadInfo => ({ ...known(i), forks: i % 3, entries: i + 1 })
const times = <T>(n: number, make: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => make(i))

/** CBOR bytes of a value dag-cbor will encode (for frames the typed encoders would not write). */
const raw = (value: unknown): Uint8Array => dagCbor.encode(value)

const requests: SyncRequest[] = [
  { t: 'heads', authors: [alice.peerId, bob.peerId], known: [known(1)] },
  { t: 'heads', authors: [], known: [] },
  { t: 'heads', authors: times(SYNC_LIMITS.authors, peer), known: times(SYNC_LIMITS.authors, known) },
  { t: 'changes', cursor: '0', limit: 1 },
  { t: 'changes', cursor: '18446744073709551615', limit: SYNC_LIMITS.changes },
  { t: 'entries', from: entryCid('x'), limit: 1 },
  { t: 'entries', from: rawCid('x'), limit: SYNC_LIMITS.entries },
  { t: 'status', cids: [] },
  { t: 'status', cids: times(SYNC_LIMITS.cids, (i) => rawCid(`${i}`)) },
  { t: 'receipt', author: alice.peerId },
  { t: 'receipt', author: alice.peerId, head: entryCid('head') },
  { t: 'receipt', cid: rawCid('dag') }
]

const responses: SyncResponse[] = [
  { t: 'heads', heads: [info(1), info(2)] },
  { t: 'heads', heads: times(SYNC_LIMITS.authors, info) },
  { t: 'changes', heads: [], cursor: '42' },
  { t: 'changes', heads: times(SYNC_LIMITS.changes, info), cursor: '99999999999999999999' },
  { t: 'entries', blocks: [] },
  { t: 'entries', blocks: [Uint8Array.of(1, 2, 3), new Uint8Array(MAX_ENTRY_BYTES)] },
  { t: 'status', statuses: ['unknown', 'stored', 'pinned'] },
  { t: 'status', statuses: times(SYNC_LIMITS.cids, () => 'pinned' as const) },
  { t: 'receipt', statement: Uint8Array.of(1, 2, 3) },
  { t: 'not-held', reason: 'unknown', message: 'nothing stored' },
  { t: 'not-held', reason: 'incomplete', message: 'a gap' },
  { t: 'not-held', reason: 'not-pinned', message: '' },
  { t: 'error', code: 'bad-request', message: 'no' },
  { t: 'error', code: 'unavailable', message: '' }
]

const keyHash = sha256(utf8('key'))
const keyMessages: KeyExchangeMessage[] = [
  { t: 'deposit', key: new Uint8Array(KEY_BYTES.min), rule: Uint8Array.of(1) },
  { t: 'deposit', key: new Uint8Array(KEY_BYTES.max), rule: new Uint8Array(0) },
  { t: 'deposited', keyHash },
  { t: 'getkey', keyHash },
  { t: 'getkey', keyHash, requester: bob.peerId },
  { t: 'key', keyHash, key: new Uint8Array(32).fill(7) },
  { t: 'denied', reason: 'not on the list' },
  { t: 'denied', reason: 'not on the list', code: 'not-entitled' },
  { t: 'denied', reason: 'none here', code: 'unknown-key' },
  { t: 'error', code: 'unavailable', message: 'later' }
]

function refused(result: { ok: boolean }, what: string): void {
  assert.equal(result.ok, false, `${what} should be refused`)
}

describe('log wire: round trips', () => {
  it('every sync request decodes to what was encoded', () => {
    for (const request of requests) assert.deepEqual(decodeSyncRequest(encodeSyncRequest(request)), { ok: true, value: request }, request.t)
  })

  it('every sync response decodes to what was encoded', () => {
    for (const response of responses) assert.deepEqual(decodeSyncResponse(encodeSyncResponse(response)), { ok: true, value: response }, response.t)
  })

  it('a full entries response (SYNC_LIMITS.entries blocks of MAX_ENTRY_BYTES) fits in MAX_SYNC_FRAME_BYTES', () => {
    const full: SyncResponse = { t: 'entries', blocks: times(SYNC_LIMITS.entries, () => new Uint8Array(MAX_ENTRY_BYTES)) }
    const frame = encodeSyncResponse(full)
    assert.ok(frame.length <= MAX_SYNC_FRAME_BYTES, `${frame.length} > ${MAX_SYNC_FRAME_BYTES}`)
    assert.equal(decodeSyncResponse(frame).ok, true)
  })

  it('every key-exchange message decodes to what was encoded', () => {
    for (const message of keyMessages) assert.deepEqual(decodeKeyExchange(encodeKeyExchange(message)), { ok: true, value: message }, message.t)
  })

  it('the largest allow-list opens and fits in a deposit frame; one more peer does not open', async () => {
    const peers = times(MAX_ALLOW_LIST_PEERS, peer)
    const rule = await signAllowList({ keyHash, version: 1, peers }, alice.signer)
    const opened = await openAllowList(rule)
    assert.ok(opened.ok)
    assert.equal(opened.value.peers.length, MAX_ALLOW_LIST_PEERS)
    const frame = encodeKeyExchange({ t: 'deposit', key: new Uint8Array(KEY_BYTES.max), rule })
    assert.ok(frame.length <= MAX_KEY_EXCHANGE_FRAME_BYTES, `${frame.length} > ${MAX_KEY_EXCHANGE_FRAME_BYTES}`)
    assert.equal(decodeKeyExchange(frame).ok, true)
    refused(await openAllowList(await signAllowList({ keyHash, version: 1, peers: [...peers, peer(-1)] }, alice.signer)), 'an allow-list of MAX_ALLOW_LIST_PEERS + 1')
  })

  it('keyHashOf is SHA-256; protocol IDs are under the network', async () => {
    const key = new Uint8Array(32).fill(3)
    assert.deepEqual(await keyHashOf(key), new Uint8Array(createHash('sha256').update(key).digest()))
    assert.equal(syncProtocolId('pharos'), '/pharos/sync/1.0.0')
    assert.equal(keyExchangeProtocolId('pharos'), '/pharos/keyexchange/1.0.0')
  })
})

describe('log wire: sync request bounds', () => {
  const cases: Array<[string, unknown]> = [
    ['heads with SYNC_LIMITS.authors + 1 authors', { t: 'heads', authors: times(SYNC_LIMITS.authors + 1, peer), known: [] }],
    ['heads with SYNC_LIMITS.authors + 1 known heads', { t: 'heads', authors: [], known: times(SYNC_LIMITS.authors + 1, known) }],
    ['heads with an RSA author', { t: 'heads', authors: ['QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'], known: [] }],
    ['heads with a non-string author', { t: 'heads', authors: [5], known: [] }],
    ['heads without known', { t: 'heads', authors: [] }],
    ['heads with an extra key', { t: 'heads', authors: [], known: [], since: 5 }],
    ['heads whose authors is a map', { t: 'heads', authors: {}, known: [] }],
    ['a known head with an extra key', { t: 'heads', authors: [], known: [{ ...known(1), forks: 0 }] }],
    ['a known head with a negative seq', { t: 'heads', authors: [], known: [{ ...known(1), seq: -1 }] }],
    ['a known head whose cid is a string', { t: 'heads', authors: [], known: [{ ...known(1), cid: entryCid('x').toString() }] }],
    ['changes with limit 0', { t: 'changes', cursor: '0', limit: 0 }],
    ['changes with limit SYNC_LIMITS.changes + 1', { t: 'changes', cursor: '0', limit: SYNC_LIMITS.changes + 1 }],
    ['changes with limit 1.5', { t: 'changes', cursor: '0', limit: 1.5 }],
    ['changes with limit -1', { t: 'changes', cursor: '0', limit: -1 }],
    ['changes with an empty cursor', { t: 'changes', cursor: '', limit: 1 }],
    ['changes with a hex cursor', { t: 'changes', cursor: 'ff', limit: 1 }],
    ['changes with a negative cursor', { t: 'changes', cursor: '-1', limit: 1 }],
    ['changes with a cursor ending in a dot', { t: 'changes', cursor: '1.', limit: 1 }],
    ['changes with a cursor starting with a dot', { t: 'changes', cursor: '.5', limit: 1 }],
    ['changes with an exponent cursor', { t: 'changes', cursor: '1e5', limit: 1 }],
    ['changes with a padded cursor', { t: 'changes', cursor: ' 1', limit: 1 }],
    ['changes with a cursor of 21 digits', { t: 'changes', cursor: '1'.repeat(21), limit: 1 }],
    ['changes with a numeric cursor', { t: 'changes', cursor: 5, limit: 1 }],
    ['changes with an extra key', { t: 'changes', cursor: '0', limit: 1, authors: [] }],
    ['entries with limit 0', { t: 'entries', from: entryCid('x'), limit: 0 }],
    ['entries with limit SYNC_LIMITS.entries + 1', { t: 'entries', from: entryCid('x'), limit: SYNC_LIMITS.entries + 1 }],
    ['entries whose from is a string', { t: 'entries', from: entryCid('x').toString(), limit: 1 }],
    ['entries whose from is bytes', { t: 'entries', from: entryCid('x').bytes, limit: 1 }],
    ['entries without from', { t: 'entries', limit: 1 }],
    ['entries with an extra key', { t: 'entries', from: entryCid('x'), limit: 1, to: entryCid('y') }],
    ['status with SYNC_LIMITS.cids + 1 CIDs', { t: 'status', cids: times(SYNC_LIMITS.cids + 1, (i) => rawCid(`${i}`)) }],
    ['status with a string among the CIDs', { t: 'status', cids: [rawCid('a'), 'bafy'] }],
    ['status with an extra key', { t: 'status', cids: [], deep: true }],
    ['receipt with neither author nor cid', { t: 'receipt' }],
    ['receipt with both author and cid', { t: 'receipt', author: alice.peerId, cid: rawCid('a') }],
    ['receipt with a cid and a head', { t: 'receipt', cid: rawCid('a'), head: entryCid('h') }],
    ['receipt with an RSA author', { t: 'receipt', author: 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N' }],
    ['receipt whose head is a string', { t: 'receipt', author: alice.peerId, head: entryCid('h').toString() }],
    ['receipt whose cid is a string', { t: 'receipt', cid: rawCid('a').toString() }],
    ['receipt with an extra key', { t: 'receipt', author: alice.peerId, at: 5 }],
    ['an unknown t', { t: 'head', authors: [], known: [] }],
    ['t in capitals', { t: 'HEADS', authors: [], known: [] }],
    ['a numeric t', { t: 1 }],
    ['no t', { authors: [], known: [] }],
    ['a response type as a request', { t: 'error', code: 'bad-request', message: '' }],
    ['a list', [{ t: 'heads', authors: [], known: [] }]],
    ['a string', 'heads']
  ]
  for (const [what, value] of cases) it(`refuses ${what}`, () => refused(decodeSyncRequest(raw(value)), what))

  it('refuses a CID look-alike map as a CID, without throwing', () => {
    // { t: "entries", from: { "/": "x", "bytes": "x" }, limit: 1 }, written by hand: dag-cbor cannot encode it.
    const lookalike = concat(Uint8Array.of(0xa2), raw('/'), raw('x'), raw('bytes'), raw('x'))
    const frame = concat(Uint8Array.of(0xa3), raw('t'), raw('from'), lookalike, raw('limit'), raw(1))
    refused(decodeSyncRequest(concat(Uint8Array.of(0xa3), raw('t'), raw('entries'), raw('from'), lookalike, raw('limit'), raw(1))), 'a look-alike from')
    refused(decodeSyncRequest(frame), 'a look-alike map')
  })

  it('refuses a frame over MAX_SYNC_FRAME_BYTES before decoding it', () => {
    refused(decodeSyncRequest(new Uint8Array(MAX_SYNC_FRAME_BYTES + 1)), 'an oversized request')
    refused(decodeSyncResponse(new Uint8Array(MAX_SYNC_FRAME_BYTES + 1)), 'an oversized response')
  })
})

describe('log wire: sync response bounds', () => {
  const cases: Array<[string, unknown]> = [
    ['heads with SYNC_LIMITS.authors + 1 heads', { t: 'heads', heads: times(SYNC_LIMITS.authors + 1, info) }],
    ['a head without forks', { t: 'heads', heads: [known(1)] }],
    ['a head with negative forks', { t: 'heads', heads: [{ ...info(1), forks: -1 }] }],
    ['a head with fractional entries', { t: 'heads', heads: [{ ...info(1), entries: 0.5 }] }],
    ['a head with a secp256k1 author', { t: 'heads', heads: [{ ...info(1), author: '16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY' }] }],
    ['a head with an extra key', { t: 'heads', heads: [{ ...info(1), best: true }] }],
    ['changes with SYNC_LIMITS.changes + 1 heads', { t: 'changes', heads: times(SYNC_LIMITS.changes + 1, info), cursor: '1' }],
    ['changes with a non-decimal cursor', { t: 'changes', heads: [], cursor: 'abc' }],
    ['changes without a cursor', { t: 'changes', heads: [] }],
    ['entries with SYNC_LIMITS.entries + 1 blocks', { t: 'entries', blocks: times(SYNC_LIMITS.entries + 1, () => Uint8Array.of(0)) }],
    ['entries with a block over MAX_ENTRY_BYTES', { t: 'entries', blocks: [new Uint8Array(MAX_ENTRY_BYTES + 1)] }],
    ['entries with a block that is not bytes', { t: 'entries', blocks: ['a'] }],
    ['status with an unknown status', { t: 'status', statuses: ['lost'] }],
    ['status with SYNC_LIMITS.cids + 1 statuses', { t: 'status', statuses: times(SYNC_LIMITS.cids + 1, () => 'stored') }],
    ['an error with an unknown code', { t: 'error', code: 'banned', message: '' }],
    ['an error whose message is not a string', { t: 'error', code: 'bad-request', message: 5 }],
    ['an error without a message', { t: 'error', code: 'bad-request' }],
    ['a receipt that is not bytes', { t: 'receipt', statement: 'abc' }],
    ['a receipt over 4096 bytes', { t: 'receipt', statement: new Uint8Array(4097) }],
    ['a receipt with an extra key', { t: 'receipt', statement: Uint8Array.of(1), signer: alice.peerId }],
    ['not-held with an unknown reason', { t: 'not-held', reason: 'lost', message: '' }],
    ['not-held without a message', { t: 'not-held', reason: 'unknown' }],
    ['an unknown t', { t: 'nope' }],
    ['a request type as a response', { t: 'changes', cursor: '0', limit: 1 }]
  ]
  for (const [what, value] of cases) it(`refuses ${what}`, () => refused(decodeSyncResponse(raw(value)), what))

  it('cuts an error message to 512 characters', () => {
    const decoded = decodeSyncResponse(raw({ t: 'error', code: 'unavailable', message: 'x'.repeat(10_000) }))
    assert.ok(decoded.ok && decoded.value.t === 'error')
    assert.equal(decoded.value.message.length, 512)
  })
})

describe('log wire: key-exchange bounds', () => {
  const cases: Array<[string, unknown]> = [
    [`a deposited key of ${KEY_BYTES.min - 1} bytes`, { t: 'deposit', key: new Uint8Array(KEY_BYTES.min - 1), rule: Uint8Array.of(1) }],
    [`a deposited key of ${KEY_BYTES.max + 1} bytes`, { t: 'deposit', key: new Uint8Array(KEY_BYTES.max + 1), rule: Uint8Array.of(1) }],
    ['a deposit whose rule is not bytes', { t: 'deposit', key: new Uint8Array(32), rule: { type: 'allow-list' } }],
    ['a deposit with an extra key', { t: 'deposit', key: new Uint8Array(32), rule: Uint8Array.of(1), keyHash }],
    ['deposited with a keyHash of 31 bytes', { t: 'deposited', keyHash: keyHash.subarray(0, 31) }],
    ['deposited with a keyHash of 33 bytes', { t: 'deposited', keyHash: concat(keyHash, Uint8Array.of(0)) }],
    ['getkey with a keyHash of 31 bytes', { t: 'getkey', keyHash: keyHash.subarray(0, 31) }],
    ['getkey with a keyHash as hex', { t: 'getkey', keyHash: Buffer.from(keyHash).toString('hex') }],
    ['getkey with an RSA requester', { t: 'getkey', keyHash, requester: 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N' }],
    ['getkey with a null requester', { t: 'getkey', keyHash, requester: null }],
    ['getkey with an extra key', { t: 'getkey', keyHash, key: new Uint8Array(32) }],
    [`a key of ${KEY_BYTES.min - 1} bytes`, { t: 'key', keyHash, key: new Uint8Array(KEY_BYTES.min - 1) }],
    [`a key of ${KEY_BYTES.max + 1} bytes`, { t: 'key', keyHash, key: new Uint8Array(KEY_BYTES.max + 1) }],
    ['a key with a keyHash of 33 bytes', { t: 'key', keyHash: concat(keyHash, Uint8Array.of(0)), key: new Uint8Array(32) }],
    ['a key without keyHash', { t: 'key', key: new Uint8Array(32) }],
    ['denied whose reason is not a string', { t: 'denied', reason: 5 }],
    ['denied with an unknown code', { t: 'denied', reason: 'no', code: 'nope' }],
    ['an error with an unknown code', { t: 'error', code: 'denied', message: '' }],
    ['an unknown t', { t: 'getkeys', keyHash }],
    ['no t', { keyHash }],
    ['a list', [{ t: 'getkey', keyHash }]]
  ]
  for (const [what, value] of cases) it(`refuses ${what}`, () => refused(decodeKeyExchange(raw(value)), what))

  it('cuts a denial reason to 512 characters', () => {
    const decoded = decodeKeyExchange(raw({ t: 'denied', reason: 'y'.repeat(2000) }))
    assert.ok(decoded.ok && decoded.value.t === 'denied')
    assert.equal(decoded.value.reason.length, 512)
  })

  it('refuses a frame over MAX_KEY_EXCHANGE_FRAME_BYTES before decoding it', () => {
    refused(decodeKeyExchange(new Uint8Array(MAX_KEY_EXCHANGE_FRAME_BYTES + 1)), 'an oversized frame')
  })
})

// ---------------------------------------------------------------------------------------------
// Fuzz.

function randomBytes(rng: Rng, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = rng.nextUint32() & 0xff
  return out
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.nextUint32() % items.length] as T

/** Field names of every frame, and names objects and CIDs react to. */
const KEYS = [
  't', 'authors', 'known', 'cursor', 'limit', 'from', 'cids', 'heads', 'blocks', 'statuses', 'code', 'message', 'author', 'cid', 'seq',
  'forks', 'entries', 'key', 'rule', 'keyHash', 'requester', 'reason', 'v', 'entry', 'publisher', 'sig', 'type', 'version', 'peers',
  'prev', 'action', 'timestamp', 'params', 'content', '/', 'bytes', 'asCID', 'multihash', '__proto__', 'constructor', 'toString', ''
]
const TAGS = ['heads', 'changes', 'entries', 'status', 'error', 'deposit', 'deposited', 'getkey', 'key', 'denied', 'allow-list', 'append-feed-post', 'x']

/** CBOR head with a minimal argument. */
function head(major: number, value: number): Uint8Array {
  if (value < 24) return Uint8Array.of((major << 5) | value)
  if (value < 0x100) return Uint8Array.of((major << 5) | 24, value)
  if (value < 0x10000) return Uint8Array.of((major << 5) | 25, value >> 8, value & 0xff)
  return Uint8Array.of((major << 5) | 26, value >>> 24, (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff)
}

const text = (value: string): Uint8Array => concat(head(3, utf8(value).length), utf8(value))

/** Random CBOR bytes shaped like the frames: maps keyed by field names, peer IDs, CIDs, look-alikes. */
function randomCbor(rng: Rng, depth: number): Uint8Array {
  const kind = rng.nextUint32() % (depth > 2 ? 10 : 14)
  switch (kind) {
    case 0: return head(0, rng.nextUint32() % (1 << (rng.nextUint32() % 32)))
    case 1: return head(1, rng.nextUint32() % 300)
    case 2: return pick(rng, [Uint8Array.of(0xf4), Uint8Array.of(0xf5), Uint8Array.of(0xf6), Uint8Array.of(0xf7), Uint8Array.of(0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0)])
    case 3: {
      const length = pick(rng, [0, 15, 16, 31, 32, 33, 64, 65, rng.nextUint32() % 80])
      return concat(head(2, length), randomBytes(rng, length))
    }
    case 4: return text(pick(rng, [...TAGS, ...KEYS, '0', '42', '1.5', 'x'.repeat(600)]))
    case 5: return text(pick(rng, [alice.peerId, bob.peerId, peer(rng.nextUint32() % 5), 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N', alice.peerId.slice(1)]))
    case 6: {
      const cid = pick(rng, [entryCid('a'), rawCid('b'), CID.createV0(Digest.create(0x12, sha256(utf8('c'))))])
      const bytes = rng.nextUint32() % 4 === 0 ? randomBytes(rng, rng.nextUint32() % 40) : cid.bytes
      return concat(Uint8Array.of(0xd8, 0x2a), head(2, bytes.length + 1), Uint8Array.of(0), bytes)
    }
    case 7: return concat(Uint8Array.of(0xa2), text('/'), text('x'), text('bytes'), text('x'))
    case 8: return text(String(rng.nextUint32()))
    case 9: return concat(head(6, rng.nextUint32() % 50), head(0, 1))
    case 10:
    case 11: {
      const length = rng.nextUint32() % 5
      return concat(head(4, length), ...times(length, () => randomCbor(rng, depth + 1)))
    }
    default: {
      const keys = [...new Set(times(rng.nextUint32() % 6, () => pick(rng, KEYS)))]
      if (rng.nextUint32() % 3 > 0 && !keys.includes('t')) keys.unshift('t')
      keys.sort((a, b) => utf8(a).length - utf8(b).length || (a < b ? -1 : 1))
      return concat(head(5, keys.length), ...keys.flatMap((key) => [text(key), key === 't' && rng.nextUint32() % 4 > 0 ? text(pick(rng, TAGS)) : randomCbor(rng, depth + 1)]))
    }
  }
}

function mutate(rng: Rng, frame: Uint8Array): Uint8Array {
  let out: Uint8Array = frame.slice()
  const edits = 1 + (rng.nextUint32() % 3)
  for (let e = 0; e < edits; e++) {
    const at = out.length === 0 ? 0 : rng.nextUint32() % out.length
    switch (rng.nextUint32() % 4) {
      case 0: out[at] = rng.nextUint32() & 0xff; break
      case 1: out[at] = (out[at] ?? 0) ^ (1 << (rng.nextUint32() % 8)); break
      case 2: out = concat(out.subarray(0, at), randomBytes(rng, 1 + (rng.nextUint32() % 3)), out.subarray(at)); break
      default: out = concat(out.subarray(0, at), out.subarray(at + 1 + (rng.nextUint32() % 3)))
    }
  }
  return out
}

/** Runs every decoder on `bytes`; none may throw, and what decodes must re-encode to the same value. */
async function decodeAll(bytes: Uint8Array, label: string): Promise<void> {
  try {
    const request = decodeSyncRequest(bytes)
    if (request.ok) assert.deepEqual(decodeSyncRequest(encodeSyncRequest(request.value)), request)
    const response = decodeSyncResponse(bytes)
    if (response.ok) assert.deepEqual(decodeSyncResponse(encodeSyncResponse(response.value)), response)
    const keyExchange = decodeKeyExchange(bytes)
    if (keyExchange.ok) assert.deepEqual(decodeKeyExchange(encodeKeyExchange(keyExchange.value)), keyExchange)
    const entry = await decodeEntry(bytes)
    if (entry.ok) {
      signingBytes(entry.value.entry)
      assert.ok(contentLinks(entry.value.entry).every((cid) => cid instanceof CID && cid.bytes instanceof Uint8Array))
    }
    assert.equal(typeof (await openEnvelope(bytes)).ok, 'boolean')
    assert.equal(typeof (await openAllowList(bytes)).ok, 'boolean')
    for (const result of [request, response, keyExchange, entry]) assert.equal(typeof result.ok, 'boolean')
  } catch (err) {
    assert.fail(`${label} (${Buffer.from(bytes).toString('hex').slice(0, 400)}): ${err instanceof Error ? err.stack : String(err)}`)
  }
}

async function validFrames(): Promise<Uint8Array[]> {
  const genesis = await signEntry({ seq: 0, prev: null, action: 'append-feed-post', timestamp: 1, params: { content: rawCid('p'), more: [rawCid('q')] } }, alice.signer)
  const small = (request: SyncRequest | SyncResponse): boolean => !('authors' in request && request.authors.length > 2) &&
    !('heads' in request && request.heads.length > 2) && !('cids' in request && request.cids.length > 2) &&
    !('statuses' in request && request.statuses.length > 3) && !('blocks' in request && request.blocks.some((block) => block.length > 3))
  return [
    ...requests.filter(small).map(encodeSyncRequest),
    ...responses.filter(small).map(encodeSyncResponse),
    encodeSyncResponse({ t: 'entries', blocks: [genesis.bytes] }),
    ...keyMessages.map(encodeKeyExchange),
    genesis.bytes,
    await sealEnvelope(genesis.bytes, bob.signer),
    await signAllowList({ keyHash, version: 3, peers: [bob.peerId] }, alice.signer)
  ]
}

describe('log wire: decoders are total', () => {
  it('3,000 seeded random byte strings: every decoder answers, none throws', async () => {
    const rng = createRng(1)
    for (let i = 0; i < 3000; i++) await decodeAll(randomBytes(rng, rng.nextUint32() % 64), `random #${i}`)
  })

  it('4,000 seeded random CBOR values shaped like frames (CIDs, peer IDs, CID look-alikes): none throws, what decodes re-encodes', async () => {
    const rng = createRng(2)
    for (let i = 0; i < 4000; i++) await decodeAll(randomCbor(rng, 0), `random CBOR #${i}`)
  })

  it('every truncation of every valid frame', async () => {
    for (const [n, frame] of (await validFrames()).entries()) {
      for (let length = 0; length < frame.length; length++) await decodeAll(frame.subarray(0, length), `frame ${n} cut to ${length}`)
    }
  })

  it('3,000 seeded mutations of valid frames (bytes replaced, bits flipped, bytes inserted or deleted)', async () => {
    const rng = createRng(3)
    const frames = await validFrames()
    for (let i = 0; i < 3000; i++) await decodeAll(mutate(rng, pick(rng, frames)), `mutation #${i}`)
  })
})
