/**
 * Signed receipts (docs/logs.md "Receipts"): a worker's statement that it holds something in
 * full, built on the signed-statement primitive (statement.ts), so anyone with the worker's
 * peer ID checks one and nobody can pass one kind off as another.
 *
 *   log-receipt { author, head: CID, seq, verifiedAt }
 *     the worker holds `author`'s log from `head` (at `seq`) down to genesis: seq + 1
 *     entries, every block stored, checked at `verifiedAt` (ms since the epoch, its clock).
 *   pin-receipt { cid: CID, blocks, bytes, verifiedAt }
 *     the worker holds the whole DAG under `cid` (as CIDv1), pinned: `blocks` distinct blocks
 *     of `bytes` bytes in all, checked at `verifiedAt`.
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

export interface PinReceiptBody {
  /** The DAG's root, as CIDv1. */
  cid: CID
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
export type PinReceipt = PinReceiptBody & Signed & { kind: typeof PIN_RECEIPT_KIND }
export type Receipt = LogReceipt | PinReceipt

export type ReceiptErrorCode =
  | StatementErrorCode
  /** The signature holds but the body is not a receipt body of its kind. */
  | 'bad-body'
  /** A valid receipt, but about another author, head or root than the one expected. */
  | 'wrong-subject'

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
}

const isAuthor = (value: unknown): value is string => typeof value === 'string' && publicKeyFromPeerId(value) !== undefined

export async function signLogReceipt (body: LogReceiptBody, signer: Ed25519Signer): Promise<Uint8Array> {
  return await signStatement(LOG_RECEIPT_KIND, { author: body.author, head: body.head, seq: body.seq, verifiedAt: body.verifiedAt }, signer)
}

export async function signPinReceipt (body: PinReceiptBody, signer: Ed25519Signer): Promise<Uint8Array> {
  return await signStatement(PIN_RECEIPT_KIND, { cid: body.cid.toV1(), blocks: body.blocks, bytes: body.bytes, verifiedAt: body.verifiedAt }, signer)
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
  if (!hasKeys(body, ['cid', 'blocks', 'bytes', 'verifiedAt']) || cid === null || cid.version !== 1 || !isUint(body.blocks) || !isUint(body.bytes) || !isUint(body.verifiedAt)) {
    return { ok: false, code: 'bad-body', detail: 'a pin receipt is { cid: CIDv1, blocks: uint, bytes: uint, verifiedAt: uint }' }
  }
  if (expect.cid !== undefined && !cid.equals(expect.cid.toV1())) return { ok: false, code: 'wrong-subject', detail: `a receipt for ${cid.toString()}, not ${expect.cid.toV1().toString()}` }
  return { ok: true, value: { kind: PIN_RECEIPT_KIND, signer, statement: bytes, cid, blocks: body.blocks, bytes: body.bytes, verifiedAt: body.verifiedAt } }
}
