/**
 * The ingest pipeline of profile-log entries (DESIGN.md §4). Entries arrive in publish
 * envelopes on the `content` topic, or bare from a peer we asked (orphan ancestors, heads
 * announced on sync). For each, in this order:
 *
 * 1. the envelope (gossip only) is decoded and its publisher's signature checked — if that
 *    fails nobody can be blamed: dropped as malformed;
 * 2. the entry is decoded strictly — malformed: dropped and counted, never stored;
 * 3. the author's signature is verified, before anything else touches the entry — a bad one
 *    gets the envelope's publisher banned fleet-wide and disconnected (a neighbour that only
 *    forwarded it is not: Plumtree forwards envelopes unchanged, so the publisher is known);
 * 4. the author must be a registered account — else dropped, nothing stored or pinned;
 * 5. the author's limits (docs/logs.md "Per-author limits"), before anything is stored:
 *    stored entries, orphans and pending entry pins under their caps, and, for an entry
 *    pushed to us (not one we fetched), a token from the author's rate bucket — else
 *    refused with the limit as the reason, nothing stored;
 * 6. the block is stored and the author's log updated (forks kept, best head recomputed,
 *    equivocation recorded; the entry caps checked again under the author's lock); a pushed
 *    orphan triggers a bounded fetch of its ancestors from the peer that sent it (a fetched
 *    one never does: the fetch that brought it walks on by itself);
 * 7. the entry is pinned: a pin job per entry, owned by its author, that holds the entry
 *    block and everything its params link to, within the author's quota.
 *
 * Stages 1–4 read no storage: they are `checkEnvelope`, which decides whether a gossiped
 * envelope is forwarded at all (the overlay validates before it forwards, issue 18), and they
 * run on every worker that receives it. Stages 5–7 need Postgres and run on the one worker that
 * claimed the message (log-service.ts), from the checked entry, without verifying it again.
 * What a stateless check cannot see is left to storage: an entry whose `prev` is not stored
 * here is forwarded (an orphan is valid; its ancestors come later), and a `seq` that does not
 * follow its stored `prev` is an equivocation or a fork, kept like any other (docs/logs.md).
 */
import { CID } from 'multiformats/cid'
import { decodeEntry, openEnvelope, verifyEntry } from '@pharos/protocol/log/index.ts'
import type { EntryBlock } from '@pharos/protocol/log/index.ts'
import type { BanList } from '../bans/ban-list.ts'
import type { ConfigKey } from '../config/schema.ts'
import type { Logger } from '../logging/logger.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import type { LogEntryRejection, LogMetrics } from './log-metrics.ts'
import { authorOwner, LOG_ENTRY_KIND, PIN_KIND_KEY } from '../pinning/log-entry-pins.ts'
import type { PinStore } from '../pinning/pin-store.ts'
import type { PgBlockstore } from '../storage/pg-blockstore.ts'
import { isStorageUnavailable } from '../storage/sql.ts'
import type { Admission, LogStore, NewLogEntry, StoredOutcome } from './log-store.ts'
import { TokenBuckets } from './token-buckets.ts'

/** What `checkEnvelope` decided about a gossiped envelope (stages 1–4). */
export type EnvelopeCheck =
  | { verdict: 'accept', block: EntryBlock, publisher: string }
  | { verdict: 'reject', reason: LogEntryRejection, cid?: CID }

export type IngestResult =
  | { result: 'accepted', cid: CID, outcome: StoredOutcome }
  | { result: 'duplicate', cid: CID }
  | { result: 'rejected', reason: LogEntryRejection, cid?: CID }

/** Where an entry came from: who to blame for a forgery, and who to ask for missing ancestors. */
export interface EntrySource {
  /** The connected peer that handed it to us (a neighbour, or the peer we asked). */
  from: string
  /** The peer whose envelope signature vouches for it (gossip only). */
  publisher?: string
  /** The signed envelope it arrived in (gossip only): kept with a ban as its proof. */
  envelope?: Uint8Array
  /**
   * The ancestor fetcher asked for it: it takes no token from the author's rate bucket (the
   * fetch limits bound it) and, if an orphan, starts no fetch of its own.
   */
  fetched?: boolean
}

/** The per-author limits (config keys PHAROS_AUTHOR_*; docs/logs.md "Per-author limits"). */
export interface AuthorLimits {
  /** Token bucket refill for pushed entries, per minute. */
  entriesPerMinute: number
  /** Token bucket size. */
  entryBurst: number
  maxEntries: number
  maxOrphans: number
  maxPendingPins: number
}

export interface LogIngestDeps {
  logs: Pick<LogStore, 'admission' | 'insert' | 'pinOnce' | 'admissionMany' | 'insertManyForPins' | 'pinMany'>
  bans: Pick<BanList, 'ban'>
  isRegistered: (peerId: string) => boolean
  blockstore: Pick<PgBlockstore, 'put' | 'putBatch'>
  pins: Pick<PinStore, 'createIn' | 'createManyIn'>
  /** A pin was queued: look for work now. */
  onPinQueued: () => void
  /** A pushed orphan arrived: fetch `missing` (an entry of `author`) and what lies below it from `peers`, in that order. */
  fetchAncestors: (missing: CID, author: string, peers: string[]) => void
  limits: AuthorLimits
  /** Counts what the per-author limits refused, by config key. */
  limitMetrics: Pick<LimitMetrics, 'blocked'>
  metrics: LogMetrics
  log: Logger
  /** This worker's peer ID, recorded on the bans it makes. */
  worker: string
}

/** The config key of each per-author limit, for `pharos_limit_blocked_total`. */
const LIMIT_KEYS: Partial<Record<LogEntryRejection, ConfigKey>> = {
  'rate-limited': 'authorEntriesPerMinute',
  'too-many-entries': 'authorMaxEntries',
  'too-many-orphans': 'authorMaxOrphans',
  'too-many-pending-pins': 'authorMaxPendingPins'
}

export class LogIngest {
  private readonly deps: LogIngestDeps
  private readonly log: Logger
  /** Per-author buckets for pushed entries; per worker (in a fleet each entry is handled by one worker). */
  private readonly rate: TokenBuckets

  constructor (deps: LogIngestDeps) {
    this.deps = deps
    this.log = deps.log.child({ component: 'log-ingest' })
    this.rate = new TokenBuckets({ capacity: deps.limits.entryBurst, perMinute: deps.limits.entriesPerMinute })
  }

  /**
   * Stages 1–4 of a content-topic payload from neighbour `from`, with no storage: envelope,
   * entry, author signature (a forgery bans the envelope's signer), registered author. Every
   * rejection is counted. Whether the overlay forwards the payload is decided by this.
   */
  async checkEnvelope (payload: Uint8Array, from: string): Promise<EnvelopeCheck> {
    const envelope = await openEnvelope(payload)
    if (!envelope.ok) {
      this.log.debug({ from, code: envelope.code, detail: envelope.detail }, 'dropped a malformed envelope')
      return this.refuse(envelope.code === 'too-large' ? 'too-large' : 'bad-envelope')
    }
    const checked = await this.checkEntry(envelope.value.entry, { from, publisher: envelope.value.publisher, envelope: payload })
    return checked.verdict === 'accept' ? { ...checked, publisher: envelope.value.publisher } : checked
  }

  /** A content-topic payload delivered by neighbour `from`: checked, then stored. */
  async ingestEnvelope (payload: Uint8Array, from: string): Promise<IngestResult> {
    const checked = await this.checkEnvelope(payload, from)
    if (checked.verdict !== 'accept') return rejected(checked.reason, checked.cid)
    return await this.ingestChecked(checked, payload, from)
  }

  /** A payload `checkEnvelope` accepted: stages 5–7, without checking it again. */
  async ingestChecked (checked: Extract<EnvelopeCheck, { verdict: 'accept' }>, payload: Uint8Array, from: string): Promise<IngestResult> {
    return await this.store(checked.block, { from, publisher: checked.publisher, envelope: payload })
  }

  /** An entry block, with where it came from. */
  async ingestEntry (bytes: Uint8Array, source: EntrySource): Promise<IngestResult> {
    const checked = await this.checkEntry(bytes, source)
    if (checked.verdict !== 'accept') return rejected(checked.reason, checked.cid)
    return await this.store(checked.block, source)
  }

  /**
   * A batch of content-topic payloads, each with the neighbour that delivered it and, if the
   * overlay's validator checked it already, that check. Results come back in the same order,
   * only after the batch's entries are committed. The envelopes not yet checked are checked
   * at once (their signature verifies run in parallel); the accepted entries are then stored
   * together by `storeMany`. A bad entry refuses only itself.
   */
  async ingestEnvelopes (items: ReadonlyArray<{ payload: Uint8Array, from: string, checked?: Extract<EnvelopeCheck, { verdict: 'accept' }> }>): Promise<IngestResult[]> {
    const checks = await Promise.all(items.map(async (item) => item.checked ?? await this.checkEnvelope(item.payload, item.from)))
    const accepted: Array<{ block: EntryBlock, source: EntrySource }> = []
    for (const [index, check] of checks.entries()) {
      const item = items[index] as (typeof items)[number]
      if (check.verdict === 'accept') accepted.push({ block: check.block, source: { from: item.from, publisher: check.publisher, envelope: item.payload } })
    }
    const stored = (await this.storeMany(accepted)).values()
    return checks.map((check) => check.verdict === 'accept' ? stored.next().value as IngestResult : rejected(check.reason, check.cid))
  }

  /** Stages 2–4: decode, the author's signature (a forgery bans the envelope's signer), registration. */
  private async checkEntry (bytes: Uint8Array, source: EntrySource): Promise<{ verdict: 'accept', block: EntryBlock } | { verdict: 'reject', reason: LogEntryRejection, cid?: CID }> {
    const decoded = await decodeEntry(bytes)
    if (!decoded.ok) {
      this.log.debug({ from: source.from, code: decoded.code, detail: decoded.detail }, 'dropped a malformed entry')
      return this.refuse(decoded.code === 'too-large' ? 'too-large' : 'malformed')
    }
    const block = decoded.value
    const verified = await verifyEntry(block.entry)
    if (!verified.ok) {
      await this.punishForgery(block, source, verified.code)
      return this.refuse('bad-signature', block.cid)
    }
    if (!this.deps.isRegistered(block.entry.author)) return this.refuse('unregistered-author', block.cid)
    return { verdict: 'accept', block }
  }

  /** Stages 5–7 of one entry; `rateTaken`: its author's rate token was taken already (by `storeMany`). */
  private async store ({ entry, bytes, cid }: EntryBlock, source: EntrySource, options: { rateTaken?: boolean } = {}): Promise<IngestResult> {
    const { deps } = this
    const prev = entry.prev?.bytes ?? null
    const admission = await deps.logs.admission({ cid: cid.bytes, prev, author: entry.author }, authorOwner(entry.author), deps.limits.maxPendingPins)
    // A stored entry costs nothing new (the duplicate path below only makes sure it is pinned).
    if (!admission.known) {
      const refusal = this.overLimit(entry.author, admission, source, options.rateTaken)
      if (refusal !== undefined) return this.reject(refusal, cid)
    }
    // Block first: an indexed entry always has its bytes (GC's grace period covers the gap
    // until the pin job records the block). If insert then refuses the entry (another task
    // took the author's last place in between), the block is unpinned and GC collects it.
    await deps.blockstore.put(cid, bytes)
    const outcome = await deps.logs.insert({
      cid: cid.bytes,
      author: entry.author,
      seq: entry.seq,
      prev,
      action: entry.action,
      timestamp: entry.timestamp,
      size: bytes.length
    }, { maxEntries: deps.limits.maxEntries, maxOrphans: deps.limits.maxOrphans })
    if (outcome.status === 'duplicate') {
      deps.metrics.entries.inc({ result: 'rejected', reason: 'duplicate' })
      // Stored before, but maybe never pinned: the worker that stored it died, or Postgres
      // went away, in between. pinOnce makes this a no-op when the pin exists.
      await this.pin(entry.author, entry.seq, cid, source)
      return { result: 'duplicate', cid }
    }
    if (outcome.status === 'rejected') return this.reject(outcome.reason, cid)
    deps.metrics.entries.inc({ result: 'accepted', reason: 'ok' })
    if (outcome.equivocation) this.log.info({ author: entry.author, seq: entry.seq, cid: cid.toString() }, 'equivocation: the author signed two entries at one seq; both are kept')
    if (outcome.missingPrev !== undefined && source.fetched !== true) {
      const peers = [source.from, source.publisher, entry.author].filter((peer): peer is string => peer !== undefined)
      deps.fetchAncestors(CID.decode(outcome.missingPrev), entry.author, [...new Set(peers)])
    }
    await this.pin(entry.author, entry.seq, cid, source)
    return { result: 'accepted', cid, outcome }
  }

  /**
   * Stages 5–7 for a batch of checked entries, as `store` does them one at a time, in a
   * constant number of round trips whatever the batch's size: one admission read, the
   * blocks (one statement), the entries (one statement, `log_insert_batch`: the authors'
   * locks are held for the server's work only), and the pins (one transaction: the pins in
   * one statement, recorded on the entries in another). Results in the same order, only
   * after those commits; a refused entry refuses only itself.
   *
   * If a statement fails because Postgres is away (or rolled it back for a conflict), it
   * throws and nothing in the batch was acknowledged: the caller retries the batch, and
   * entries stored by then come back as duplicates and get their pins. Any other failure
   * (a bug, or a database error about one entry) would otherwise drop the whole batch, so
   * the admitted entries are then stored one at a time: the good ones land, and only an
   * entry that fails on its own is refused, as `storage-error`.
   */
  async storeMany (items: ReadonlyArray<{ block: EntryBlock, source: EntrySource }>): Promise<IngestResult[]> {
    const { deps } = this
    if (items.length === 0) return []
    const admissions = await deps.logs.admissionMany(items.map(({ block: { cid, entry } }) => ({
      cid: cid.bytes, prev: entry.prev?.bytes ?? null, author: entry.author, pinOwner: authorOwner(entry.author)
    })), deps.limits.maxPendingPins)
    const results: Array<IngestResult | undefined> = items.map(() => undefined)
    const admitted: Array<{ block: EntryBlock, source: EntrySource, index: number }> = []
    for (const [index, { block, source }] of items.entries()) {
      const admission = admissions[index] as Admission
      const refusal = admission.known ? undefined : this.overLimit(block.entry.author, admission, source)
      if (refusal !== undefined) results[index] = this.reject(refusal, block.cid)
      else admitted.push({ block, source, index })
    }
    let stored: IngestResult[]
    try {
      stored = await this.insertAdmitted(admitted)
    } catch (err) {
      if (isStorageUnavailable(err) || isTransactionConflict(err)) throw err
      this.log.warn({ err, entries: admitted.length }, 'a batch failed to store; storing its entries one at a time')
      stored = []
      for (const { block, source } of admitted) {
        try {
          // Its admission (and rate token) was taken above.
          stored.push(await this.store(block, source, { rateTaken: true }))
        } catch (entryErr) {
          if (isStorageUnavailable(entryErr) || isTransactionConflict(entryErr)) throw entryErr
          this.log.warn({ err: entryErr, author: block.entry.author, seq: block.entry.seq, cid: block.cid.toString() }, 'an entry failed to store; it was not stored')
          stored.push(this.reject('storage-error', block.cid))
        }
      }
    }
    admitted.forEach(({ index }, i) => { results[index] = stored[i] })
    return results.map((result, index) => {
      if (result === undefined) throw new Error(`entry ${index} of the batch got no result`)
      return result
    })
  }

  /** The statements of `storeMany` after admission, and what follows them (metrics, fetches, the pin queue's wake-up). */
  private async insertAdmitted (admitted: ReadonlyArray<{ block: EntryBlock, source: EntrySource }>): Promise<IngestResult[]> {
    const { deps } = this
    if (admitted.length === 0) return []
    // Blocks first, as in `store`: an indexed entry always has its bytes. If the insert then
    // refuses an entry, its block is unpinned and GC collects it.
    await deps.blockstore.putBatch(admitted.map(({ block }) => block))
    const caps = { maxEntries: deps.limits.maxEntries, maxOrphans: deps.limits.maxOrphans }
    // One statement: the authors' locks are held for the server's work only.
    const inserted = await deps.logs.insertManyForPins(admitted.map(({ block }) => newLogEntry(block)), caps)
    const toPin = inserted.flatMap(({ unpinned }, i) => unpinned ? [i] : [])
    // The entries are committed now: a conflict in the pin step is retried here, so their
    // outcomes (an orphan's ancestor fetch among them) are not lost to a retry of the whole
    // batch, which would find them duplicates.
    const pinIds = await retryingConflicts(async () => await deps.logs.pinMany(toPin.map((i) => { const { block } = admitted[i] as (typeof admitted)[number]; return { cid: block.cid.bytes, author: block.entry.author } }), async (tx, indexes) =>
      await deps.pins.createManyIn(tx, indexes.map((j) => {
        const { block: { entry, cid }, source } = admitted[toPin[j] as number] as (typeof admitted)[number]
        return this.entryPin(entry.author, entry.seq, cid, source)
      }))))
    if (pinIds.some((id) => id !== undefined)) deps.onPinQueued()
    return inserted.map(({ outcome }, i): IngestResult => {
      const { block: { entry, cid }, source } = admitted[i] as (typeof admitted)[number]
      if (outcome.status === 'rejected') return this.reject(outcome.reason, cid)
      if (outcome.status === 'duplicate') {
        deps.metrics.entries.inc({ result: 'rejected', reason: 'duplicate' })
        return { result: 'duplicate', cid }
      }
      deps.metrics.entries.inc({ result: 'accepted', reason: 'ok' })
      if (outcome.equivocation) this.log.info({ author: entry.author, seq: entry.seq, cid: cid.toString() }, 'equivocation: the author signed two entries at one seq; both are kept')
      if (outcome.missingPrev !== undefined && source.fetched !== true) {
        const peers = [source.from, source.publisher, entry.author].filter((peer): peer is string => peer !== undefined)
        deps.fetchAncestors(CID.decode(outcome.missingPrev), entry.author, [...new Set(peers)])
      }
      return { result: 'accepted', cid, outcome }
    })
  }

  /**
   * Which per-author limit a new entry is over, if any. The caps only read; the rate bucket
   * is charged last, so an entry refused for a cap costs the author no token.
   */
  private overLimit (author: string, admission: Admission, source: EntrySource, rateTaken = false): LogEntryRejection | undefined {
    const { limits } = this.deps
    if (admission.entries >= limits.maxEntries) return 'too-many-entries'
    if (admission.orphan && admission.orphans >= limits.maxOrphans) return 'too-many-orphans'
    if (admission.pendingPins >= limits.maxPendingPins) return 'too-many-pending-pins'
    if (source.fetched !== true && !rateTaken && !this.rate.take(author)) return 'rate-limited'
    return undefined
  }

  /** The entry's one pin (see LogStore.pinOnce): created by whichever call gets there first. */
  async pin (author: string, seq: number, cid: CID, source: EntrySource): Promise<void> {
    const { deps } = this
    const created = await deps.logs.pinOnce(cid.bytes, async (tx) => (await deps.pins.createIn(tx, this.entryPin(author, seq, cid, source))).id)
    if (created !== undefined) deps.onPinQueued()
  }

  /** The pin job of one entry: owned by its author, fetching from whoever handed it to us. */
  private entryPin (author: string, seq: number, cid: CID, source: EntrySource): Parameters<PinStore['createIn']>[1] {
    const origins = [...new Set([source.publisher, source.from, author])].filter((peer): peer is string => peer !== undefined).map((peer) => `/p2p/${peer}`)
    return {
      owner: authorOwner(author),
      cid,
      cidText: cid.toString(),
      name: `${author} #${seq}`,
      // The kind decides how the pin is walked and what its receipt covers; the meta marker
      // only shows it in listings (clients can never write `pharos:` keys).
      kind: LOG_ENTRY_KIND,
      meta: { [PIN_KIND_KEY]: LOG_ENTRY_KIND },
      origins
    }
  }

  private async punishForgery (block: EntryBlock, source: EntrySource, code: string): Promise<void> {
    const { deps } = this
    const publisher = source.publisher
    if (publisher === undefined) {
      // Asked-for blocks (ancestors, announced heads) carry no envelope: whoever served it
      // may only be passing on what it was given, so nobody is banned for it.
      this.log.info({ from: source.from, cid: block.cid.toString(), code }, 'a fetched entry has a bad signature; dropped')
      return
    }
    await deps.bans.ban({
      peer: publisher,
      reason: 'bad-signature',
      detail: `signed the envelope of entry ${block.cid.toString()} (author ${block.entry.author}), whose signature is invalid: ${code}`,
      evidence: block.bytes,
      ...(source.envelope === undefined ? {} : { envelope: source.envelope }),
      bannedBy: deps.worker
    })
    this.log.warn({ publisher, forwarder: source.from, cid: block.cid.toString(), code }, 'banned the publisher of a forged entry')
  }

  private reject (reason: LogEntryRejection, cid?: CID): IngestResult {
    this.count(reason)
    return rejected(reason, cid)
  }

  private refuse (reason: LogEntryRejection, cid?: CID): { verdict: 'reject', reason: LogEntryRejection, cid?: CID } {
    this.count(reason)
    return cid === undefined ? { verdict: 'reject', reason } : { verdict: 'reject', reason, cid }
  }

  private count (reason: LogEntryRejection): void {
    this.deps.metrics.entries.inc({ result: 'rejected', reason })
    const limit = LIMIT_KEYS[reason]
    if (limit !== undefined) this.deps.limitMetrics.blocked(limit)
  }
}

/** SQLSTATEs of a transaction rolled back to be tried again: serialization_failure, deadlock_detected. */
const CONFLICT_SQLSTATES = new Set(['40001', '40P01'])
/** Whether Postgres rolled the transaction back for a deadlock or serialization failure: nothing of it stands, and trying again is what it asks for. */
export const isTransactionConflict = (err: unknown): boolean => err instanceof Error && CONFLICT_SQLSTATES.has(String((err as { code?: unknown }).code))

/** Tries of a statement Postgres rolled back for a deadlock or serialization failure (as the ingest queue's CONFLICT_RETRIES). */
const CONFLICT_TRIES = 5

async function retryingConflicts<T> (run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run()
    } catch (err) {
      if (!isTransactionConflict(err) || attempt >= CONFLICT_TRIES) throw err
      await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** attempt))
    }
  }
}

function newLogEntry ({ entry, bytes, cid }: EntryBlock): NewLogEntry {
  return { cid: cid.bytes, author: entry.author, seq: entry.seq, prev: entry.prev?.bytes ?? null, action: entry.action, timestamp: entry.timestamp, size: bytes.length }
}

function rejected (reason: LogEntryRejection, cid?: CID): IngestResult {
  return cid === undefined ? { result: 'rejected', reason } : { result: 'rejected', reason, cid }
}
