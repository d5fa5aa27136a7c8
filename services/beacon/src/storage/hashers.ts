import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import type { MultihashHasher } from 'multiformats/hashes/interface'

/**
 * The multihash functions Pharos accepts blocks under. The blockstore verifies every read
 * and write with these, and Helia is given the same list, so a block Bitswap can fetch is a
 * block the store can verify. sha2-256 is what every IPFS implementation emits; sha2-512 is
 * the other hasher Helia ships with.
 */
export const blockHashers: readonly MultihashHasher[] = [sha256, sha512, identity]

const byCode = new Map<number, MultihashHasher>(blockHashers.map((hasher) => [hasher.code, hasher]))

/** Whether blocks under multihash function `code` can be verified (and so stored or fetched). */
export function isSupportedHash (code: number): boolean {
  return byCode.has(code)
}

/**
 * Names of multihash functions Pharos does not verify, from the multicodec table, so a
 * refusal names the function a person knows (`blake2b-256`) rather than only its code.
 */
const OTHER_HASH_NAMES: ReadonlyMap<number, string> = new Map([
  [0x11, 'sha1'], [0x14, 'sha3-512'], [0x15, 'sha3-384'], [0x16, 'sha3-256'], [0x17, 'sha3-224'],
  [0x18, 'shake-128'], [0x19, 'shake-256'], [0x1a, 'keccak-224'], [0x1b, 'keccak-256'],
  [0x1c, 'keccak-384'], [0x1d, 'keccak-512'], [0x1e, 'blake3'], [0x20, 'sha2-384'],
  [0x22, 'murmur3-x64-64'], [0x23, 'murmur3-32'], [0x56, 'dbl-sha2-256'], [0xd5, 'md5'],
  [0x1012, 'sha2-256-trunc254-padded'], [0x1013, 'sha2-224'], [0x1014, 'sha2-512-224'],
  [0x1015, 'sha2-512-256'], [0x1100, 'x11'], [0x534d, 'sm3-256']
])

/** The multicodec name of multihash function `code` (`blake2b-256` for 0xb220), or its hex code if unknown. */
export function hashName (code: number): string {
  const hasher = byCode.get(code)
  if (hasher !== undefined) return hasher.name
  const named = OTHER_HASH_NAMES.get(code)
  if (named !== undefined) return named
  // The BLAKE2 families take one code per output length, in bytes: blake2b-8 is 0xb201.
  if (code > 0xb200 && code <= 0xb240) return `blake2b-${(code - 0xb200) * 8}`
  if (code > 0xb240 && code <= 0xb260) return `blake2s-${(code - 0xb240) * 8}`
  return `0x${code.toString(16)}`
}

/** A block's multihash uses a function this worker cannot verify, so it is not accepted. */
export class UnsupportedHashError extends Error {
  override readonly name = 'UnsupportedHashError'
  readonly code: number

  constructor (code: number) {
    const name = hashName(code)
    const hex = `0x${code.toString(16)}`
    super(`multihash function ${name === hex ? hex : `${name} (${hex})`} is not supported (supported: ${blockHashers.map((h) => h.name).join(', ')})`)
    this.code = code
  }
}

/** WebCrypto's names of the multihash functions it computes (full-length digests). */
const WEBCRYPTO_DIGESTS: ReadonlyMap<number, { name: string, length: number }> = new Map([
  [sha256.code, { name: 'SHA-256', length: 32 }],
  [sha512.code, { name: 'SHA-512', length: 64 }]
])
/**
 * Blocks from this size on are hashed with WebCrypto, on libuv's thread pool, so the event
 * loop reads the next block while this one is hashed; smaller ones synchronously, where the
 * hand-off would cost more than the hash (sha2-256 of 1 KiB takes ~4 µs). Measured with
 * bench/storage: 256 KiB gets rose from ~0.7× to ~1× of the same binary COPY without verification
 * (docs/benchmarks.md).
 */
const OFF_THREAD_HASH_BYTES = 64 * 1024

/**
 * Whether `bytes` hash to `digest` under multihash function `code`. A digest shorter than the
 * function's output (a truncated hash) is compared on its length, as Helia does.
 */
export async function digestMatches (code: number, digest: Uint8Array, bytes: Uint8Array): Promise<boolean> {
  const hasher = byCode.get(code)
  if (hasher === undefined) throw new UnsupportedHashError(code)
  const webCrypto = WEBCRYPTO_DIGESTS.get(code)
  if (webCrypto !== undefined && webCrypto.length === digest.byteLength && bytes.byteLength >= OFF_THREAD_HASH_BYTES) {
    const computed = new Uint8Array(await globalThis.crypto.subtle.digest(webCrypto.name, bytes))
    return Buffer.compare(computed, digest) === 0
  }
  let computed: Uint8Array
  try {
    computed = (await hasher.digest(bytes, { truncate: digest.byteLength })).digest
  } catch {
    // The digest length is outside what the function can produce: it cannot match.
    return false
  }
  return Buffer.compare(computed, digest) === 0
}
