/**
 * Signed receipts (docs/logs.md "Receipts"): a worker's statement that it holds something in
 * full, built on the signed-statement primitive (statement.ts), so anyone with the worker's
 * peer ID checks one and nobody can pass one kind off as another.
 *
 *   log-receipt { author, head: CID, seq, verifiedAt }
 *     the worker holds `author`'s log from `head` (at `seq`) down to genesis: seq + 1
 *     entries, every block stored, checked at `verifiedAt` (ms since the epoch, its clock).
 *   pin-receipt { cid: CID, blocks, bytes, verifiedAt, scope? }
 *     the worker holds what `scope` names under `cid` (as CIDv1), pinned: `blocks` distinct
 *     blocks of `bytes` bytes in all, checked at `verifiedAt`. Without `scope`, the whole DAG;
 *     with `scope: "entry"`, a log entry's pin: the entry block and the whole DAG under each
 *     of its `params` links, never `prev` (the ancestors are entries with pins of their own;
 *     a log receipt is the statement about the chain).
 *
 * `open*Receipt` checks the signature, the body's exact shape, and what the caller expected
 * (the signer it asked, the author, head or root it asked about), so a receipt for something
 * else is refused rather than returned.
 */
import { CID } from 'multiformats/cid'
import { publicKeyFromPeerId } from './author-key.ts'
import { hasKeys, isUint } from './cbor.ts'
import type { Ed25519Signer } from './ed25519.ts'
import { openStatement, signStatement } from './statement.ts'
import type { StatementErrorCode } from './statement.ts'

export const LOG_RECEIPT_KIND = 'log-receipt'
export const PIN_RECEIPT_KIND = 'pin-receipt'

export interface LogReceiptBody {
  /** The log's author (an ed25519 peer ID). */
  author: string
  /** The head the worker holds the log up to. */
  head: CID
  /** The head's seq: the receipt covers seq + 1 entries. */
  seq: number
  /** When the worker checked it held the chain, ms since the epoch by its clock. */
  verifiedAt: number
}

/**
 * What a pin receipt covers under its root:
 * - `dag`: the whole DAG, every block it links to (the body carries no `scope`);
 * - `entry`: a log entry's pin: the entry block and the DAGs its `params` link to, not `prev`.
 */
export type PinReceiptScope = 'dag' | 'entry'

export interface PinReceiptBody {
  /** The DAG's root, as CIDv1. */
  cid: CID
  /** What is held under `cid`. @default 'dag' */
  scope?: PinReceiptScope
  /** Distinct blocks the worker's pin holds. */
  blocks: number
  /** Their bytes in all. */
  bytes: number
  /** When the worker checked it held them, ms since the epoch by its clock. */
  verifiedAt: number
}

interface Signed {
  /** The worker that signed it. */
  signer: string
  /** The signed bytes, to keep or hand on; `open*Receipt` checks them again anywhere. */
  statement: Uint8Array
}

export type LogReceipt = LogReceiptBody & Signed & { kind: typeof LOG_RECEIPT_KIND }
export type PinReceipt = PinReceiptBody & Signed & { kind: typeof PIN_RECEIPT_KIND, scope: PinReceiptScope }
export type Receipt = LogReceipt | PinReceipt

export type ReceiptErrorCode =
  | StatementErrorCode
  /** The signature holds but the body is not a receipt body of its kind. */
  | 'bad-body'
  /** A valid receipt, but about another author, head or root than the one expected. */
  | 'wrong-subject'
  /** A valid pin receipt, but for less of the DAG than expected (an entry's pin, not the whole DAG). */
  | 'wrong-scope'

export type ReceiptResult<T> = { ok: true, value: T } | { ok: false, code: ReceiptErrorCode, detail: string }

export interface LogReceiptExpectation {
  signer?: string
  author?: string
  head?: CID
}

export interface PinReceiptExpectation {
  signer?: string
  /** Compared as CIDv1: a CIDv0 root matches its v1 form. */
  cid?: CID
  /** The scope the receipt must have. @default either */
  scope?: PinReceiptScope
}

const isAuthor = (value: unknown): value is string => typeof value === 'string' && publicKeyFromPeerId(value) !== undefined

export async function signLogReceipt (body: LogReceiptBody, signer: Ed25519Signer): Promise<Uint8Array> {
  return await signStatement(LOG_RECEIPT_KIND, { author: body.author, head: body.head, seq: body.seq, verifiedAt: body.verifiedAt }, signer)
}

/**
 * A whole-DAG receipt carries no `scope`, so its bytes are what they were before scopes
 * existed; an entry-scoped one does, and a verifier that predates scopes refuses it as
 * `bad-body` rather than reading it as a claim on the whole DAG.
 */
export async function signPinReceipt (body: PinReceiptBody, signer: Ed25519Signer): Promise<Uint8Array> {
  const scoped = body.scope === undefined || body.scope === 'dag' ? {} : { scope: body.scope }
  return await signStatement(PIN_RECEIPT_KIND, { cid: body.cid.toV1(), blocks: body.blocks, bytes: body.bytes, verifiedAt: body.verifiedAt, ...scoped }, signer)
}

export async function openLogReceipt (bytes: Uint8Array, expect: LogReceiptExpectation = {}): Promise<ReceiptResult<LogReceipt>> {
  const opened = await openStatement(bytes, { kind: LOG_RECEIPT_KIND, ...(expect.signer === undefined ? {} : { signer: expect.signer }) })
  if (!opened.ok) return opened
  const { body, signer } = opened.value
  const head = CID.asCID(body.head)
  if (!hasKeys(body, ['author', 'head', 'seq', 'verifiedAt']) || !isAuthor(body.author) || head === null || !isUint(body.seq) || !isUint(body.verifiedAt)) {
    return { ok: false, code: 'bad-body', detail: 'a log receipt is { author: peer ID, head: CID, seq: uint, verifiedAt: uint }' }
  }
  if (expect.author !== undefined && body.author !== expect.author) return { ok: false, code: 'wrong-subject', detail: `a receipt for ${body.author}'s log, not ${expect.author}'s` }
  if (expect.head !== undefined && head.toString() !== expect.head.toString()) return { ok: false, code: 'wrong-subject', detail: `a receipt for head ${head.toString()}, not ${expect.head.toString()}` }
  return { ok: true, value: { kind: LOG_RECEIPT_KIND, signer, statement: bytes, author: body.author, head, seq: body.seq, verifiedAt: body.verifiedAt } }
}

export async function openPinReceipt (bytes: Uint8Array, expect: PinReceiptExpectation = {}): Promise<ReceiptResult<PinReceipt>> {
  const opened = await openStatement(bytes, { kind: PIN_RECEIPT_KIND, ...(expect.signer === undefined ? {} : { signer: expect.signer }) })
  if (!opened.ok) return opened
  const { body, signer } = opened.value
  const cid = CID.asCID(body.cid)
  // One encoding per claim: a whole-DAG receipt has no scope key at all.
  if (!hasKeys(body, ['cid', 'blocks', 'bytes', 'verifiedAt'], ['scope']) || cid === null || cid.version !== 1 || !isUint(body.blocks) || !isUint(body.bytes) || !isUint(body.verifiedAt) ||
    (body.scope !== undefined && body.scope !== 'entry')) {
    return { ok: false, code: 'bad-body', detail: 'a pin receipt is { cid: CIDv1, blocks: uint, bytes: uint, verifiedAt: uint, scope?: "entry" }' }
  }
  const scope: PinReceiptScope = body.scope === 'entry' ? 'entry' : 'dag'
  if (expect.cid !== undefined && !cid.equals(expect.cid.toV1())) return { ok: false, code: 'wrong-subject', detail: `a receipt for ${cid.toString()}, not ${expect.cid.toV1().toString()}` }
  if (expect.scope !== undefined && scope !== expect.scope) {
    return { ok: false, code: 'wrong-scope', detail: `a receipt for ${scope === 'entry' ? 'a log entry\'s pin (the entry and its content, not prev)' : 'the whole DAG'} under ${cid.toString()}, not ${expect.scope === 'entry' ? 'an entry\'s pin' : 'the whole DAG'}` }
  }
  return { ok: true, value: { kind: PIN_RECEIPT_KIND, signer, statement: bytes, cid, scope, blocks: body.blocks, bytes: body.bytes, verifiedAt: body.verifiedAt } }
}
