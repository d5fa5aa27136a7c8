/**
 * Signed receipts (docs/logs.md "Receipts"): the worker says, under its own key, that it
 * holds an author's log up to a head, or a pinned DAG. A receipt is only ever issued after
 * checking Postgres for exactly what it claims: for a log, every entry from the head down to
 * genesis stored with its block; for a DAG, a pin of it settled as `pinned`, whose recorded
 * blocks give the counts, and whose kind gives the scope: a log entry's pin holds the entry
 * and its content but never `prev`, and its receipt says `scope: entry`. Receipts are not stored: each is signed when asked for, so its
 * `verifiedAt` is when that check ran.
 *
 * A log check walks the chain below the head in one recursive query, so its cost grows
 * with the log; PHAROS_AUTHOR_MAX_ENTRIES bounds the log, and the sync responder bounds who
 * may ask and how often (registered peers, PHAROS_SYNC_RECEIPTS_PER_MINUTE each,
 * PHAROS_SYNC_RECEIPT_CHECKS_MAX at once). Answers are not cached: a block can leave
 * without the log changing (an entry's pin fails, GC collects the block), and a receipt
 * must say what holds when it is signed.
 */
import { CID } from 'multiformats/cid'
import { signLogReceipt, signPinReceipt } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer, NotHeldReason, ReceiptSubject } from '@pharos/protocol/log/index.ts'
import type { LogStore } from '../logs/log-store.ts'
import { LOG_ENTRY_KIND } from '../pinning/log-entry-pins.ts'
import type { PinStore } from '../pinning/pin-store.ts'

export interface ReceiptIssuerDeps {
  logs: Pick<LogStore, 'heads' | 'chainHeld'>
  pins: Pick<PinStore, 'heldDag'>
  /** The worker's key (identity.ts `workerSigner`): receipts verify against its peer ID. */
  signer: Ed25519Signer
  /** The clock `verifiedAt` reads, ms since the epoch. @default Date.now */
  now?: () => number
}

/** A signed receipt, or why none was given. */
export type IssueResult =
  | { ok: true, statement: Uint8Array }
  | { ok: false, reason: NotHeldReason, message: string }

const notHeld = (reason: NotHeldReason, message: string): IssueResult => ({ ok: false, reason, message })

export class ReceiptIssuer {
  private readonly deps: ReceiptIssuerDeps
  private readonly now: () => number

  constructor (deps: ReceiptIssuerDeps) {
    this.deps = deps
    this.now = deps.now ?? Date.now
  }

  /** The worker's peer ID: the signer of every receipt it issues. */
  get signer (): string {
    return this.deps.signer.peerId
  }

  /** A receipt for what a sync `receipt` request names. */
  async issue (subject: ReceiptSubject): Promise<IssueResult> {
    return 'cid' in subject ? await this.forDag({ cid: subject.cid }) : await this.forLog(subject.author, subject.head)
  }

  /** A log receipt for `author` up to `head` (else up to its best head). */
  async forLog (author: string, head?: CID): Promise<IssueResult> {
    let target = head
    if (target === undefined) {
      const [best] = await this.deps.logs.heads([author])
      if (best === undefined) return notHeld('unknown', `no connected entry of ${author} is stored`)
      target = CID.decode(best.cid)
    }
    const chain = await this.deps.logs.chainHeld(target.bytes)
    if (chain === undefined) return notHeld('unknown', `entry ${target.toString()} is not stored`)
    if (chain.author !== author) return notHeld('unknown', `entry ${target.toString()} is not ${author}'s`)
    if (!chain.connected || !chain.reachesGenesis || chain.entries !== chain.seq + 1) {
      return notHeld('incomplete', `the log below ${target.toString()} (seq ${chain.seq}) has a gap: ${chain.entries} of ${chain.seq + 1} entries stored`)
    }
    if (chain.blocks !== chain.entries) {
      return notHeld('incomplete', `${chain.entries - chain.blocks} of the ${chain.entries} entry blocks below ${target.toString()} are not in the blockstore`)
    }
    const statement = await signLogReceipt({ author, head: target, seq: chain.seq, verifiedAt: this.now() }, this.deps.signer)
    return { ok: true, statement }
  }

  /** A pin receipt for the DAG under `cid` (any pinned pin of it), or for one pin by ID. */
  async forDag (target: { cid: CID } | { pinId: string }): Promise<IssueResult> {
    const held = await this.deps.pins.heldDag(target)
    const what = 'cid' in target ? target.cid.toString() : `pin ${target.pinId}`
    if (held === undefined) return notHeld('not-pinned', `${what} is not pinned here`)
    const scope = held.kind === LOG_ENTRY_KIND ? 'entry' : 'dag'
    const statement = await signPinReceipt({ cid: CID.parse(held.root), scope, blocks: held.blocks, bytes: held.bytes, verifiedAt: this.now() }, this.deps.signer)
    return { ok: true, statement }
  }
}
