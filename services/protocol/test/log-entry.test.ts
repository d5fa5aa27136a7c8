/**
 * Profile-log entries (DESIGN.md §4, issue 5): every vector in vectors/log-entries.json decodes,
 * verifies and opens to exactly the result written next to it; signEntry produces those bytes
 * and refuses what decodeEntry would refuse; the author key inside a peer ID is the one libp2p
 * puts there.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import {
  cborCid,
  contentLinks,
  decodeEntry,
  InvalidEntryError,
  MAX_ENTRY_BYTES,
  openAllowList,
  openEnvelope,
  peerIdFromPublicKey,
  publicKeyFromPeerId,
  signEntry,
  signingBytes,
  verifyEntry
} from '../src/log/index.ts'
import type { Ed25519Signer, EntryErrorCode, EntrySignatureError, EnvelopeErrorCode, UnsignedEntry } from '../src/log/index.ts'
import { fromHex, hex, namedKey, sha256, testKey, utf8 } from './log-helpers.ts'
import { generateLogVectors, serializeLogVectors, VECTORS_FILE } from './vectors/generate-log-vectors.ts'
import type { LogVectors } from './vectors/generate-log-vectors.ts'

const committed = readFileSync(VECTORS_FILE, 'utf8')
const vectors = JSON.parse(committed) as LogVectors

const ENTRY_ERROR_CODES: Record<EntryErrorCode, true> = {
  'too-large': true,
  'not-cbor': true,
  'non-canonical': true,
  'unsupported-version': true,
  'bad-shape': true,
  'bad-author': true,
  'bad-prev': true,
  'bad-params': true
}
const SIGNATURE_ERRORS: Record<EntrySignatureError, true> = {
  'bad-length': true,
  'non-canonical-s': true,
  'non-canonical-point': true,
  'small-order-point': true,
  'bad-signature': true
}
const ENVELOPE_ERROR_CODES: Record<EnvelopeErrorCode, true> = {
  'too-large': true,
  'not-cbor': true,
  'non-canonical': true,
  'bad-shape': true,
  'bad-publisher': true,
  'bad-envelope-signature': true
}

function vector(name: string): Uint8Array {
  const found = vectors.entries.find((entry) => entry.name === name)
  if (found === undefined) throw new Error(`no vector ${name}`)
  return fromHex(found.bytes)
}

const contentCid = (label: string): CID => CID.createV1(0x55, Digest.create(0x12, sha256(utf8(label))))

describe('log vectors: the file', () => {
  it('is exactly what the generator writes (it cannot drift from its source)', () => {
    assert.equal(committed, serializeLogVectors(generateLogVectors()))
  })

  it('covers every entry error code, every signature error, every envelope error code, and both allow-list outcomes', () => {
    assert.deepEqual(new Set(vectors.entries.map((entry) => entry.decode)), new Set(['ok', ...Object.keys(ENTRY_ERROR_CODES)]))
    assert.deepEqual(new Set(vectors.entries.flatMap((entry) => entry.verify ?? [])), new Set(['ok', ...Object.keys(SIGNATURE_ERRORS)]))
    assert.deepEqual(new Set(vectors.envelopes.map((envelope) => envelope.open)), new Set(['ok', ...Object.keys(ENVELOPE_ERROR_CODES)]))
    assert.deepEqual(new Set(vectors.allowLists.map((list) => list.open)), new Set(['ok', 'invalid']))
  })

  it('names are unique', () => {
    for (const list of [vectors.entries, vectors.envelopes, vectors.allowLists]) {
      const names: string[] = list.map((item) => item.name)
      assert.equal(new Set(names).size, names.length)
    }
  })
})

describe('log vectors: decodeEntry and verifyEntry decide as written', () => {
  for (const expected of vectors.entries) {
    it(`${expected.name}: ${expected.decode}${expected.verify === null ? '' : `, signature ${expected.verify}`}`, async () => {
      const bytes = fromHex(expected.bytes)
      const decoded = await decodeEntry(bytes)
      if (expected.decode !== 'ok') {
        assert.equal(decoded.ok, false, `${expected.description}: expected ${expected.decode}, it decoded`)
        assert.equal(decoded.ok ? 'ok' : decoded.code, expected.decode, expected.description)
        return
      }
      assert.ok(decoded.ok, `${expected.description}: ${decoded.ok ? '' : `${decoded.code} (${decoded.detail})`}`)
      assert.equal(decoded.value.cid.toString(), expected.cid)
      assert.equal((await cborCid(bytes)).toString(), expected.cid)
      assert.deepEqual(decoded.value.bytes, bytes)
      const verified = await verifyEntry(decoded.value.entry)
      assert.equal(verified.ok ? 'ok' : verified.code, expected.verify, expected.description)
    })
  }
})

describe('log vectors: openEnvelope decides as written', () => {
  for (const expected of vectors.envelopes) {
    it(`${expected.name}: ${expected.open}`, async () => {
      const opened = await openEnvelope(fromHex(expected.bytes))
      assert.equal(opened.ok ? 'ok' : opened.code, expected.open, expected.description)
      if (opened.ok) assert.equal((await decodeEntry(opened.value.entry)).ok, true)
    })
  }
})

describe('log vectors: openAllowList decides as written', () => {
  for (const expected of vectors.allowLists) {
    it(`${expected.name}: ${expected.open}`, async () => {
      const opened = await openAllowList(fromHex(expected.bytes))
      assert.equal(opened.ok ? 'ok' : 'invalid', expected.open, `${expected.description}${opened.ok ? '' : `: ${opened.detail}`}`)
    })
  }
})

/** A libp2p ed25519 key as a signer: what the beacon and the peer SDK sign with. */
async function libp2pSigner(seed: Uint8Array): Promise<Ed25519Signer> {
  const privateKey = await generateKeyPairFromSeed('Ed25519', seed)
  return { peerId: peerIdFromPrivateKey(privateKey).toString(), sign: async (message) => await privateKey.sign(message) }
}

const genesis = (): Omit<UnsignedEntry, 'v' | 'author'> => ({
  seq: 0,
  prev: null,
  action: 'append-feed-post',
  timestamp: 1_700_000_000_000,
  params: { content: contentCid('post 0') }
})

describe('signEntry', () => {
  it('signs what decodeEntry and verifyEntry accept, with the bytes and CID of the vector', async () => {
    const alice = namedKey('alice')
    const block = await signEntry(genesis(), await libp2pSigner(alice.seed))
    assert.equal(hex(block.bytes), hex(vector('valid-genesis')))
    const decoded = await decodeEntry(block.bytes)
    assert.ok(decoded.ok)
    assert.deepEqual(decoded.value.cid, block.cid)
    assert.deepEqual(await verifyEntry(decoded.value.entry), { ok: true })
    assert.deepEqual(await verifyEntry(block.entry), { ok: true })
  })

  it('round-trips chains of entries with nested params for many keys', async () => {
    for (let i = 0; i < 8; i++) {
      const signer = await libp2pSigner(sha256(utf8(`round-trip ${i}`)))
      let prev: CID | null = null
      for (let seq = 0; seq < 3; seq++) {
        const params = { content: contentCid(`${i}/${seq}`), more: [{ cid: contentCid('x') }, 'text', seq] }
        const block = await signEntry({ seq, prev, action: 'append-feed-post', timestamp: seq * 1000, params }, signer)
        const decoded = await decodeEntry(block.bytes)
        assert.ok(decoded.ok)
        assert.equal(decoded.value.entry.author, signer.peerId)
        assert.deepEqual(await verifyEntry(decoded.value.entry), { ok: true })
        assert.deepEqual(decoded.value.entry.params, params)
        prev = block.cid
      }
    }
  })

  it('signs the dag-cbor encoding of the entry without sig', async () => {
    const alice = testKey(sha256(utf8('signing bytes')))
    let signed: Uint8Array | undefined
    const block = await signEntry(genesis(), { peerId: alice.peerId, sign: (message) => { signed = message; return alice.signer.sign(message) } })
    assert.deepEqual(signed, signingBytes(block.entry))
    const { sig: _sig, ...unsigned } = block.entry
    assert.equal((await decodeEntry(signingBytes(unsigned))).ok, false)
  })

  const refusals: Array<[string, Partial<Omit<UnsignedEntry, 'v' | 'author'>>, EntryErrorCode]> = [
    ['negative seq', { seq: -1 }, 'bad-shape'],
    ['fractional seq', { seq: 1.5, prev: contentCid('x') }, 'bad-shape'],
    ['seq beyond 2^53', { seq: 2 ** 53, prev: contentCid('x') }, 'bad-shape'],
    ['seq 0 with a prev', { prev: CID.parse('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy') }, 'bad-prev'],
    ['seq 1 without a prev', { seq: 1 }, 'bad-prev'],
    ['a raw prev', { seq: 1, prev: contentCid('x') }, 'bad-prev'],
    ['an empty action', { action: '' }, 'bad-shape'],
    ['an action with spaces', { action: 'append feed post' }, 'bad-shape'],
    ['a fractional timestamp', { timestamp: 0.5 }, 'bad-shape'],
    ['a negative timestamp', { timestamp: -1 }, 'bad-shape'],
    ['a feed post without content', { params: {} }, 'bad-params'],
    ['a feed post whose content is not a CID', { params: { content: 'bafy…' } }, 'bad-params'],
    ['params too large', { params: { content: contentCid('x'), padding: 'x'.repeat(MAX_ENTRY_BYTES) } }, 'too-large']
  ]
  for (const [what, change, code] of refusals) {
    it(`refuses ${what}: InvalidEntryError ${code}`, async () => {
      const alice = namedKey('alice')
      await assert.rejects(signEntry({ ...genesis(), ...change }, alice.signer), (err: unknown) => err instanceof InvalidEntryError && err.code === code)
    })
  }

  it('refuses a signer whose peer ID is not ed25519: bad-author, and never asks it to sign', async () => {
    let asked = false
    const signer: Ed25519Signer = { peerId: 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N', sign: () => { asked = true; return new Uint8Array(64) } }
    await assert.rejects(signEntry(genesis(), signer), (err: unknown) => err instanceof InvalidEntryError && err.code === 'bad-author')
    assert.equal(asked, false)
  })

  it('re-signing a decoded entry makes the signer its author and drops the old fields (an Entry is a valid argument to TypeScript)', async () => {
    const alice = namedKey('alice')
    const bob = namedKey('bob')
    const decoded = await decodeEntry(vector('valid-genesis'))
    assert.ok(decoded.ok)
    const block = await signEntry(decoded.value.entry, bob.signer)
    assert.equal(block.entry.author, bob.peerId)
    assert.notEqual(block.entry.author, alice.peerId)
    const again = await decodeEntry(block.bytes)
    assert.ok(again.ok, again.ok ? '' : again.code)
    assert.deepEqual(await verifyEntry(again.value.entry), { ok: true })
  })
})

describe('contentLinks', () => {
  it('returns every CID in params, however nested, and never prev', async () => {
    const decoded = await decodeEntry(vector('valid-nested-params'))
    assert.ok(decoded.ok)
    const { entry } = decoded.value
    const links = contentLinks(entry).map(String).sort()
    const genesisCid = (await cborCid(vector('valid-genesis'))).toString()
    const expected = [
      contentCid('post 2').toString(),
      contentCid('image a').toString(),
      CID.createV0(Digest.create(0x12, sha256(utf8('image b')))).toString(),
      genesisCid
    ].sort()
    assert.deepEqual(links, expected)
    assert.ok(entry.prev !== null && !links.includes(entry.prev.toString()))
  })

  it('a genesis feed post links to its content only; a follow with empty params links to nothing', async () => {
    const genesisEntry = await decodeEntry(vector('valid-genesis'))
    assert.ok(genesisEntry.ok)
    assert.deepEqual(contentLinks(genesisEntry.value.entry).map(String), [contentCid('post 0').toString()])
    const follow = await decodeEntry(vector('valid-other-action'))
    assert.ok(follow.ok)
    assert.deepEqual(contentLinks(follow.value.entry), [])
  })
})

describe('author keys in peer IDs', () => {
  it('a key read again (from the cache) is the same, and writing into one answer changes no later one', async () => {
    const privateKey = await generateKeyPairFromSeed('Ed25519', sha256(utf8('cached peer id')))
    const peerId = peerIdFromPrivateKey(privateKey).toString()
    const first = publicKeyFromPeerId(peerId) ?? assert.fail('a peer ID')
    first.fill(0)
    assert.deepEqual(publicKeyFromPeerId(peerId), privateKey.publicKey.raw)
    const second = publicKeyFromPeerId(peerId) ?? assert.fail('a peer ID')
    second.fill(0)
    assert.deepEqual(publicKeyFromPeerId(peerId), privateKey.publicKey.raw)
  })

  it('peerIdFromPublicKey and publicKeyFromPeerId agree with @libp2p/peer-id and @libp2p/crypto', async () => {
    for (let i = 0; i < 32; i++) {
      const seed = sha256(utf8(`peer id ${i}`))
      const privateKey = await generateKeyPairFromSeed('Ed25519', seed)
      const libp2pId = peerIdFromPrivateKey(privateKey).toString()
      assert.equal(peerIdFromPublicKey(privateKey.publicKey.raw), libp2pId)
      assert.equal(peerIdFromPublicKey(testKey(seed).publicKey), libp2pId, 'noble and @libp2p/crypto derive the same key from a seed')
      assert.deepEqual(publicKeyFromPeerId(libp2pId), privateKey.publicKey.raw)
    }
  })

  it('refuses every other kind of peer ID and every other spelling', () => {
    const alice = namedKey('alice')
    const spellings = [
      alice.peerId + ' ',
      ' ' + alice.peerId,
      'z' + alice.peerId,
      alice.peerId.slice(0, -1),
      alice.peerId + '1',
      '1' + alice.peerId,
      alice.peerId.toLowerCase(),
      peerIdFromString(alice.peerId).toCID().toString(),
      'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N',
      '16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY',
      '',
      '12D3KooW'
    ]
    for (const spelling of spellings) assert.equal(publicKeyFromPeerId(spelling), undefined, JSON.stringify(spelling))
  })

  it('refuses a second spelling that base58btc decoders read as the same key (a character beyond Latin-1 in place of a "1")', () => {
    const carol = vectors.keys.carol
    assert.ok(carol !== undefined)
    let alternates = 0
    for (let j = 8; j < carol.peerId.length; j++) {
      if (carol.peerId[j] !== '1') continue
      for (const character of ['\u0100', '\u4e00', '\uffff']) {
        const alternate: string = carol.peerId.slice(0, j) + character + carol.peerId.slice(j + 1)
        assert.equal(publicKeyFromPeerId(alternate), undefined, alternate)
        alternates++
      }
    }
    assert.ok(alternates > 0)
    assert.equal(hex(publicKeyFromPeerId(carol.peerId) ?? new Uint8Array()), carol.publicKey)
  })

  it('peerIdFromPublicKey refuses a key that is not 32 bytes', () => {
    assert.throws(() => peerIdFromPublicKey(new Uint8Array(31)), RangeError)
    assert.throws(() => peerIdFromPublicKey(new Uint8Array(33)), RangeError)
  })
})
