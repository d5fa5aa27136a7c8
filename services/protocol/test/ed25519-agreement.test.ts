/**
 * One ed25519 decision for every code path (issue 5): verifyEd25519 (strict checks, then
 * WebCrypto) decides exactly like a cofactorless strict verifier written out here from
 * RFC 8032 with noble points, and like node:crypto after the same checks: on every signature
 * of the vectors and on a few hundred seeded random valid and invalid ones. The small-order
 * table is checked against the curve, and the edge-case vectors are checked to be ones a lax
 * verifier (ZIP-215, cofactored) really accepts.
 */
import assert from 'node:assert/strict'
import { createPublicKey, verify as nodeVerify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { ed25519 } from '@noble/curves/ed25519.js'
import { checkPoint, checkSignatureEncoding, decodeEntry, publicKeyFromPeerId, signingBytes, verifyEd25519 } from '../src/log/index.ts'
import type { SignatureCheck } from '../src/log/index.ts'
import { SMALL_ORDER_Y } from '../src/log/ed25519.ts'
import { createRng } from '../src/overlay/index.ts'
import type { Rng } from '../src/overlay/index.ts'
import {
  BASE,
  challenge,
  concat,
  fromHex,
  fromLittleEndian,
  hex,
  L,
  mod,
  P,
  pointEncoding,
  smallOrderPoints,
  testKey,
  times,
  toLittleEndian,
  torsionPoint,
  ZERO
} from './log-helpers.ts'
import type { Point } from './log-helpers.ts'
import { VECTORS_FILE } from './vectors/generate-log-vectors.ts'
import type { LogVectors } from './vectors/generate-log-vectors.ts'

type Decision = SignatureCheck | 'bad-signature'

interface Case {
  name: string
  publicKey: Uint8Array
  message: Uint8Array
  signature: Uint8Array
}

// ---------------------------------------------------------------------------------------------
// The references.

/** Strict point encoding rule: canonical y, and not a point of small order (whichever sign bit). */
function referencePointCheck(encoding: Uint8Array): SignatureCheck {
  if (encoding.length !== 32) return 'bad-length'
  if ((fromLittleEndian(encoding) & ((1n << 255n) - 1n)) >= P) return 'non-canonical-point'
  let point: Point
  try {
    // Lax decoding only to ask "is this a small-order point": it also reads x = 0 with the sign bit set.
    point = ed25519.Point.fromBytes(encoding, true)
  } catch {
    return 'ok' // not on the curve: the equation decides (bad-signature)
  }
  return point.isSmallOrder() ? 'small-order-point' : 'ok'
}

function referenceEncodingChecks(publicKey: Uint8Array, signature: Uint8Array): SignatureCheck {
  if (signature.length !== 64) return 'bad-length'
  if (fromLittleEndian(signature.subarray(32)) >= L) return 'non-canonical-s'
  const key = referencePointCheck(publicKey)
  if (key !== 'ok') return key
  return referencePointCheck(signature.subarray(0, 32))
}

/** (a) Cofactorless strict verification, RFC 8032 §5.1.7 with encodings compared: R = [S]B − [k]A. */
function referenceVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Decision {
  const encoding = referenceEncodingChecks(publicKey, signature)
  if (encoding !== 'ok') return encoding
  const rBytes = signature.subarray(0, 32)
  let a: Point
  try {
    a = ed25519.Point.fromBytes(publicKey, false)
    ed25519.Point.fromBytes(rBytes, false)
  } catch {
    return 'bad-signature'
  }
  const k = challenge(rBytes, publicKey, message)
  const s = fromLittleEndian(signature.subarray(32))
  const kA = k === 0n ? ZERO : a.multiplyUnsafe(k)
  const rCheck = times(BASE, s).subtract(kA)
  return hex(rCheck.toBytes()) === hex(rBytes) ? 'ok' : 'bad-signature'
}

/** (b) node:crypto (OpenSSL) after the same strict checks. */
function nodeCryptoVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Decision {
  const encoding = referenceEncodingChecks(publicKey, signature)
  if (encoding !== 'ok') return encoding
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' })
    return nodeVerify(null, message, key, signature) ? 'ok' : 'bad-signature'
  } catch {
    return 'bad-signature'
  }
}

/** A lax verifier: noble's default, ZIP-215 (cofactored, non-canonical encodings allowed, no small-order rule). */
function zip215Accepts(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: true })
  } catch {
    return false
  }
}

async function assertAgreement(cases: Case[]): Promise<Map<Decision, number>> {
  const seen = new Map<Decision, number>()
  for (const { name, publicKey, message, signature } of cases) {
    const ours = await verifyEd25519(publicKey, message, signature)
    assert.equal(ours, referenceVerify(publicKey, message, signature), `${name}: verifyEd25519 and the noble reference differ`)
    assert.equal(ours, nodeCryptoVerify(publicKey, message, signature), `${name}: verifyEd25519 and node:crypto differ`)
    seen.set(ours, (seen.get(ours) ?? 0) + 1)
  }
  return seen
}

// ---------------------------------------------------------------------------------------------
// The cases.

const vectors = JSON.parse(readFileSync(VECTORS_FILE, 'utf8')) as LogVectors

/** Every vector entry that decodes, as (author key, signed bytes, sig). */
async function vectorCases(): Promise<Array<Case & { expected: string | null }>> {
  const cases: Array<Case & { expected: string | null }> = []
  for (const vector of vectors.entries) {
    if (vector.decode !== 'ok') continue
    const decoded = await decodeEntry(fromHex(vector.bytes))
    assert.ok(decoded.ok, vector.name)
    const publicKey = publicKeyFromPeerId(decoded.value.entry.author)
    assert.ok(publicKey !== undefined, vector.name)
    cases.push({ name: vector.name, publicKey, message: signingBytes(decoded.value.entry), signature: decoded.value.entry.sig, expected: vector.verify })
  }
  return cases
}

function randomBytes(rng: Rng, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = rng.nextUint32() & 0xff
  return out
}

function randomBelow(rng: Rng, bound: bigint): bigint {
  return mod(fromLittleEndian(randomBytes(rng, 40)), bound)
}

function flipBit(bytes: Uint8Array, rng: Rng): Uint8Array {
  const copy = bytes.slice()
  const bit = rng.nextUint32() % (bytes.length * 8)
  copy[bit >> 3] = (copy[bit >> 3] ?? 0) ^ (1 << (bit & 7))
  return copy
}

function withS(signature: Uint8Array, s: bigint): Uint8Array {
  return concat(signature.subarray(0, 32), toLittleEndian(s))
}

function withSign(encoding: Uint8Array, sign: number): Uint8Array {
  const copy = encoding.slice()
  copy[31] = ((copy[31] ?? 0) & 0x7f) | (sign << 7)
  return copy
}

/** Seeded random signatures: a valid one, then one of many ways to spoil (or bend) it. */
function randomCases(seed: number, count: number): Case[] {
  const rng = createRng(seed)
  const smallOrder = smallOrderPoints()
  const torsion = torsionPoint()
  const cases: Case[] = []
  for (let i = 0; i < count; i++) {
    const key = testKey(randomBytes(rng, 32))
    const message = randomBytes(rng, rng.nextUint32() % 200)
    const signature = ed25519.sign(message, key.seed)
    const s = fromLittleEndian(signature.subarray(32))
    const r = randomBelow(rng, L)
    const pickSmall = (): Uint8Array => withSign((smallOrder[rng.nextUint32() % 8] ?? ZERO).toBytes(), rng.nextUint32() & 1)
    const nonCanonical = (): Uint8Array => pointEncoding(P + BigInt(rng.nextUint32() % 19), (rng.nextUint32() & 1) as 0 | 1)
    const variants: Array<[string, () => Case]> = [
      ['valid', () => ({ name: '', publicKey: key.publicKey, message, signature })],
      ['flipped bit in sig', () => ({ name: '', publicKey: key.publicKey, message, signature: flipBit(signature, rng) })],
      ['flipped bit in message', () => ({ name: '', publicKey: key.publicKey, message: message.length === 0 ? Uint8Array.of(1) : flipBit(message, rng), signature })],
      ['flipped bit in key', () => ({ name: '', publicKey: flipBit(key.publicKey, rng), message, signature })],
      ['S + L', () => ({ name: '', publicKey: key.publicKey, message, signature: withS(signature, s + L) })],
      ['S + random multiple of L', () => ({ name: '', publicKey: key.publicKey, message, signature: withS(signature, s + L * BigInt(1 + (rng.nextUint32() % 15))) })],
      ['random S', () => ({ name: '', publicKey: key.publicKey, message, signature: withS(signature, fromLittleEndian(randomBytes(rng, 32))) })],
      ['random R', () => ({ name: '', publicKey: key.publicKey, message, signature: concat(randomBytes(rng, 32), signature.subarray(32)) })],
      ['random key', () => ({ name: '', publicKey: randomBytes(rng, 32), message, signature })],
      ['random length', () => ({ name: '', publicKey: key.publicKey, message, signature: randomBytes(rng, rng.nextUint32() % 70) })],
      ['small-order R, S = k·a', () => {
        const rBytes = pickSmall()
        return { name: '', publicKey: key.publicKey, message, signature: concat(rBytes, toLittleEndian(mod(challenge(rBytes, key.publicKey, message) * key.scalar, L))) }
      }],
      ['small-order key, R = [S]B', () => ({ name: '', publicKey: pickSmall(), message, signature: concat(times(BASE, r).toBytes(), toLittleEndian(r)) })],
      ['non-canonical R', () => {
        const rBytes = nonCanonical()
        return { name: '', publicKey: key.publicKey, message, signature: concat(rBytes, toLittleEndian(mod(challenge(rBytes, key.publicKey, message) * key.scalar, L))) }
      }],
      ['non-canonical key', () => ({ name: '', publicKey: nonCanonical(), message, signature: concat(times(BASE, r).toBytes(), toLittleEndian(r)) })],
      ['R with a torsion component', () => {
        const rBytes = times(BASE, r).add(smallOrder[1 + (rng.nextUint32() % 7)] ?? torsion).toBytes()
        return { name: '', publicKey: key.publicKey, message, signature: concat(rBytes, toLittleEndian(mod(r + challenge(rBytes, key.publicKey, message) * key.scalar, L))) }
      }],
      ['key with a torsion component', () => {
        const mixed = times(BASE, key.scalar).add(smallOrder[1 + (rng.nextUint32() % 7)] ?? torsion).toBytes()
        const rBytes = times(BASE, r).toBytes()
        return { name: '', publicKey: mixed, message, signature: concat(rBytes, toLittleEndian(mod(r + challenge(rBytes, mixed, message) * key.scalar, L))) }
      }],
      ['sign bit of R flipped', () => ({ name: '', publicKey: key.publicKey, message, signature: concat(withSign(signature.subarray(0, 32), (signature[31] ?? 0) >> 7 ^ 1), signature.subarray(32)) })]
    ]
    const [what, make] = variants[i % variants.length] ?? variants[0]!
    cases.push({ ...make(), name: `random #${i} (${what})` })
  }
  return cases
}

// ---------------------------------------------------------------------------------------------

describe('ed25519: every code path decides the same', () => {
  it('on every signature of the vectors, and each decision is the one the vector names', async () => {
    const cases = await vectorCases()
    assert.ok(cases.length >= 25)
    await assertAgreement(cases)
    for (const { name, publicKey, message, signature, expected } of cases) assert.equal(await verifyEd25519(publicKey, message, signature), expected, name)
  })

  it('on 680 seeded random signatures, valid and spoiled in 17 ways', async () => {
    const seen = await assertAgreement(randomCases(0x5eed, 680))
    // The random cases reach every decision, or the comparison proves little.
    for (const decision of ['ok', 'bad-length', 'non-canonical-s', 'non-canonical-point', 'small-order-point', 'bad-signature'] as const) {
      assert.ok((seen.get(decision) ?? 0) >= 10, `${decision}: ${seen.get(decision) ?? 0}`)
    }
  })

  it('a key with a torsion component signs for cofactorless verifiers exactly when 8 divides k', async () => {
    const key = testKey(new Uint8Array(32).fill(9))
    const torsion = torsionPoint()
    const mixed = times(BASE, key.scalar).add(torsion).toBytes()
    const message = Uint8Array.of(1, 2, 3)
    let divisible = 0
    for (let i = 1n; i <= 64n; i++) {
      const rBytes = times(BASE, i).toBytes()
      const k = challenge(rBytes, mixed, message)
      const signature = concat(rBytes, toLittleEndian(mod(i + k * key.scalar, L)))
      const expected = k % 8n === 0n ? 'ok' : 'bad-signature'
      if (expected === 'ok') divisible++
      assert.equal(await verifyEd25519(mixed, message, signature), expected)
      assert.equal(zip215Accepts(mixed, message, signature), true, 'a cofactored verifier accepts all of them')
    }
    assert.ok(divisible > 0 && divisible < 64)
  })
})

describe('ed25519: the edge-case vectors are ones a lax verifier accepts', () => {
  const laxAccepted = [
    'sig-r-non-canonical',
    'sig-r-identity',
    'sig-r-order-8',
    'sig-r-torsion-component',
    'author-key-identity',
    'author-key-zero',
    'author-key-order-8',
    'author-key-non-canonical',
    'author-key-torsion-component-k-divisible-by-8',
    'author-key-torsion-component-k-not-divisible-by-8'
  ]
  it(`ZIP-215 accepts ${laxAccepted.join(', ')}; the strict rule refuses all but one`, async () => {
    const cases = new Map((await vectorCases()).map((c) => [c.name, c]))
    for (const name of laxAccepted) {
      const c = cases.get(name)
      assert.ok(c !== undefined, name)
      assert.equal(zip215Accepts(c.publicKey, c.message, c.signature), true, name)
      assert.equal(await verifyEd25519(c.publicKey, c.message, c.signature) === 'ok', name === 'author-key-torsion-component-k-divisible-by-8', name)
    }
  })

  it('the identity key "signs" any message for a verifier without the small-order rule, and never for ours', async () => {
    const identity = pointEncoding(1n)
    const s = 777n
    const signature = concat(times(BASE, s).toBytes(), toLittleEndian(s))
    for (const message of [new Uint8Array(0), Uint8Array.of(1), new TextEncoder().encode('anything at all')]) {
      assert.equal(zip215Accepts(identity, message, signature), true)
      assert.equal(await verifyEd25519(identity, message, signature), 'small-order-point')
    }
  })
})

describe('ed25519: the small-order table', () => {
  const points = smallOrderPoints()
  const cleared = (encoding: Uint8Array): string => hex(withSign(encoding, 0))

  it('the curve has eight points of order dividing 8, and the table holds exactly their y', () => {
    assert.equal(new Set(points.map((point) => hex(point.toBytes()))).size, 8)
    for (const point of points) {
      assert.ok(point.multiplyUnsafe(8n).is0() || point.double().double().double().is0())
      assert.ok(point.isSmallOrder())
    }
    assert.deepEqual(new Set(SMALL_ORDER_Y), new Set(points.map((point) => cleared(point.toBytes()))))
    assert.equal(SMALL_ORDER_Y.length, 5, 'eight points, three pairs ±x sharing a y')
    assert.ok(Object.isFrozen(SMALL_ORDER_Y))
  })

  it('checkPoint refuses each of them with either sign bit, and y ≥ p as non-canonical', () => {
    for (const point of points) {
      for (const sign of [0, 1]) assert.equal(checkPoint(withSign(point.toBytes(), sign)), 'small-order-point', hex(withSign(point.toBytes(), sign)))
    }
    for (let y = P; y < 1n << 255n; y++) {
      for (const sign of [0, 1] as const) assert.equal(checkPoint(pointEncoding(y, sign)), 'non-canonical-point', `y = p + ${y - P}`)
    }
    assert.equal(checkPoint(pointEncoding(P - 1n)), 'small-order-point', 'y = p − 1: the point (0, −1) of order 2')
    assert.equal(checkPoint(new Uint8Array(31)), 'bad-length')
  })

  it('checkPoint accepts points of the prime-order subgroup and points with a torsion component', () => {
    const rng = createRng(8)
    for (let i = 0; i < 64; i++) {
      const point = times(BASE, randomBelow(rng, L - 1n) + 1n)
      assert.equal(checkPoint(point.toBytes()), 'ok')
      assert.equal(checkPoint(point.add(points[1 + (i % 7)] ?? ZERO).toBytes()), 'ok')
    }
  })
})

describe('ed25519: the caller\'s buffers', () => {
  it('verifyEd25519 and checkSignatureEncoding never change them, Node Buffers included (slice() of a Buffer is a view)', async () => {
    // A signature whose R has the sign bit set: clearing it in place would spoil the signature.
    for (let i = 0; ; i++) {
      const key = testKey(new Uint8Array(32).fill(i))
      const message = Buffer.from(`message ${i}`)
      const signature = Buffer.from(ed25519.sign(message, key.seed))
      if (((signature[31] ?? 0) & 0x80) === 0) continue
      const before = hex(signature)
      const publicKey = Buffer.from(key.publicKey)
      assert.equal(checkSignatureEncoding(publicKey, signature), 'ok')
      assert.equal(hex(signature), before)
      assert.equal(await verifyEd25519(publicKey, message, signature), 'ok')
      assert.equal(await verifyEd25519(publicKey, message, signature), 'ok')
      assert.equal(hex(signature), before)
      assert.equal(hex(publicKey), hex(key.publicKey))
      break
    }
  })

  it('what is verified is what was checked, even if the caller reuses its buffer meanwhile', async () => {
    const key = testKey(new Uint8Array(32).fill(42))
    const message = Uint8Array.of(1, 2, 3)
    const signature = ed25519.sign(message, key.seed)
    const pending = verifyEd25519(key.publicKey, message, signature)
    signature.fill(0)
    message.fill(0)
    assert.equal(await pending, 'ok')
  })
})
