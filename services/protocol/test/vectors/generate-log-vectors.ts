/**
 * Generates test/vectors/log-entries.json: profile-log entries, publish envelopes and
 * allow-lists as exact bytes, each with the decision every Pharos code path must reach
 * (issue 5). Deterministic: fixed seeds, fixed timestamps, RFC 8032 deterministic signatures,
 * so a rerun writes the identical file; test/log-entry.test.ts checks that it does.
 *
 * The expected results are written here by hand from the rules in DESIGN.md §4 and
 * src/log; nothing is computed by calling src/log, so the vectors check the code rather than
 * echo it. Bytes that cannot be produced by a canonical encoder are written out with the
 * small CBOR writer below.
 *
 *   node services/protocol/test/vectors/generate-log-vectors.ts
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import * as dagCbor from '@ipld/dag-cbor'
import { ed25519 } from '@noble/curves/ed25519.js'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { base32 } from 'multiformats/bases/base32'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import type { EntryErrorCode, EntrySignatureError, EnvelopeErrorCode } from '../../src/log/index.ts'
import {
  BASE,
  challenge,
  concat,
  ed25519PeerId,
  fromLittleEndian,
  hex,
  L,
  mod,
  namedKey,
  offCurveEncoding,
  P,
  pointEncoding,
  sha256,
  sha512,
  signWith,
  times,
  toLittleEndian,
  torsionPoint,
  utf8
} from '../log-helpers.ts'
import type { TestKey } from '../log-helpers.ts'

export interface EntryVector {
  name: string
  description: string
  /** The block, hex. */
  bytes: string
  /** What decodeEntry returns: 'ok' or the EntryErrorCode. */
  decode: 'ok' | EntryErrorCode
  /** The block's CID (CIDv1, dag-cbor, sha2-256, base32) when it decodes. */
  cid: string | null
  /** What verifyEntry returns for the decoded entry: 'ok' or the EntrySignatureError; null when it does not decode. */
  verify: 'ok' | EntrySignatureError | null
}

export interface EnvelopeVector {
  name: string
  description: string
  bytes: string
  /** What openEnvelope returns: 'ok' or the EnvelopeErrorCode. */
  open: 'ok' | EnvelopeErrorCode
}

export interface AllowListVector {
  name: string
  description: string
  bytes: string
  /** Whether openAllowList accepts it. */
  open: 'ok' | 'invalid'
}

export interface LogVectors {
  about: string
  keys: Record<string, { seed: string, publicKey: string, peerId: string }>
  entries: EntryVector[]
  envelopes: EnvelopeVector[]
  allowLists: AllowListVector[]
}

export const VECTORS_FILE = fileURLToPath(new URL('log-entries.json', import.meta.url))

/** A fixed clock: 2023-11-14T22:13:20Z. */
const TIME = 1_700_000_000_000
const MAX_ENTRY_BYTES = 16 * 1024
const DAG_CBOR = 0x71
const RAW = 0x55
const LIBP2P_KEY = 0x72

// ---------------------------------------------------------------------------------------------
// A CBOR writer for bytes a canonical encoder will not produce.

/** A CBOR head; `width` forces the argument's size (0 = in the initial byte). */
function head(major: number, value: number, width?: 0 | 1 | 2 | 4 | 8): Uint8Array {
  const size = width ?? (value < 24 ? 0 : value < 0x100 ? 1 : value < 0x10000 ? 2 : value < 0x100000000 ? 4 : 8)
  const info = { 0: value, 1: 24, 2: 25, 4: 26, 8: 27 }[size]
  const out = new Uint8Array(1 + size)
  out[0] = (major << 5) | info
  let rest = BigInt(value)
  for (let i = size; i >= 1; i--) {
    out[i] = Number(rest & 0xffn)
    rest >>= 8n
  }
  return out
}

function float64(value: number): Uint8Array {
  const out = new Uint8Array(9)
  out[0] = 0xfb
  new DataView(out.buffer).setFloat64(1, value)
  return out
}

function float32(value: number): Uint8Array {
  const out = new Uint8Array(5)
  out[0] = 0xfa
  new DataView(out.buffer).setFloat32(1, value)
  return out
}

type Pairs = Array<[string, Uint8Array]>

/** Map entries in dag-cbor order: shorter keys first, then bytewise. */
function sortPairs(pairs: Pairs): Pairs {
  return [...pairs].sort(([a], [b]) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0))
}

/** A map's entries in dag-cbor order, values encoded. */
function pairsOf(value: Record<string, unknown>): Pairs {
  return sortPairs(Object.keys(value).map((key) => [key, dagCbor.encode(value[key])]))
}

function writeMap(pairs: Pairs, header = head(5, pairs.length)): Uint8Array {
  return concat(header, ...pairs.flatMap(([key, value]) => [dagCbor.encode(key), value]))
}

function replaceValue(pairs: Pairs, key: string, value: Uint8Array): Pairs {
  if (!pairs.some(([k]) => k === key)) throw new Error(`no ${key}`)
  return pairs.map(([k, v]) => [k, k === key ? value : v])
}

// ---------------------------------------------------------------------------------------------
// Keys, CIDs, peer IDs.

function cidOf(bytes: Uint8Array): CID {
  return CID.createV1(DAG_CBOR, Digest.create(0x12, sha256(bytes)))
}

function contentCid(label: string): CID {
  return CID.createV1(RAW, Digest.create(0x12, sha256(utf8(label))))
}

/** A key whose peer ID has a second spelling base58btc decoders accept (see the vector). */
function keyWithAlternateSpelling(): { key: TestKey, alternate: string } {
  for (let i = 0; ; i++) {
    const key = namedKey(`carol-${i}`)
    const canonical = base58btc.baseDecode(key.peerId)
    for (let j = 8; j < key.peerId.length; j++) {
      if (key.peerId[j] !== '1') continue
      const alternate = key.peerId.slice(0, j) + '\u0100' + key.peerId.slice(j + 1)
      let decoded: Uint8Array
      try {
        decoded = base58btc.baseDecode(alternate)
      } catch {
        continue
      }
      if (hex(decoded) === hex(canonical)) return { key, alternate }
    }
  }
}

// ---------------------------------------------------------------------------------------------

type Fields = Record<string, unknown>

function sign(fields: Fields, key: TestKey): Uint8Array {
  return ed25519.sign(dagCbor.encode(fields), key.seed)
}

function signed(fields: Fields, key: TestKey): Uint8Array {
  return dagCbor.encode({ ...fields, sig: sign(fields, key) })
}

function withSig(fields: Fields, sig: Uint8Array): Uint8Array {
  return dagCbor.encode({ ...fields, sig })
}

function withoutField(fields: Fields, field: string): Fields {
  const copy = { ...fields }
  delete copy[field]
  return copy
}

/** Grinds nonces r until k = H(R ‖ A ‖ M) mod 8 is (or is not) 0. */
function nonceWhere(publicKey: Uint8Array, message: Uint8Array, want: (kMod8: bigint) => boolean): bigint {
  for (let i = 0; ; i++) {
    const r = mod(fromLittleEndian(sha512(utf8('pharos/vectors/nonce'), Uint8Array.of(i & 0xff, i >> 8))), L)
    const k = challenge(times(BASE, r).toBytes(), publicKey, message)
    if (want(k % 8n)) return r
  }
}

/** A signature (R = [S]B, S): under any key whose [k]A is the identity, it "verifies" for any message. */
function identityKeySignature(s: bigint): Uint8Array {
  return concat(times(BASE, s).toBytes(), toLittleEndian(s))
}

export function generateLogVectors(): LogVectors {
  const alice = namedKey('alice')
  const bob = namedKey('bob')
  const { key: carol, alternate: carolAlternate } = keyWithAlternateSpelling()
  const torsion = torsionPoint()
  const identityEncoding = pointEncoding(1n)
  const identityNonCanonical = pointEncoding(P + 1n)

  const entries: EntryVector[] = []
  const entry = (name: string, description: string, bytes: Uint8Array, decode: 'ok' | EntryErrorCode, verify: 'ok' | EntrySignatureError | null = null): void => {
    if ((decode === 'ok') !== (verify !== null)) throw new Error(`${name}: a verify result exactly when it decodes`)
    entries.push({ name, description, bytes: hex(bytes), decode, cid: decode === 'ok' ? cidOf(bytes).toString() : null, verify })
  }

  // --- Valid entries -------------------------------------------------------------------------
  const genesisFields: Fields = {
    v: 1,
    author: alice.peerId,
    seq: 0,
    prev: null,
    action: 'append-feed-post',
    timestamp: TIME,
    params: { content: contentCid('post 0') }
  }
  const genesis = signed(genesisFields, alice)
  const genesisCid = cidOf(genesis)
  entry('valid-genesis', 'seq 0, prev null: the first entry of alice\'s log', genesis, 'ok', 'ok')

  const secondFields: Fields = { ...genesisFields, seq: 1, prev: genesisCid, timestamp: TIME + 60_000, params: { content: contentCid('post 1') } }
  const second = signed(secondFields, alice)
  entry('valid-second', 'seq 1 whose prev is valid-genesis', second, 'ok', 'ok')

  const nestedFields: Fields = {
    ...genesisFields,
    seq: 2,
    prev: cidOf(second),
    timestamp: TIME + 120_000,
    params: {
      content: contentCid('post 2'),
      attachments: [contentCid('image a'), CID.createV0(Digest.create(0x12, sha256(utf8('image b'))))],
      quote: { entry: genesisCid, author: alice.peerId },
      tags: ['a', 'b'],
      score: 1.5,
      draft: false,
      nothing: null,
      blob: Uint8Array.of(1, 2, 3)
    }
  }
  entry('valid-nested-params', 'params hold CIDs nested in a list and a map (a CIDv0 among them: only prev is restricted), a float, bytes, null', signed(nestedFields, alice), 'ok', 'ok')

  const followFields: Fields = { ...genesisFields, action: 'follow', params: {} }
  entry('valid-other-action', 'an action other than append-feed-post may have empty params', signed(followFields, alice), 'ok', 'ok')

  const maxSeqFields: Fields = { ...genesisFields, seq: Number.MAX_SAFE_INTEGER, prev: genesisCid, timestamp: 0 }
  entry('valid-max-seq', 'seq 2^53 - 1 (largest safe integer, an 8-byte CBOR uint) and timestamp 0', signed(maxSeqFields, alice), 'ok', 'ok')

  const paddedFields = (padding: number): Fields => ({ ...genesisFields, params: { content: contentCid('post 0'), padding: 'x'.repeat(padding) } })
  let padding = MAX_ENTRY_BYTES - genesis.length - 20
  while (signed(paddedFields(padding), alice).length < MAX_ENTRY_BYTES) padding++
  const atLimit = signed(paddedFields(padding), alice)
  if (atLimit.length !== MAX_ENTRY_BYTES) throw new Error('padding overshot')
  entry('valid-at-size-limit', `exactly ${MAX_ENTRY_BYTES} bytes`, atLimit, 'ok', 'ok')

  // --- too-large, not-cbor, non-canonical ------------------------------------------------------
  entry('too-large', `${MAX_ENTRY_BYTES + 1} bytes, otherwise valid and correctly signed`, signed(paddedFields(padding + 1), alice), 'too-large')

  entry('not-cbor-empty', 'no bytes at all', new Uint8Array(0), 'not-cbor')
  entry('not-cbor-truncated', 'valid-genesis without its last byte', genesis.subarray(0, genesis.length - 1), 'not-cbor')
  entry('not-cbor-trailing-byte', 'valid-genesis followed by one 0x00', concat(genesis, Uint8Array.of(0)), 'not-cbor')
  const genesisPairs = pairsOf({ ...genesisFields, sig: sign(genesisFields, alice) })
  entry('not-cbor-duplicate-key', 'valid-genesis with a second "seq" key (map of 9 entries)', writeMap([...genesisPairs, ['seq', head(0, 0)]]), 'not-cbor')
  entry('not-cbor-indefinite-map', 'valid-genesis as an indefinite-length map (0xbf … 0xff)', concat(writeMap(genesisPairs, Uint8Array.of(0xbf)), Uint8Array.of(0xff)), 'not-cbor')
  entry('not-cbor-unknown-tag', 'timestamp wrapped in CBOR tag 1 (epoch time); dag-cbor knows only tag 42',
    writeMap(replaceValue(genesisPairs, 'timestamp', concat(head(6, 1), head(0, TIME)))), 'not-cbor')
  const secondPairs = pairsOf({ ...secondFields, sig: sign(secondFields, alice) })
  entry('not-cbor-cid-without-prefix', 'prev as tag 42 over the CID bytes without the leading 0x00',
    writeMap(replaceValue(secondPairs, 'prev', concat(head(6, 42), head(2, genesisCid.bytes.length), genesisCid.bytes))), 'not-cbor')
  // The strict dag-cbor decoder itself refuses non-minimal integers and lengths, before the
  // re-encoding comparison could call them non-canonical: they are 'not-cbor'.
  entry('not-cbor-non-minimal-integer', 'valid-second with seq 1 written in two bytes (0x18 0x01): refused by the strict decoder',
    writeMap(replaceValue(secondPairs, 'seq', head(0, 1, 1))), 'not-cbor')
  entry('not-cbor-non-minimal-length', 'valid-genesis with the action string\'s length written in one extra byte (0x78 0x10)',
    writeMap(replaceValue(genesisPairs, 'action', concat(head(3, 16, 1), utf8('append-feed-post')))), 'not-cbor')

  const swapped = [...genesisPairs]
  const [first, secondPair] = [swapped[0], swapped[1]]
  if (first === undefined || secondPair === undefined) throw new Error('empty map')
  swapped[0] = secondPair
  swapped[1] = first
  entry('non-canonical-unsorted-keys', 'valid-genesis with "seq" before "v": same value, correctly signed, but a second CID', writeMap(swapped), 'non-canonical')
  entry('non-canonical-integer-as-float', 'valid-genesis with timestamp written as the float64 1700000000000.0',
    writeMap(replaceValue(genesisPairs, 'timestamp', float64(TIME))), 'non-canonical')
  const scoreFields: Fields = { ...genesisFields, params: { content: contentCid('post 0'), score: 1.5 } }
  const scorePairs = pairsOf({ ...scoreFields, sig: sign(scoreFields, alice) })
  const scoreParams = pairsOf({ content: contentCid('post 0'), score: 1.5 })
  entry('non-canonical-float32', 'params.score 1.5 written as float32; dag-cbor floats are always float64',
    writeMap(replaceValue(scorePairs, 'params', writeMap(replaceValue(scoreParams, 'score', float32(1.5))))), 'non-canonical')
  const nullFields: Fields = { ...genesisFields, params: { content: contentCid('post 0'), nothing: null } }
  const nullPairs = pairsOf({ ...nullFields, sig: sign(nullFields, alice) })
  entry('non-canonical-undefined', 'params.nothing as CBOR undefined (0xf7), which dag-cbor reads as null',
    writeMap(replaceValue(nullPairs, 'params', writeMap(replaceValue(pairsOf({ content: contentCid('post 0'), nothing: null }), 'nothing', Uint8Array.of(0xf7))))), 'non-canonical')
  const zeroFields: Fields = { ...genesisFields, params: { content: contentCid('post 0'), zero: 0 } }
  const zeroPairs = pairsOf({ ...zeroFields, sig: sign(zeroFields, alice) })
  entry('non-canonical-negative-zero', 'params.zero as the float64 -0.0, which reads as the integer 0',
    writeMap(replaceValue(zeroPairs, 'params', writeMap(replaceValue(pairsOf({ content: contentCid('post 0'), zero: 0 }), 'zero', float64(-0))))), 'non-canonical')

  // A map the JS dag-cbor encoder takes for a CID (its "/" equals its "bytes"): it decodes, but
  // writing it back throws, so no signature over it can be checked. Written out by hand.
  const lookalike = writeMap([['/', dagCbor.encode('x')], ['bytes', dagCbor.encode('x')]])
  const lookalikeFields = replaceValue(pairsOf(genesisFields), 'params', writeMap([['content', lookalike]]))
  const lookalikeSig = ed25519.sign(writeMap(lookalikeFields), alice.seed)
  entry('non-canonical-cid-lookalike', 'params.content = { "/": "x", "bytes": "x" }, signed over the hand-written bytes: the encoder takes the map for a CID and cannot write it back (this used to throw out of the decoder)',
    writeMap(sortPairs([...lookalikeFields, ['sig', dagCbor.encode(lookalikeSig)]])), 'non-canonical')

  // --- unsupported-version, bad-shape ---------------------------------------------------------
  entry('unsupported-version-2', 'v: 2', signed({ ...genesisFields, v: 2 }, alice), 'unsupported-version')
  entry('unsupported-version-0', 'v: 0', signed({ ...genesisFields, v: 0 }, alice), 'unsupported-version')
  entry('unsupported-version-string', 'v: "1"', signed({ ...genesisFields, v: '1' }, alice), 'unsupported-version')

  entry('bad-shape-not-a-map', 'a CBOR list', dagCbor.encode([1, alice.peerId]), 'bad-shape')
  entry('bad-shape-extra-field', 'valid-genesis plus a "tags" field', signed({ ...genesisFields, tags: [] }, alice), 'bad-shape')
  entry('bad-shape-missing-field', 'valid-genesis without timestamp', signed(withoutField(genesisFields, 'timestamp'), alice), 'bad-shape')
  entry('bad-shape-missing-version', 'valid-genesis without v', signed(withoutField(genesisFields, 'v'), alice), 'bad-shape')
  entry('bad-shape-missing-sig', 'the unsigned map', dagCbor.encode(genesisFields), 'bad-shape')
  entry('bad-shape-proto-key', 'valid-genesis plus a "__proto__" field', signed({ ...genesisFields, ['__proto__']: {} }, alice), 'bad-shape')
  entry('bad-shape-negative-seq', 'seq: -1', signed({ ...genesisFields, seq: -1 }, alice), 'bad-shape')
  entry('bad-shape-seq-beyond-safe', 'seq: 2^53, past the integers every platform reads exactly', signed({ ...secondFields, seq: 2n ** 53n }, alice), 'bad-shape')
  entry('bad-shape-float-timestamp', 'timestamp: 1700000000000.5', signed({ ...genesisFields, timestamp: TIME + 0.5 }, alice), 'bad-shape')
  entry('bad-shape-negative-timestamp', 'timestamp: -1', signed({ ...genesisFields, timestamp: -1 }, alice), 'bad-shape')
  entry('bad-shape-action-uppercase', 'action: "Append-Feed-Post"', signed({ ...genesisFields, action: 'Append-Feed-Post' }, alice), 'bad-shape')
  entry('bad-shape-action-too-long', 'action of 65 characters', signed({ ...genesisFields, action: 'a'.repeat(65) }, alice), 'bad-shape')
  entry('bad-shape-sig-not-bytes', 'sig as a hex string', dagCbor.encode({ ...genesisFields, sig: hex(sign(genesisFields, alice)) }), 'bad-shape')

  // --- bad-author --------------------------------------------------------------------------------
  const aliceKeyProto = concat(Uint8Array.of(0x08, 0x01, 0x12, 0x20), alice.publicKey)
  const authors: Array<[string, string, unknown]> = [
    ['bad-author-rsa', 'an RSA-style peer ID: the sha2-256 multihash of a key (Qm…)', base58btc.baseEncode(concat(Uint8Array.of(0x12, 0x20), sha256(utf8('an RSA public key'))))],
    ['bad-author-secp256k1', 'a secp256k1 peer ID (16Uiu2…)', base58btc.baseEncode(concat(Uint8Array.of(0x00, 0x25, 0x08, 0x02, 0x12, 0x21), secp256k1.getPublicKey(alice.seed, true)))],
    ['bad-author-ed25519-hashed', 'alice\'s ed25519 key as a sha2-256 multihash (Qm…) instead of inline', base58btc.baseEncode(concat(Uint8Array.of(0x12, 0x20), sha256(aliceKeyProto)))],
    ['bad-author-invalid-base58', 'alice\'s peer ID with one character replaced by "0", not in the base58 alphabet', alice.peerId.slice(0, 20) + '0' + alice.peerId.slice(21)],
    ['bad-author-trailing-space', 'alice\'s peer ID followed by a space', alice.peerId + ' '],
    ['bad-author-multibase', 'alice\'s peer ID with the multibase prefix "z"', 'z' + alice.peerId],
    ['bad-author-cid', 'alice\'s peer ID as a CIDv1 (libp2p-key, base32)', CID.createV1(LIBP2P_KEY, Digest.create(0x00, aliceKeyProto)).toString(base32)],
    ['bad-author-long-key', 'an identity multihash of 33 key bytes', base58btc.baseEncode(concat(Uint8Array.of(0x00, 0x25, 0x08, 0x01, 0x12, 0x21), alice.publicKey, Uint8Array.of(0)))],
    ['bad-author-bytes', 'author as the peer ID\'s bytes instead of its string', base58btc.baseDecode(alice.peerId)],
    ['bad-author-empty', 'author: ""', '']
  ]
  for (const [name, description, author] of authors) entry(name, description, signed({ ...genesisFields, author }, alice), 'bad-author')
  entry('bad-author-non-canonical-base58',
    'carol\'s peer ID with one "1" replaced by U+0100: base-x decoders read a character outside Latin-1 as a zero digit when the value so far is a multiple of 256, so it names carol\'s key, but it is a second spelling of her peer ID (signed by carol)',
    signed({ ...genesisFields, author: carolAlternate }, carol), 'bad-author')

  // --- bad-prev, bad-params ------------------------------------------------------------------
  entry('bad-prev-genesis-with-prev', 'seq 0 with a prev', signed({ ...genesisFields, prev: genesisCid }, alice), 'bad-prev')
  entry('bad-prev-null-after-genesis', 'seq 1 with prev null', signed({ ...secondFields, prev: null }, alice), 'bad-prev')
  entry('bad-prev-raw-codec', 'prev a raw (0x55) CID', signed({ ...secondFields, prev: CID.createV1(RAW, genesisCid.multihash) }, alice), 'bad-prev')
  entry('bad-prev-cidv0', 'prev a CIDv0 (dag-pb)', signed({ ...secondFields, prev: CID.createV0(Digest.create(0x12, genesisCid.multihash.digest)) }, alice), 'bad-prev')
  entry('bad-prev-sha512', 'prev a dag-cbor CIDv1 with a sha2-512 multihash', signed({ ...secondFields, prev: CID.createV1(DAG_CBOR, Digest.create(0x13, sha512(genesis))) }, alice), 'bad-prev')
  entry('bad-prev-string', 'prev as the CID\'s string', signed({ ...secondFields, prev: genesisCid.toString() }, alice), 'bad-prev')

  entry('bad-params-no-content', 'append-feed-post with params {}', signed({ ...genesisFields, params: {} }, alice), 'bad-params')
  entry('bad-params-content-string', 'append-feed-post with content as a CID string', signed({ ...genesisFields, params: { content: contentCid('post 0').toString() } }, alice), 'bad-params')
  entry('bad-params-list', 'params a list of CIDs', signed({ ...genesisFields, params: [contentCid('post 0')] }, alice), 'bad-params')
  entry('bad-params-null', 'params null', signed({ ...genesisFields, action: 'follow', params: null }, alice), 'bad-params')

  // --- Signatures: well-formed entries whose signature must be refused -------------------------
  const message = dagCbor.encode(genesisFields)
  const sig = sign(genesisFields, alice)
  const r0 = sig.subarray(0, 32)
  const s0 = fromLittleEndian(sig.subarray(32))
  const flip = (bytes: Uint8Array, index: number): Uint8Array => {
    const copy = bytes.slice()
    copy[index] = (copy[index] ?? 0) ^ 1
    return copy
  }
  entry('sig-flipped-bit-in-r', 'valid-genesis with the low bit of R\'s first byte flipped', withSig(genesisFields, flip(sig, 0)), 'ok', 'bad-signature')
  entry('sig-flipped-bit-in-s', 'valid-genesis with the low bit of S\'s first byte flipped', withSig(genesisFields, flip(sig, 32)), 'ok', 'bad-signature')
  entry('sig-message-changed', 'valid-genesis\'s signature on the same entry with timestamp + 1', withSig({ ...genesisFields, timestamp: TIME + 1 }, sig), 'ok', 'bad-signature')
  entry('sig-of-another-entry', 'valid-genesis\'s signature on valid-second\'s fields', withSig(secondFields, sig), 'ok', 'bad-signature')
  entry('sig-by-other-key', 'valid-genesis\'s fields (author alice) signed by bob', withSig(genesisFields, sign(genesisFields, bob)), 'ok', 'bad-signature')
  entry('sig-63-bytes', 'valid-genesis\'s signature without its last byte', withSig(genesisFields, sig.subarray(0, 63)), 'ok', 'bad-length')
  entry('sig-65-bytes', 'valid-genesis\'s signature plus a 0x00', withSig(genesisFields, concat(sig, Uint8Array.of(0))), 'ok', 'bad-length')
  entry('sig-empty', 'sig of no bytes', withSig(genesisFields, new Uint8Array(0)), 'ok', 'bad-length')
  entry('sig-s-plus-l', 'valid-genesis\'s signature with S + L: the malleated twin; verifiers that reduce S accept it', withSig(genesisFields, concat(r0, toLittleEndian(s0 + L))), 'ok', 'non-canonical-s')
  entry('sig-s-equals-l', 'R of valid-genesis, S = L', withSig(genesisFields, concat(r0, toLittleEndian(L))), 'ok', 'non-canonical-s')
  entry('sig-s-all-ones', 'R of valid-genesis, S = 2^256 - 1', withSig(genesisFields, concat(r0, new Uint8Array(32).fill(0xff))), 'ok', 'non-canonical-s')
  entry('sig-all-zero', '64 zero bytes: S = 0 and R = the encoding y = 0, a point of order 4', withSig(genesisFields, new Uint8Array(64)), 'ok', 'small-order-point')

  const kFor = (r: Uint8Array, publicKey: Uint8Array, m: Uint8Array): bigint => challenge(r, publicKey, m)
  const kNonCanonical = kFor(identityNonCanonical, alice.publicKey, message)
  entry('sig-r-non-canonical', 'R = the identity written as y = p + 1 (not reduced), S = k·a: a verifier that reduces y (ZIP-215) accepts it',
    withSig(genesisFields, concat(identityNonCanonical, toLittleEndian(mod(kNonCanonical * alice.scalar, L)))), 'ok', 'non-canonical-point')
  const kIdentity = kFor(identityEncoding, alice.publicKey, message)
  entry('sig-r-identity', 'R = the identity (small order), S = k·a: [S]B - [k]A = R, so a verifier without the small-order rule accepts it',
    withSig(genesisFields, concat(identityEncoding, toLittleEndian(mod(kIdentity * alice.scalar, L)))), 'ok', 'small-order-point')
  const torsionBytes = torsion.toBytes()
  const kTorsion = kFor(torsionBytes, alice.publicKey, message)
  entry('sig-r-order-8', 'R = a point of order 8, S = k·a: a cofactored verifier accepts it',
    withSig(genesisFields, concat(torsionBytes, toLittleEndian(mod(kTorsion * alice.scalar, L)))), 'ok', 'small-order-point')
  const rNonce = mod(fromLittleEndian(sha512(alice.prefix, message)), L)
  entry('sig-r-torsion-component', 'R = [r]B + T (T of order 8), S = r + k·a: cofactored verifiers accept it, cofactorless ones (ours) do not',
    withSig(genesisFields, signWith({ r: rNonce, extra: torsion, publicKey: alice.publicKey, scalar: alice.scalar, message })), 'ok', 'bad-signature')
  entry('sig-r-off-curve', `R = ${hex(offCurveEncoding())}, a canonical y that is not on the curve, S of valid-genesis`,
    withSig(genesisFields, concat(offCurveEncoding(), sig.subarray(32))), 'ok', 'bad-signature')

  // --- Signatures: author keys that must be refused -------------------------------------------
  const authorKeyed = (publicKey: Uint8Array): Fields => ({ ...genesisFields, author: ed25519PeerId(publicKey) })
  entry('author-key-identity', 'author key = the identity point (0x01 00…00), sig (R = [S]B, S): it "signs" every message for a verifier without the small-order rule',
    withSig(authorKeyed(identityEncoding), identityKeySignature(12345n)), 'ok', 'small-order-point')
  entry('author-key-zero', 'author key = 32 zero bytes (y = 0, order 4), sig (R = [S]B, S)',
    withSig(authorKeyed(new Uint8Array(32)), identityKeySignature(12345n)), 'ok', 'small-order-point')
  const order8Fields = authorKeyed(torsionBytes)
  const order8Message = dagCbor.encode(order8Fields)
  let order8S = 1n
  while (challenge(times(BASE, order8S).toBytes(), torsionBytes, order8Message) % 8n !== 0n) order8S++
  entry('author-key-order-8', 'author key = a point T of order 8, sig (R = [S]B, S) with 8 | k, so [k]T is the identity and cofactorless verifiers without the small-order rule accept it',
    withSig(order8Fields, identityKeySignature(order8S)), 'ok', 'small-order-point')
  entry('author-key-non-canonical', 'author key = the identity written as y = p + 1, sig (R = [S]B, S): ZIP-215 verifiers accept it',
    withSig(authorKeyed(identityNonCanonical), identityKeySignature(12345n)), 'ok', 'non-canonical-point')
  entry('author-key-off-curve', 'author key a canonical y not on the curve; sig of valid-genesis',
    withSig(authorKeyed(offCurveEncoding()), sig), 'ok', 'bad-signature')

  // A key with a torsion component, A' = [a]B + T: signatures hold for cofactorless verifiers
  // exactly when 8 divides k (then [k]T vanishes).
  const mixedKey = times(BASE, alice.scalar).add(torsion).toBytes()
  const mixedFields = authorKeyed(mixedKey)
  const mixedMessage = dagCbor.encode(mixedFields)
  entry('author-key-torsion-component-k-divisible-by-8', 'author key [a]B + T (T of order 8), a signature with 8 | k: every verifier accepts it; the key is not of small order, so the rule admits it',
    withSig(mixedFields, signWith({ r: nonceWhere(mixedKey, mixedMessage, (k) => k === 0n), publicKey: mixedKey, scalar: alice.scalar, message: mixedMessage })), 'ok', 'ok')
  entry('author-key-torsion-component-k-not-divisible-by-8', 'author key [a]B + T, a signature with k mod 8 ≠ 0: cofactored verifiers accept it, cofactorless ones (ours) do not',
    withSig(mixedFields, signWith({ r: nonceWhere(mixedKey, mixedMessage, (k) => k !== 0n), publicKey: mixedKey, scalar: alice.scalar, message: mixedMessage })), 'ok', 'bad-signature')

  // --- Envelopes ----------------------------------------------------------------------------------
  const publishDomain = utf8('pharos/publish/1')
  const envelopes: EnvelopeVector[] = []
  const envelope = (name: string, description: string, bytes: Uint8Array, open: 'ok' | EnvelopeErrorCode): void => {
    envelopes.push({ name, description, bytes: hex(bytes), open })
  }
  const envelopeOf = (entryBytes: Uint8Array, publisher: TestKey): { v: number, entry: Uint8Array, publisher: string, sig: Uint8Array } =>
    ({ v: 1, entry: entryBytes, publisher: publisher.peerId, sig: ed25519.sign(concat(publishDomain, entryBytes), publisher.seed) })
  envelope('valid', 'bob publishes valid-genesis', dagCbor.encode(envelopeOf(genesis, bob)), 'ok')
  envelope('valid-own-entry', 'alice publishes her own valid-second', dagCbor.encode(envelopeOf(second, alice)), 'ok')
  envelope('valid-around-forged-entry', 'bob publishes sig-by-other-key: the envelope holds, so bob vouched for a forged entry', dagCbor.encode(envelopeOf(withSig(genesisFields, sign(genesisFields, bob)), bob)), 'ok')
  const bobEnvelope = envelopeOf(genesis, bob)
  envelope('envelope-sig-flipped', 'valid with a bit of the envelope signature flipped; the entry inside is fine',
    dagCbor.encode({ ...bobEnvelope, sig: flip(bobEnvelope.sig, 40) }), 'bad-envelope-signature')
  envelope('envelope-sig-without-domain', 'bob\'s signature over the entry bytes alone, without "pharos/publish/1"',
    dagCbor.encode({ ...bobEnvelope, sig: ed25519.sign(genesis, bob.seed) }), 'bad-envelope-signature')
  envelope('envelope-sig-by-author', 'publisher bob, signed by alice', dagCbor.encode({ ...bobEnvelope, sig: ed25519.sign(concat(publishDomain, genesis), alice.seed) }), 'bad-envelope-signature')
  envelope('envelope-sig-s-plus-l', 'valid with the envelope signature\'s S + L',
    dagCbor.encode({ ...bobEnvelope, sig: concat((bobEnvelope.sig).subarray(0, 32), toLittleEndian(fromLittleEndian((bobEnvelope.sig).subarray(32)) + L)) }), 'bad-envelope-signature')
  envelope('publisher-secp256k1', 'publisher a secp256k1 peer ID', dagCbor.encode({ ...bobEnvelope, publisher: authors[1]?.[2] }), 'bad-publisher')
  envelope('publisher-non-canonical', 'publisher carol\'s second spelling (see bad-author-non-canonical-base58), signed by carol',
    dagCbor.encode({ ...envelopeOf(genesis, carol), publisher: carolAlternate }), 'bad-publisher')
  const envelopePairs = pairsOf(bobEnvelope)
  const [e0, e1] = [envelopePairs[0], envelopePairs[1]]
  if (e0 === undefined || e1 === undefined) throw new Error('empty map')
  envelope('non-canonical-unsorted-keys', 'valid with its first two keys swapped', writeMap([e1, e0, ...envelopePairs.slice(2)]), 'non-canonical')
  envelope('non-canonical-cid-lookalike', 'valid with entry replaced by { "/": "x", "bytes": "x" }, which the encoder cannot write back',
    writeMap(replaceValue(envelopePairs, 'entry', lookalike)), 'non-canonical')
  envelope('not-cbor-truncated', 'valid without its last byte', dagCbor.encode(bobEnvelope).subarray(0, -1), 'not-cbor')
  envelope('bad-shape-version', 'v: 2', dagCbor.encode({ ...bobEnvelope, v: 2 }), 'bad-shape')
  envelope('bad-shape-extra-field', 'valid plus a "topic" field', dagCbor.encode({ ...bobEnvelope, topic: 'content' }), 'bad-shape')
  envelope('bad-shape-entry-not-bytes', 'entry as the decoded map instead of its bytes', dagCbor.encode({ ...bobEnvelope, entry: { ...genesisFields, sig } }), 'bad-shape')
  envelope('too-large', `an envelope of ${MAX_ENTRY_BYTES + 513} bytes`, (() => {
    const base = dagCbor.encode(envelopeOf(new Uint8Array(MAX_ENTRY_BYTES + 400), bob)).length
    const out = dagCbor.encode(envelopeOf(new Uint8Array(MAX_ENTRY_BYTES + 400 + (MAX_ENTRY_BYTES + 513 - base)), bob))
    if (out.length !== MAX_ENTRY_BYTES + 513) throw new Error(`too-large envelope is ${out.length} bytes`)
    return out
  })(), 'too-large')

  // --- Allow-lists ----------------------------------------------------------------------------------
  const allowDomain = utf8('pharos/allow-list/1')
  const allowLists: AllowListVector[] = []
  const allowList = (name: string, description: string, bytes: Uint8Array, open: 'ok' | 'invalid'): void => {
    allowLists.push({ name, description, bytes: hex(bytes), open })
  }
  const keyHash = sha256(utf8('a symmetric key of 32 bytes.....'))
  const listBody = { v: 1, type: 'allow-list', author: alice.peerId, keyHash, version: 1, peers: [bob.peerId] }
  const listSig = (body: Record<string, unknown>, key: TestKey): Uint8Array => ed25519.sign(concat(allowDomain, dagCbor.encode(body)), key.seed)
  const validList = { ...listBody, sig: listSig(listBody, alice) }
  allowList('valid', 'alice lets bob read; version 1', dagCbor.encode(validList), 'ok')
  const emptyBody = { ...listBody, version: 2, peers: [] }
  allowList('valid-empty', 'alice revokes everyone; version 2', dagCbor.encode({ ...emptyBody, sig: listSig(emptyBody, alice) }), 'ok')
  allowList('tampered-peers', 'valid with carol added to peers after signing', dagCbor.encode({ ...validList, peers: [bob.peerId, carol.peerId] }), 'invalid')
  allowList('tampered-version', 'valid with version raised after signing', dagCbor.encode({ ...validList, version: 2 }), 'invalid')
  allowList('wrong-author', 'alice\'s list claiming author bob', dagCbor.encode({ ...validList, author: bob.peerId }), 'invalid')
  const bobBody = { ...listBody, author: bob.peerId }
  allowList('signed-by-other-key', 'author bob, signed by alice', dagCbor.encode({ ...bobBody, sig: listSig(bobBody, alice) }), 'invalid')
  allowList('sig-without-domain', 'signed over the map alone, without "pharos/allow-list/1"', dagCbor.encode({ ...listBody, sig: ed25519.sign(dagCbor.encode(listBody), alice.seed) }), 'invalid')
  allowList('sig-is-a-publish-signature', 'signed under "pharos/publish/1" instead', dagCbor.encode({ ...listBody, sig: ed25519.sign(concat(publishDomain, dagCbor.encode(listBody)), alice.seed) }), 'invalid')
  const shortHashBody = { ...listBody, keyHash: keyHash.subarray(0, 31) }
  allowList('key-hash-31-bytes', 'keyHash of 31 bytes, correctly signed', dagCbor.encode({ ...shortHashBody, sig: listSig(shortHashBody, alice) }), 'invalid')
  const altPeerBody = { ...listBody, peers: [carolAlternate] }
  allowList('peer-non-canonical', 'peers holds carol\'s second spelling, correctly signed', dagCbor.encode({ ...altPeerBody, sig: listSig(altPeerBody, alice) }), 'invalid')
  const typeBody = { ...listBody, type: 'deny-list' }
  allowList('wrong-type', 'type "deny-list", correctly signed', dagCbor.encode({ ...typeBody, sig: listSig(typeBody, alice) }), 'invalid')
  allowList('peer-cid-lookalike', 'peers holds { "/": "x", "bytes": "x" }, which the encoder cannot write back',
    writeMap(replaceValue(pairsOf(validList), 'peers', concat(head(4, 1), lookalike))), 'invalid')
  const listPairs = pairsOf(validList)
  const [l0, l1] = [listPairs[0], listPairs[1]]
  if (l0 === undefined || l1 === undefined) throw new Error('empty map')
  allowList('non-canonical-unsorted-keys', 'valid with its first two keys swapped', writeMap([l1, l0, ...listPairs.slice(2)]), 'invalid')

  const keyInfo = (key: TestKey): { seed: string, publicKey: string, peerId: string } => ({ seed: hex(key.seed), publicKey: hex(key.publicKey), peerId: key.peerId })
  return {
    about: 'Pharos profile-log vectors (DESIGN.md §4, issue 5), generated by generate-log-vectors.ts; do not edit by hand. ' +
      'entries: decode = what decodeEntry returns (ok or EntryErrorCode), cid when ok, verify = what verifyEntry returns for the decoded entry (ok or EntrySignatureError). ' +
      'envelopes: open = what openEnvelope returns. allowLists: open = whether openAllowList accepts. Keys are ed25519 seeds; signatures are RFC 8032 deterministic.',
    keys: { alice: keyInfo(alice), bob: keyInfo(bob), carol: keyInfo(carol) },
    entries,
    envelopes,
    allowLists
  }
}

export function serializeLogVectors(vectors: LogVectors): string {
  return JSON.stringify(vectors, null, 2) + '\n'
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const vectors = generateLogVectors()
  writeFileSync(VECTORS_FILE, serializeLogVectors(vectors))
  console.log(`wrote ${vectors.entries.length} entry, ${vectors.envelopes.length} envelope and ${vectors.allowLists.length} allow-list vectors to ${VECTORS_FILE}`)
}
