/**
 * The signed profile-log entry (DESIGN.md §4): a dag-cbor block
 *
 *   { v: 1, author, seq, prev, action, timestamp, params, sig }
 *
 * signed by `author` (a peer ID, whose ed25519 key it contains) over the dag-cbor encoding of
 * the same map without `sig`. An entry is identified by its CIDv1 (dag-cbor, sha2-256).
 * Decoding is strict and total: every byte string decodes to exactly one entry or to one
 * error code, and the same code on every node (the vectors in test/vectors pin it down).
 */
import { CID } from 'multiformats/cid'
import { publicKeyFromPeerId } from './author-key.ts'
import { cborCid, DAG_CBOR_CODE, decodeCanonical, encodeCbor, hasKeys, isMap, isUint, SHA2_256_CODE } from './cbor.ts'
import { verifyEd25519 } from './ed25519.ts'
import type { Ed25519Signer, SignatureCheck } from './ed25519.ts'

export const ENTRY_VERSION = 1
/** The action of a feed post; its params must carry `content`, the CID of the post body. */
export const FEED_POST_ACTION = 'append-feed-post'
/** Largest entry block accepted (guess: a post's params are CIDs and short strings; bodies and files are linked, not inlined). */
export const MAX_ENTRY_BYTES = 16 * 1024
const ACTION_PATTERN = /^[a-z][a-z0-9-]{0,63}$/

/** A dag-cbor value as params may hold it. */
export type ParamValue = null | boolean | number | string | Uint8Array | CID | ParamValue[] | { [key: string]: ParamValue }

export interface UnsignedEntry {
  v: typeof ENTRY_VERSION
  /** The author's peer ID string. */
  author: string
  /** Height in the author's log: 0 for the first entry, prev's seq + 1 after. */
  seq: number
  /** The previous entry's CID; null exactly when seq is 0. */
  prev: CID | null
  action: string
  /** Milliseconds since the epoch, as the author's clock said. Informational: never used to order. */
  timestamp: number
  params: { [key: string]: ParamValue }
}

export interface Entry extends UnsignedEntry {
  sig: Uint8Array
}

/** An entry with the exact bytes it came in and their CID. */
export interface EntryBlock {
  entry: Entry
  bytes: Uint8Array
  cid: CID
}

export type EntryErrorCode =
  | 'too-large'
  | 'not-cbor'
  | 'non-canonical'
  | 'unsupported-version'
  | 'bad-shape'
  | 'bad-author'
  | 'bad-prev'
  | 'bad-params'

export type EntryDecodeResult = { ok: true, value: EntryBlock } | { ok: false, code: EntryErrorCode, detail: string }

/** Why a well-formed entry's signature does not hold: every one of these gets its signer banned. */
export type EntrySignatureError = Exclude<SignatureCheck, 'ok'> | 'bad-signature'

export type EntryVerifyResult = { ok: true } | { ok: false, code: EntrySignatureError }

const FIELDS = ['v', 'author', 'seq', 'prev', 'action', 'timestamp', 'params', 'sig'] as const
const UNSIGNED_FIELDS = FIELDS.filter((field) => field !== 'sig')

function fail (code: EntryErrorCode, detail: string): EntryDecodeResult {
  return { ok: false, code, detail }
}

/** Entries link to entries: a prev must be a dag-cbor, sha2-256 CIDv1, so fork choice compares like with like. */
function isEntryCid (cid: CID): boolean {
  return cid.version === 1 && cid.code === DAG_CBOR_CODE && cid.multihash.code === SHA2_256_CODE
}

/** Checks the fields of an entry map (signed or not) and returns the first problem. */
function checkFields (value: Record<string, unknown>): { code: EntryErrorCode, detail: string } | undefined {
  if (value.v !== ENTRY_VERSION) return { code: 'unsupported-version', detail: `v must be ${ENTRY_VERSION}` }
  if (typeof value.author !== 'string' || publicKeyFromPeerId(value.author) === undefined) return { code: 'bad-author', detail: 'author must be an ed25519 peer ID' }
  if (!isUint(value.seq)) return { code: 'bad-shape', detail: 'seq must be a non-negative integer' }
  if (value.prev !== null) {
    const prev = CID.asCID(value.prev)
    if (prev === null || !isEntryCid(prev)) return { code: 'bad-prev', detail: 'prev must be null or a dag-cbor sha2-256 CIDv1' }
  }
  if ((value.seq === 0) !== (value.prev === null)) return { code: 'bad-prev', detail: 'prev is null exactly when seq is 0' }
  if (typeof value.action !== 'string' || !ACTION_PATTERN.test(value.action)) return { code: 'bad-shape', detail: `action must match ${ACTION_PATTERN.source}` }
  if (!isUint(value.timestamp)) return { code: 'bad-shape', detail: 'timestamp must be a non-negative integer (ms)' }
  if (!isMap(value.params)) return { code: 'bad-params', detail: 'params must be a map' }
  if (value.action === FEED_POST_ACTION && CID.asCID(value.params.content) === null) return { code: 'bad-params', detail: `${FEED_POST_ACTION} needs params.content, a CID` }
  return undefined
}

/**
 * Decodes an entry block. Checks size, canonical dag-cbor, the exact field set and every
 * field's type and rule; it does not check the signature (see `verifyEntry`).
 */
export async function decodeEntry (bytes: Uint8Array): Promise<EntryDecodeResult> {
  if (bytes.length > MAX_ENTRY_BYTES) return fail('too-large', `${bytes.length} bytes > ${MAX_ENTRY_BYTES}`)
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) return fail(decoded.code, decoded.detail)
  const value = decoded.value
  if (!isMap(value)) return fail('bad-shape', 'an entry is a map')
  if (!hasKeys(value, FIELDS)) return fail('bad-shape', `an entry has exactly the fields ${FIELDS.join(', ')}`)
  const problem = checkFields(value)
  if (problem !== undefined) return fail(problem.code, problem.detail)
  if (!(value.sig instanceof Uint8Array)) return fail('bad-shape', 'sig must be bytes')
  return { ok: true, value: { entry: value as unknown as Entry, bytes, cid: await cborCid(bytes) } }
}

/** The bytes the author signs: the dag-cbor encoding of the entry without `sig`. */
export function signingBytes (entry: UnsignedEntry): Uint8Array {
  const unsigned: Record<string, unknown> = {}
  for (const field of UNSIGNED_FIELDS) unsigned[field] = entry[field]
  return encodeCbor(unsigned)
}

/** Checks the author's signature (strict rule of ed25519.ts) against the key in `author`. */
export async function verifyEntry (entry: Entry): Promise<EntryVerifyResult> {
  const key = publicKeyFromPeerId(entry.author)
  // decodeEntry already refused such an author; a hand-built entry may still carry one.
  if (key === undefined) return { ok: false, code: 'bad-signature' }
  const check = await verifyEd25519(key, signingBytes(entry), entry.sig)
  return check === 'ok' ? { ok: true } : { ok: false, code: check }
}

/** Invalid input to `signEntry`: the caller's bug, thrown, never sent. */
export class InvalidEntryError extends Error {
  override readonly name = 'InvalidEntryError'
  readonly code: EntryErrorCode
  constructor (code: EntryErrorCode, detail: string) {
    super(`${code}: ${detail}`)
    this.code = code
  }
}

/** Signs an entry as `signer` (who must be its author) and returns the block. */
export async function signEntry (unsigned: Omit<UnsignedEntry, 'v' | 'author'>, signer: Ed25519Signer): Promise<EntryBlock> {
  // Field by field, not a spread: TypeScript accepts an Entry (a decoded one, say) here, and
  // spreading it would keep its author while the signer signs, and carry its extra fields.
  const { seq, prev, action, timestamp, params } = unsigned
  const fields: UnsignedEntry = { v: ENTRY_VERSION, author: signer.peerId, seq, prev, action, timestamp, params }
  const problem = checkFields(fields as unknown as Record<string, unknown>)
  if (problem !== undefined) throw new InvalidEntryError(problem.code, problem.detail)
  const entry: Entry = { ...fields, sig: await signer.sign(signingBytes(fields)) }
  const bytes = encodeCbor(entry)
  if (bytes.length > MAX_ENTRY_BYTES) throw new InvalidEntryError('too-large', `${bytes.length} bytes > ${MAX_ENTRY_BYTES}`)
  return { entry, bytes, cid: await cborCid(bytes) }
}

/** The CIDs an entry's params link to (its content); `prev` is not among them. */
export function contentLinks (entry: UnsignedEntry): CID[] {
  const found: CID[] = []
  const visit = (value: unknown): void => {
    const cid = CID.asCID(value)
    if (cid !== null) {
      found.push(cid)
      return
    }
    if (Array.isArray(value)) value.forEach(visit)
    else if (isMap(value)) Object.values(value).forEach(visit)
  }
  visit(entry.params)
  return found
}
