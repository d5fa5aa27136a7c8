/**
 * A statement a worker signs about what it holds: audit reports, receipts. Anyone who knows
 * the worker's peer ID can check it, with nothing else (the key is inside the peer ID):
 *
 *   { v: 1, kind: <string>, signer: <peer ID>, body: <map>, sig: <ed25519 over
 *     "pharos/statement/<kind>/1" ‖ canonical CBOR of { kind, signer, body }> }
 *
 * The kind is in the signed bytes and in the domain, so a receipt can never pass as an audit
 * report or as any other Pharos signature (entries, envelopes, allow-lists use other domains).
 * The encoding is canonical DAG-CBOR, so one statement has one byte string and one CID.
 */
import { publicKeyFromPeerId } from './author-key.ts'
import { decodeCanonical, domainSeparated, encodeCbor, hasKeys, isMap } from './cbor.ts'
import { verifyEd25519 } from './ed25519.ts'
import type { Ed25519Signer } from './ed25519.ts'

/** Statements are small: a receipt or a report of a few hundred CIDs. */
export const MAX_STATEMENT_BYTES = 256 * 1024

export const statementDomain = (kind: string): string => `pharos/statement/${kind}/1`

export interface SignedStatement {
  kind: string
  /** The peer ID of the worker that signed it. */
  signer: string
  /** Kind-specific fields (CBOR values: no undefined). */
  body: Record<string, unknown>
  sig: Uint8Array
}

export type StatementErrorCode = 'too-large' | 'not-cbor' | 'non-canonical' | 'bad-shape' | 'wrong-kind' | 'bad-signer' | 'bad-statement-signature'

export type StatementResult = { ok: true, value: SignedStatement } | { ok: false, code: StatementErrorCode, detail: string }

const KIND = /^[a-z][a-z0-9-]{0,31}$/

function signedBytes (kind: string, signer: string, body: Record<string, unknown>): Uint8Array {
  return domainSeparated(statementDomain(kind), encodeCbor({ kind, signer, body }))
}

/** Signs `body` as a statement of `kind` by `signer`; returns its canonical bytes. */
export async function signStatement (kind: string, body: Record<string, unknown>, signer: Ed25519Signer): Promise<Uint8Array> {
  if (!KIND.test(kind)) throw new RangeError(`statement kind ${JSON.stringify(kind)} must match ${String(KIND)}`)
  const sig = await signer.sign(signedBytes(kind, signer.peerId, body))
  const bytes = encodeCbor({ v: 1, kind, signer: signer.peerId, body, sig })
  if (bytes.length > MAX_STATEMENT_BYTES) throw new RangeError(`a ${kind} statement of ${bytes.length} bytes exceeds ${MAX_STATEMENT_BYTES}`)
  return bytes
}

/**
 * Decodes a statement and checks its shape and what `expect` asks, but **not** its signature:
 * for statements whose signature was checked when they were stored (a worker's own audit
 * reports, verified before they are written). Anything from the wire goes through
 * `openStatement`.
 */
export function decodeStatement (bytes: Uint8Array, expect: { kind?: string, signer?: string } = {}): StatementResult {
  if (bytes.length > MAX_STATEMENT_BYTES) return { ok: false, code: 'too-large', detail: `${bytes.length} bytes > ${MAX_STATEMENT_BYTES}` }
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) return { ok: false, code: decoded.code, detail: decoded.detail }
  const value = decoded.value
  if (!isMap(value) || !hasKeys(value, ['v', 'kind', 'signer', 'body', 'sig']) || value.v !== 1 ||
    typeof value.kind !== 'string' || !KIND.test(value.kind) || typeof value.signer !== 'string' ||
    !isMap(value.body) || !(value.sig instanceof Uint8Array)) {
    return { ok: false, code: 'bad-shape', detail: 'a statement is { v: 1, kind: string, signer: string, body: map, sig: bytes }' }
  }
  if (expect.kind !== undefined && value.kind !== expect.kind) return { ok: false, code: 'wrong-kind', detail: `expected a ${expect.kind} statement, got ${value.kind}` }
  if (expect.signer !== undefined && value.signer !== expect.signer) return { ok: false, code: 'bad-signer', detail: `signed by ${value.signer}, not ${expect.signer}` }
  if (publicKeyFromPeerId(value.signer) === undefined) return { ok: false, code: 'bad-signer', detail: 'signer must be an ed25519 peer ID' }
  return { ok: true, value: { kind: value.kind, signer: value.signer, body: value.body, sig: value.sig } }
}

/**
 * Decodes a statement and checks its signature against the key in its `signer` peer ID.
 * With `expect`, the statement must also be of that kind and (if given) by that signer.
 */
export async function openStatement (bytes: Uint8Array, expect: { kind?: string, signer?: string } = {}): Promise<StatementResult> {
  const decoded = decodeStatement(bytes, expect)
  if (!decoded.ok) return decoded
  const { kind, signer, body, sig } = decoded.value
  const key = publicKeyFromPeerId(signer)
  if (key === undefined) return { ok: false, code: 'bad-signer', detail: 'signer must be an ed25519 peer ID' }
  const check = await verifyEd25519(key, signedBytes(kind, signer, body), sig)
  if (check !== 'ok') return { ok: false, code: 'bad-statement-signature', detail: check }
  return decoded
}
