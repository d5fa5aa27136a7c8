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

/** A block's multihash uses a function this worker cannot verify, so it is not accepted. */
export class UnsupportedHashError extends Error {
  override readonly name = 'UnsupportedHashError'
  readonly code: number

  constructor (code: number) {
    super(`multihash function 0x${code.toString(16)} is not supported (supported: ${blockHashers.map((h) => h.name).join(', ')})`)
    this.code = code
  }
}

/**
 * Whether `bytes` hash to `digest` under multihash function `code`. A digest shorter than the
 * function's output (a truncated hash) is compared on its length, as Helia does.
 */
export async function digestMatches (code: number, digest: Uint8Array, bytes: Uint8Array): Promise<boolean> {
  const hasher = byCode.get(code)
  if (hasher === undefined) throw new UnsupportedHashError(code)
  let computed: Uint8Array
  try {
    computed = (await hasher.digest(bytes, { truncate: digest.byteLength })).digest
  } catch {
    // The digest length is outside what the function can produce: it cannot match.
    return false
  }
  return Buffer.compare(computed, digest) === 0
}
