/**
 * The web mirror's write path (`POST /v1/entries`): a client that cannot run a peer (a
 * browser) hands the worker a signed log entry and its content blocks in one CAR. The entry
 * is signed by the author's own key wherever the author is; the worker never holds user keys.
 *
 * The worker checks it as the overlay's validator checks a gossiped entry (decode, author
 * signature, registered author), stores the content blocks, then wraps the entry in a publish
 * envelope under its own key — the envelope says who put the entry on the overlay — and hands
 * it to the same ingest as gossip (per-author limits, fork choice, the entry's pin, which finds
 * its blocks already stored). Only an entry stored now is broadcast, on the overlay and to the
 * fleet's other workers, so a duplicate or a refused entry goes nowhere.
 *
 * The CAR must be self-contained: its one root is the entry, and every block the entry's
 * content links reach is in it or already stored here; a block the entry does not reach is
 * refused rather than stored unpinned.
 */
import { CarReader } from '@ipld/car'
import type { CID } from 'multiformats/cid'
import { contentLinks, decodeEntry, sealEnvelope, verifyEntry } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer, EntryBlock } from '@pharos/protocol/log/index.ts'
import type { LogEntryRejection } from './log-metrics.ts'
import type { PgBlockstore } from '../storage/pg-blockstore.ts'
import { digestMatches } from '../storage/hashers.ts'
import { linksOf } from '../storage/dag-links.ts'
import type { LogIngest } from './log-ingest.ts'
import { TokenBuckets } from './token-buckets.ts'

export interface WebEntryLimits {
  /** PHAROS_ENTRIES_MAX_BLOCKS: blocks one CAR may carry, the entry's included. */
  maxBlocks: number
  /** PHAROS_DAG_MAX_LINKS_PER_BLOCK: links one block may hold when its DAG is walked. */
  maxLinksPerBlock: number
  /** PHAROS_ENTRIES_PER_MINUTE_PER_AUTHOR: entries one author may post here per minute. */
  perMinutePerAuthor: number
}

export interface WebEntriesDeps {
  ingest: Pick<LogIngest, 'checkEnvelope' | 'ingestChecked'>
  blockstore: Pick<PgBlockstore, 'putBatch' | 'has'>
  /** The worker's key: it signs the envelope it broadcasts the entry in. */
  signer: Ed25519Signer
  /** Broadcasts a stored entry's envelope on the overlay and to the fleet's other workers. */
  broadcast: (messageId: string, envelope: Uint8Array) => void
  limits: WebEntryLimits
}

/** Why a posted entry was refused: what the client did, so the HTTP status follows from it. */
export type WebEntryRefusal =
  | { kind: 'malformed', reason: string, message: string }
  | { kind: 'forbidden', reason: string, message: string }
  | { kind: 'too-large', reason: string, message: string }
  | { kind: 'rate-limited', reason: string, message: string, retryAfterMs: number }
  | { kind: 'unavailable', reason: string, message: string }

export type WebEntryResult =
  | { ok: true, cid: CID, status: 'accepted' | 'duplicate' }
  | { ok: false, refusal: WebEntryRefusal }

/** Ingest refusals that pass with time: retry later (429), not a bad request. */
const RETRY_LATER: ReadonlySet<LogEntryRejection> = new Set(['rate-limited', 'too-many-pending-pins', 'overloaded'])
/** Ingest refusals of the entry itself (400). The rest are the author's caps (403). */
const MALFORMED: ReadonlySet<LogEntryRejection> = new Set(['malformed', 'bad-envelope', 'bad-signature', 'bad-seq', 'bad-prev'])
/** How long to wait after a limit ingest applies, when it says no more (guess: its buckets refill per minute). */
const INGEST_RETRY_AFTER_MS = 10_000

const refuse = (refusal: WebEntryRefusal): WebEntryResult => ({ ok: false, refusal })

export class WebEntries {
  private readonly deps: WebEntriesDeps
  private readonly perAuthor: TokenBuckets

  constructor (deps: WebEntriesDeps) {
    this.deps = deps
    // A burst of ten seconds' worth: a client posting a thread at once is not refused.
    this.perAuthor = TokenBuckets.perMinute(deps.limits.perMinutePerAuthor)
  }

  /** Checks, stores and broadcasts the entry a CAR carries; refuses it naming why. */
  async submit (car: Uint8Array): Promise<WebEntryResult> {
    const read = await this.readCar(car)
    if (!read.ok) return refuse(read.refusal)
    const { root, blocks } = read
    const rootBytes = blocks.get(root.toString())
    if (rootBytes === undefined) return refuse({ kind: 'malformed', reason: 'ROOT_MISSING', message: `the CAR's root ${root.toString()} is not among its blocks` })
    const decoded = await decodeEntry(rootBytes)
    if (!decoded.ok) return refuse({ kind: decoded.code === 'too-large' ? 'too-large' : 'malformed', reason: 'BAD_ENTRY', message: `the root is not a log entry: ${decoded.code}: ${decoded.detail}` })
    const block = decoded.value
    if (block.cid.toString() !== root.toString()) return refuse({ kind: 'malformed', reason: 'BAD_ENTRY', message: `the root ${root.toString()} is not the entry's CID ${block.cid.toString()} (a log entry is dag-cbor, sha2-256, CIDv1)` })
    // The author's signature before the envelope: a forgery posted here bans nobody (the worker
    // would be its envelope's signer), it is only refused.
    const verified = await verifyEntry(block.entry)
    if (!verified.ok) return refuse({ kind: 'malformed', reason: 'BAD_SIGNATURE', message: `the entry's author signature does not verify: ${verified.code}` })
    if (!this.perAuthor.take(block.entry.author)) {
      const retryAfterMs = Math.max(this.perAuthor.msUntilToken(block.entry.author), 1000)
      return refuse({ kind: 'rate-limited', reason: 'AUTHOR_RATE_LIMITED', message: `author ${block.entry.author} posted more than PHAROS_ENTRIES_PER_MINUTE_PER_AUTHOR (${this.deps.limits.perMinutePerAuthor}) entries a minute here`, retryAfterMs })
    }
    const content = await this.contentBlocks(block, blocks)
    if (!content.ok) return refuse(content.refusal)

    const envelope = await sealEnvelope(block.bytes, this.deps.signer)
    const checked = await this.deps.ingest.checkEnvelope(envelope, this.deps.signer.peerId)
    if (checked.verdict !== 'accept') return refuse(this.refusalOf(checked.reason, block))
    // Content first: the entry's pin then finds every block stored.
    if (content.blocks.length > 0) {
      try {
        await this.deps.blockstore.putBatch(content.blocks)
      } catch (err) {
        return refuse({ kind: 'unavailable', reason: 'STORAGE_UNAVAILABLE', message: `the content blocks could not be stored: ${err instanceof Error ? err.message : String(err)}` })
      }
    }
    const stored = await this.deps.ingest.ingestChecked(checked, envelope, this.deps.signer.peerId)
    if (stored.result === 'rejected') return refuse(this.refusalOf(stored.reason, block))
    // A content message's ID is its entry's CID (message-id.ts).
    if (stored.result === 'accepted') this.deps.broadcast(block.cid.toString(), envelope)
    return { ok: true, cid: block.cid, status: stored.result }
  }

  private refusalOf (reason: LogEntryRejection, block: EntryBlock): WebEntryRefusal {
    const message = `the entry ${block.cid.toString()} of ${block.entry.author} was refused: ${reason}`
    if (reason === 'unregistered-author') return { kind: 'forbidden', reason: 'UNREGISTERED_AUTHOR', message: `${block.entry.author} is not a registered account` }
    if (RETRY_LATER.has(reason)) return { kind: 'rate-limited', reason: reason.toUpperCase().replaceAll('-', '_'), message, retryAfterMs: INGEST_RETRY_AFTER_MS }
    if (reason === 'storage-error') return { kind: 'unavailable', reason: 'STORAGE_UNAVAILABLE', message }
    const kind = reason === 'too-large' ? 'too-large' : MALFORMED.has(reason) ? 'malformed' : 'forbidden'
    return { kind, reason: reason.toUpperCase().replaceAll('-', '_'), message }
  }

  /** The CAR's one root and its blocks by CID string, each checked against its hash. */
  private async readCar (car: Uint8Array): Promise<{ ok: true, root: CID, blocks: Map<string, Uint8Array> } | { ok: false, refusal: WebEntryRefusal }> {
    let reader: CarReader
    try {
      reader = await CarReader.fromBytes(car)
    } catch (err) {
      return { ok: false, refusal: { kind: 'malformed', reason: 'BAD_CAR', message: `the body is not a CARv1: ${err instanceof Error ? err.message : String(err)}` } }
    }
    const roots = await reader.getRoots()
    const [root] = roots
    if (roots.length !== 1 || root === undefined) return { ok: false, refusal: { kind: 'malformed', reason: 'BAD_CAR', message: `the CAR must have one root, the entry; it has ${roots.length}` } }
    const blocks = new Map<string, Uint8Array>()
    for await (const { cid, bytes } of reader.blocks()) {
      if (blocks.size >= this.deps.limits.maxBlocks) {
        return { ok: false, refusal: { kind: 'too-large', reason: 'TOO_MANY_BLOCKS', message: `the CAR carries more than PHAROS_ENTRIES_MAX_BLOCKS (${this.deps.limits.maxBlocks}) blocks` } }
      }
      if (!await digestMatches(cid.multihash.code, cid.multihash.digest, bytes).catch(() => false)) {
        return { ok: false, refusal: { kind: 'malformed', reason: 'BLOCK_HASH_MISMATCH', message: `block ${cid.toString()} does not hash to its CID (or its hash function is not supported)` } }
      }
      blocks.set(cid.toString(), bytes)
    }
    return { ok: true, root, blocks }
  }

  /**
   * Every block of the CAR that the entry's content reaches, walked from its content links
   * (never `prev`). A reached block that is neither in the CAR nor stored here, or a block of
   * the CAR that nothing reaches, refuses the entry.
   */
  private async contentBlocks (block: EntryBlock, car: ReadonlyMap<string, Uint8Array>): Promise<{ ok: true, blocks: Array<{ cid: CID, bytes: Uint8Array }> } | { ok: false, refusal: WebEntryRefusal }> {
    const reached = new Map<string, { cid: CID, bytes: Uint8Array }>()
    const pending = [...contentLinks(block.entry)]
    const seen = new Set<string>([block.cid.toString()])
    while (pending.length > 0) {
      const cid = pending.pop() as CID
      const key = cid.toString()
      if (seen.has(key)) continue
      seen.add(key)
      const bytes = car.get(key)
      if (bytes === undefined) {
        if (await this.deps.blockstore.has(cid)) continue
        return { ok: false, refusal: { kind: 'malformed', reason: 'BLOCK_MISSING', message: `block ${key}, which the entry's content links to, is neither in the CAR nor stored here` } }
      }
      reached.set(key, { cid, bytes })
      try {
        pending.push(...linksOf(cid, bytes, this.deps.limits.maxLinksPerBlock))
      } catch (err) {
        return { ok: false, refusal: { kind: 'malformed', reason: 'DAG_NOT_TRAVERSABLE', message: `block ${key} cannot be walked: ${err instanceof Error ? err.message : String(err)}` } }
      }
    }
    for (const key of car.keys()) {
      if (key !== block.cid.toString() && !reached.has(key)) return { ok: false, refusal: { kind: 'malformed', reason: 'UNREFERENCED_BLOCK', message: `block ${key} is not part of the entry's content` } }
    }
    return { ok: true, blocks: [...reached.values()] }
  }
}

