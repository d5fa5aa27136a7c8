/**
 * Checking receipts (docs/logs.md "Receipts") on the peer side: a receipt is returned only
 * when its signature holds, it is of the expected kind, by the expected worker, and about
 * exactly the author, head or root that was asked; anything else is a
 * ReceiptVerificationError. For receipts from anywhere: over the sync protocol
 * (`PharosPeer.receipt`), or base64 in a pin status' `info.receipt` over HTTP.
 */
import type { CID } from 'multiformats/cid'
import { openLogReceipt, openPinReceipt } from '@pharos/protocol/log/index.ts'
import type { LogReceipt, LogReceiptExpectation, PinReceipt, PinReceiptExpectation, ReceiptResult } from '@pharos/protocol/log/index.ts'
import { ReceiptVerificationError } from './errors.ts'

export type { LogReceipt, PinReceipt, PinReceiptScope, Receipt } from '@pharos/protocol/log/index.ts'

function statementBytes (statement: Uint8Array | string): Uint8Array {
  return typeof statement === 'string' ? new Uint8Array(Buffer.from(statement, 'base64')) : statement
}

function unwrap<T> (result: ReceiptResult<T>, peer?: string): T {
  if (!result.ok) throw new ReceiptVerificationError(result.code, result.detail, peer)
  return result.value
}

/** A log receipt, verified; `statement` is its bytes or their base64. */
export async function verifyLogReceipt (statement: Uint8Array | string, expect: LogReceiptExpectation & { signer: string }, peer?: string): Promise<LogReceipt> {
  return unwrap(await openLogReceipt(statementBytes(statement), expect), peer)
}

/**
 * A pin receipt, verified; `statement` is its bytes or their base64 (as `info.receipt` carries
 * it). Its `scope` says what it covers: `dag`, the whole DAG; `entry`, a log entry's pin (the
 * entry block and its content, not `prev`). Pass `scope` to require one.
 */
export async function verifyPinReceipt (statement: Uint8Array | string, expect: PinReceiptExpectation & { signer: string, cid: CID }, peer?: string): Promise<PinReceipt> {
  return unwrap(await openPinReceipt(statementBytes(statement), expect), peer)
}
