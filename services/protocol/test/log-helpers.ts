/**
 * Shared by the log vector generator and the log tests: ed25519 arithmetic written out from
 * RFC 8032 with @noble/curves points, independent of src/log (so a test does not check the
 * code against itself), and a seeded signer.
 */
import { createHash } from 'node:crypto'
import { ed25519 } from '@noble/curves/ed25519.js'
import { base58btc } from 'multiformats/bases/base58'
import type { Ed25519Signer } from '../src/log/index.ts'

export type Point = ReturnType<typeof ed25519.Point.fromBytes>

/** The order of the prime-order subgroup (RFC 8032 §5.1, "L"). */
export const L = (1n << 252n) + 27742317777372353535851937790883648493n
/** The field prime 2^255 - 19. */
export const P = (1n << 255n) - 19n

export const BASE: Point = ed25519.Point.BASE
export const ZERO: Point = ed25519.Point.ZERO

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

export function fromHex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'hex'))
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(part)
  return new Uint8Array(hash.digest())
}

export function sha512(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha512')
  for (const part of parts) hash.update(part)
  return new Uint8Array(hash.digest())
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}

export function fromLittleEndian(bytes: Uint8Array): bigint {
  let value = 0n
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0)
  return value
}

export function toLittleEndian(value: bigint, length = 32): Uint8Array {
  const out = new Uint8Array(length)
  let rest = value
  for (let i = 0; i < length; i++) {
    out[i] = Number(rest & 0xffn)
    rest >>= 8n
  }
  if (rest !== 0n) throw new RangeError('value does not fit')
  return out
}

export const mod = (value: bigint, modulus: bigint): bigint => ((value % modulus) + modulus) % modulus

/** [scalar]point for a point of the prime-order subgroup (B, or a public key [a]B): scalars work mod L. */
export function times(point: Point, scalar: bigint): Point {
  const reduced = mod(scalar, L)
  return reduced === 0n ? ZERO : point.multiplyUnsafe(reduced)
}

/** A 32-byte point encoding with a given y (reduced or not) and sign bit. */
export function pointEncoding(y: bigint, sign: 0 | 1 = 0): Uint8Array {
  const bytes = toLittleEndian(y)
  bytes[31] = (bytes[31] ?? 0) | (sign << 7)
  return bytes
}

/**
 * The eight points of order dividing 8, derived from the curve: [L]Q of a point Q of full order
 * 8L generates the torsion subgroup.
 */
export function smallOrderPoints(): Point[] {
  for (let y = 2n; ; y++) {
    let q: Point
    try {
      q = ed25519.Point.fromBytes(pointEncoding(y), false)
    } catch {
      continue
    }
    const t = q.multiplyUnsafe(L - 1n).add(q)
    if (t.double().double().is0()) continue
    const points: Point[] = [ZERO]
    for (let i = 1; i < 8; i++) points.push(points[i - 1]!.add(t))
    return points
  }
}

/** A point of order exactly 8. */
export function torsionPoint(): Point {
  const point = smallOrderPoints()[1]
  if (point === undefined) throw new Error('no torsion point')
  return point
}

/** The smallest y < p that is not the y of any curve point (its encoding is canonical but not on the curve). */
export function offCurveEncoding(from = 2n): Uint8Array {
  for (let y = from; ; y++) {
    try {
      ed25519.Point.fromBytes(pointEncoding(y), false)
    } catch {
      return pointEncoding(y)
    }
  }
}

/** k = SHA-512(R ‖ A ‖ M) mod L (RFC 8032 §5.1.6 step 4). */
export function challenge(r: Uint8Array, a: Uint8Array, message: Uint8Array): bigint {
  return mod(fromLittleEndian(sha512(r, a, message)), L)
}

/** An ed25519 key from a 32-byte seed, with the secret scalar and nonce prefix RFC 8032 derives from it. */
export interface TestKey {
  seed: Uint8Array
  publicKey: Uint8Array
  /** The secret scalar a. */
  scalar: bigint
  prefix: Uint8Array
  peerId: string
  signer: Ed25519Signer
}

/** identity multihash of the libp2p protobuf PublicKey { Type: Ed25519, Data }, base58btc. */
export function ed25519PeerId(publicKey: Uint8Array): string {
  return base58btc.baseEncode(concat(Uint8Array.of(0x00, 0x24, 0x08, 0x01, 0x12, 0x20), publicKey))
}

export function testKey(seed: Uint8Array): TestKey {
  const { scalar, prefix, pointBytes } = ed25519.utils.getExtendedPublicKey(seed)
  const peerId = ed25519PeerId(pointBytes)
  return {
    seed,
    publicKey: pointBytes,
    scalar,
    prefix,
    peerId,
    signer: { peerId, sign: (message) => ed25519.sign(message, seed) }
  }
}

/** A key from a label: seed = SHA-256("pharos/test-key/" ‖ label). */
export function namedKey(label: string): TestKey {
  return testKey(sha256(utf8(`pharos/test-key/${label}`)))
}

/**
 * A signature (R, S) with a chosen nonce point R = [r]B + extra and S = r + k·a, where
 * k = H(R ‖ publicKey ‖ M). With extra = 0 and publicKey = [a]B it is an ordinary signature.
 */
export function signWith(options: { r: bigint, extra?: Point, publicKey: Uint8Array, scalar: bigint, message: Uint8Array }): Uint8Array {
  const rPoint = times(BASE, options.r).add(options.extra ?? ZERO)
  const rBytes = rPoint.toBytes()
  const k = challenge(rBytes, options.publicKey, options.message)
  return concat(rBytes, toLittleEndian(mod(options.r + k * options.scalar, L)))
}
