/** Strict dag-cbor for signed and wire data: one encoding per value, so bytes and CIDs are stable. */
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'

export type CborResult = { ok: true, value: unknown } | { ok: false, code: 'not-cbor' | 'non-canonical', detail: string }

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * Decodes dag-cbor and insists the bytes are the canonical encoding of what they decode to:
 * bytes that decode to the same value but differ would give one entry two CIDs. The strict
 * decoder itself refuses non-minimal integers and lengths, indefinite lengths and duplicate
 * keys ('not-cbor'); what it reads but would write differently (unsorted keys, a float for
 * an integer, float32, undefined) or cannot write at all is 'non-canonical'. Never throws.
 * test/vectors pins which is which.
 */
export function decodeCanonical (bytes: Uint8Array): CborResult {
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (err) {
    return { ok: false, code: 'not-cbor', detail: err instanceof Error ? err.message : String(err) }
  }
  let canonical: Uint8Array
  try {
    canonical = dagCbor.encode(value)
  } catch (err) {
    // Some decoded values cannot be written back: a map whose "/" equals its "bytes"
    // ({ "/": "x", "bytes": "x" }) is taken for a CID by the encoder, which then throws.
    // Nothing this code signs or stores can hold such a value.
    return { ok: false, code: 'non-canonical', detail: `cannot be re-encoded: ${err instanceof Error ? err.message : String(err)}` }
  }
  if (!sameBytes(canonical, bytes)) return { ok: false, code: 'non-canonical', detail: 'not the canonical dag-cbor encoding of its value' }
  return { ok: true, value }
}

export function encodeCbor (value: unknown): Uint8Array {
  return dagCbor.encode(value)
}

/** A dag-cbor map (not an array, bytes, CID or null). */
export function isMap (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array) && CID.asCID(value) === null
}

/** Exactly these keys, `optional` ones allowed absent. */
export function hasKeys (value: Record<string, unknown>, required: readonly string[], optional: readonly string[] = []): boolean {
  const keys = Object.keys(value)
  for (const key of required) if (!(key in value)) return false
  return keys.every((key) => required.includes(key) || optional.includes(key))
}

export function isUint (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/** The CIDv1 (dag-cbor, sha2-256) of a dag-cbor block. */
export async function cborCid (bytes: Uint8Array): Promise<CID> {
  return CID.createV1(dagCbor.code, await sha256.digest(bytes))
}

export const DAG_CBOR_CODE = dagCbor.code
export const SHA2_256_CODE = sha256.code

const utf8 = new TextEncoder()

/** `domain` then `body`: what a signature of one kind signs, so it can never pass as another kind's. */
export function domainSeparated (domain: string, body: Uint8Array): Uint8Array {
  const prefix = utf8.encode(domain)
  const out = new Uint8Array(prefix.length + body.length)
  out.set(prefix)
  out.set(body, prefix.length)
  return out
}

/** `value` as an array of at most `max` items, each accepted by `item`; undefined if not. */
export function listOf<T> (value: unknown, max: number, item: (element: unknown) => T | undefined): T[] | undefined {
  if (!Array.isArray(value) || value.length > max) return undefined
  const out: T[] = []
  for (const element of value) {
    const parsed = item(element)
    if (parsed === undefined) return undefined
    out.push(parsed)
  }
  return out
}
