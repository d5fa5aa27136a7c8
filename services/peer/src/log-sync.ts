/**
 * Getting the logs of followed authors: sync with beacons (DESIGN.md §4), fetching heads that
 * peers announce, whole logs for `fetchLog`, and entries taken from gossip. Each entry is
 * verified before it is kept, and a chain is kept only once it is whole.
 */
import type { CID } from 'multiformats/cid'
import type { SyncClient } from '@pharos/net/clients/sync-client.ts'
import type { AcceptedPayloads } from '@pharos/net/overlay/gossip-validators.ts'
import type { Delivery } from '@pharos/net/overlay/overlay-driver.ts'
import { compareHeads, decodeEntry, openEnvelope, SYNC_LIMITS, verifyEntry } from '@pharos/protocol/log/index.ts'
import type { EntryBlock, HeadInfo, KnownHead } from '@pharos/protocol/log/index.ts'
import type { BeaconSessions } from './beacon-sessions.ts'
import type { PeerTimeouts } from './constants.ts'
import { UnknownAuthorError } from './errors.ts'
import { asError } from './failures.ts'
import type { FollowedAuthors } from './followed-authors.ts'
import type { HeadRequests } from './head-requests.ts'
import type { PeerRun } from './lifecycle.ts'
import type { LocalLog } from './local-log.ts'
import { walkLog } from './log-verify.ts'
import type { LogSource } from './log-verify.ts'
import { report } from './progress.ts'
import type { FetchLogOptions } from './progress.ts'
import type { AbortOptions, Logger, PeerId } from '@libp2p/interface'

/** What `sync` did. */
export interface SyncReport {
  /** Entries fetched and verified, over all authors. */
  fetched: number
  /** Authors whose held head moved. */
  updated: string[]
  /** Authors whose sync failed, and why; the others went on. */
  failed: Array<{ author: string, error: Error }>
}

export interface LogSyncComponents {
  store: LocalLog
  followed: FollowedAuthors
  sessions: Pick<BeaconSessions, 'withBeacon' | 'connected' | 'hasBeacons'>
  syncClient: Pick<SyncClient, 'heads' | 'entries'>
  headRequests: Pick<HeadRequests, 'ask' | 'answer'>
  /** Entries the overlay's content validator checked, for the delivery that follows (gossip-validators.ts). */
  accepted: AcceptedPayloads<EntryBlock>
  timeouts: PeerTimeouts
  run: PeerRun
  log: Logger
}

export class LogSync {
  private readonly components: LogSyncComponents
  /** The head being fetched per author after an announcement, so several seeders' answers fetch it once. */
  private readonly fetchingHeads = new Map<string, { cid: CID, seq: number }>()

  constructor (components: LogSyncComponents) {
    this.components = components
  }

  /** Where a walk gets entries: the local log, then beacons (`preferred` first). */
  private logSource (preferred?: PeerId): LogSource {
    const { store, sessions, syncClient } = this.components
    return {
      local: async (cid, options) => await store.get(cid, options),
      remote: async (from, options) => {
        const beacons = await sessions.connected(options)
        const askers = preferred === undefined ? beacons : [preferred, ...beacons.filter((beacon) => !beacon.equals(preferred))]
        let last: unknown
        let answered = false
        for (const peer of askers) {
          try {
            const blocks = await syncClient.entries(peer, from, SYNC_LIMITS.entries, options)
            answered = true
            if (blocks.length > 0) return blocks
          } catch (err) {
            if (options.signal?.aborted === true) throw err
            last = err
          }
        }
        if (!answered && last !== undefined) throw last
        return []
      }
    }
  }

  /**
   * Fetches `author`'s entries from `head` down to the first one the peer holds (or genesis),
   * verifying each, and keeps them only once the chain is whole: oldest first, emitting the
   * ones that were new. Returns what it fetched and verified, head first (another walk may
   * have kept some of it meanwhile). A walk that fails keeps nothing. Kept, the part of a chain above a gap
   * would be the author's head in the local log, so no later sync would fetch what lies below
   * it, and nobody would hear of the entries kept (seen under load in the fleet scenario:
   * peers that synced still lacked entries).
   */
  private async fetchMissing (author: string, head: { cid: CID, seq: number }, source: LogSource, signal?: AbortSignal): Promise<EntryBlock[]> {
    const verified: EntryBlock[] = []
    await walkLog({ author, head, until: 'held', source, onVerified: async (block) => { verified.push(block) }, ...(signal === undefined ? {} : { signal }) })
    const added: EntryBlock[] = []
    for (const block of verified.toReversed()) {
      if (await this.components.store.add(block, signal === undefined ? {} : { signal })) added.push(block)
    }
    this.components.followed.emit(added)
    return verified
  }

  /**
   * A peer told us heads it holds (sync on connect, or a seeder answering our HEAD request):
   * fetch from it what we lack of the authors we follow. A head already being fetched, or a
   * worse one, is not fetched again: several seeders answer the same request.
   */
  onKnownHeads (from: PeerId, known: readonly KnownHead[]): void {
    const { store, followed, timeouts, run, log } = this.components
    for (const head of known) {
      if (!followed.has(head.author)) continue
      const local = store.head(head.author)
      if (local !== undefined && compareHeads(head, { seq: local.entry.seq, cid: local.cid }) >= 0) continue
      const fetching = this.fetchingHeads.get(head.author)
      if (fetching !== undefined && compareHeads(head, fetching) >= 0) continue
      this.fetchingHeads.set(head.author, { cid: head.cid, seq: head.seq })
      const signal = AbortSignal.any([run.signal, AbortSignal.timeout(timeouts.requestMs * 4)])
      void this.fetchMissing(head.author, { cid: head.cid, seq: head.seq }, this.logSource(from), signal)
        .catch((err: unknown) => { log('fetching announced head of %s from %p failed - %e', head.author, from, err) })
        .finally(() => { if (this.fetchingHeads.get(head.author)?.cid.equals(head.cid) === true) this.fetchingHeads.delete(head.author) })
    }
  }

  /** The best head each asked beacon reports per author (beacons that fail are skipped). */
  private async beaconHeads (authors: readonly string[], options: AbortOptions): Promise<Map<string, { head: HeadInfo, from: PeerId }>> {
    const { sessions, syncClient, store } = this.components
    const best = new Map<string, { head: HeadInfo, from: PeerId }>()
    await sessions.withBeacon('heads', options, async (beacon) => {
      for (const head of await syncClient.heads(beacon, authors, store.knownHeads(authors), options)) {
        const current = best.get(head.author)
        if (current === undefined || compareHeads(head, current.head) < 0) best.set(head.author, { head, from: beacon })
      }
    })
    return best
  }

  /**
   * Sync on connect (DESIGN.md §4): asks a beacon for the heads of the followed authors
   * (telling it ours), and for each that is ahead of what the peer holds, fetches the missing
   * entries with `entries` requests, walking back from the head until an entry it holds or
   * genesis; each is verified before it is kept. One author's failure does not stop the rest.
   */
  async sync (options: AbortOptions): Promise<SyncReport> {
    const { store, followed, sessions, headRequests, log } = this.components
    const report: SyncReport = { fetched: 0, updated: [], failed: [] }
    const authors = followed.list()
    if (authors.length === 0) return report
    // The overlay's seeders (peers that hold these logs; beacons too) answer the topic by
    // announcing better heads to us, which are then fetched like any announcement.
    headRequests.ask(authors)
    if (!sessions.hasBeacons()) return report
    const heads = await this.beaconHeads(authors, options)
    for (const [author, { head, from }] of heads) {
      const local = store.head(author)
      if (local !== undefined && compareHeads(head, { seq: local.entry.seq, cid: local.cid }) >= 0) continue
      try {
        const fetched = await this.fetchMissing(author, { cid: head.cid, seq: head.seq }, this.logSource(from), options.signal)
        report.fetched += fetched.length
        if (fetched.length > 0) report.updated.push(author)
      } catch (err) {
        if (options.signal?.aborted === true) throw err
        log('sync of %s failed - %e', author, err)
        report.failed.push({ author, error: asError(err) })
      }
    }
    return report
  }

  /**
   * An author's whole log, from the best head (the best of what beacons report and what the
   * peer holds) down to genesis, every entry verified; missing entries are fetched (and kept).
   */
  async fetchLog (author: string, options: FetchLogOptions): Promise<EntryBlock[]> {
    const { store, sessions } = this.components
    let remote: { head: HeadInfo, from: PeerId } | undefined
    let headError: unknown
    if (sessions.hasBeacons()) {
      try {
        remote = (await this.beaconHeads([author], options)).get(author)
      } catch (err) {
        if (options.signal?.aborted === true) throw err
        headError = err
      }
    }
    const local = store.head(author)
    let head: { cid: CID, seq: number } | undefined = local === undefined ? undefined : { cid: local.cid, seq: local.entry.seq }
    if (remote !== undefined && (head === undefined || compareHeads(remote.head, head) < 0)) head = { cid: remote.head.cid, seq: remote.head.seq }
    if (head === undefined) {
      if (headError !== undefined) throw headError
      throw new UnknownAuthorError(author)
    }
    // Kept only once the whole chain verified (see fetchMissing: a kept part above a gap would
    // pass for the author's head).
    const fetched: EntryBlock[] = []
    const progress = { author, entries: 0, total: head.seq + 1, bytes: 0 }
    report(options, 'pharos:fetch-log:head', { ...progress, head: head.cid })
    const log = await walkLog({
      author,
      head,
      until: 'genesis',
      source: this.logSource(remote?.from),
      onVerified: async (block) => { fetched.push(block) },
      onEntry: (block) => {
        progress.entries++
        progress.bytes += block.bytes.length
        report(options, 'pharos:fetch-log:entry', { ...progress, cid: block.cid, seq: block.entry.seq })
      },
      signal: options.signal
    })
    for (const block of fetched.toReversed()) await store.add(block, { signal: options.signal })
    return log
  }

  // ---- gossip ---------------------------------------------------------------------------------

  /** Forgets what the validator kept for deliveries that will not come now (on stop). */
  stop (): void {
    this.components.accepted.clear()
  }

  /**
   * An entry on the content topic from a followed author: kept if it continues what we hold.
   * A HEAD request on the sync topic: answered for the authors we hold.
   */
  onDelivery (delivery: Delivery): void {
    const { accepted, followed, headRequests, log } = this.components
    if (delivery.topic === 'sync') {
      void headRequests.answer(delivery.payload).catch((err: unknown) => { log('head request not answered - %e', err) })
      return
    }
    if (delivery.topic !== 'content') return
    // Taken at once, followed or not: what the validator kept is for this delivery only.
    const checked = accepted.take(delivery.messageId, delivery.payload)
    if (followed.size === 0) return
    void this.ingest(delivery.payload, checked).catch((err: unknown) => { log('gossiped entry dropped - %e', err) })
  }

  /**
   * A gossiped entry: `checked` is what the overlay's validator verified of this payload (its
   * envelope and both signatures); only a delivery it kept nothing for is verified here.
   */
  private async ingest (payload: Uint8Array, checked: EntryBlock | undefined): Promise<void> {
    const { store, followed, timeouts, run } = this.components
    const block = checked ?? await this.openGossipedEntry(payload)
    if (block === undefined || !followed.has(block.entry.author)) return
    const { author, prev, seq } = block.entry
    const signal = AbortSignal.any([run.signal, AbortSignal.timeout(timeouts.requestMs * 4)])
    if (prev !== null && await store.get(prev, { signal }) === undefined) {
      await this.fetchMissing(author, { cid: prev, seq: seq - 1 }, this.logSource(), signal)
    }
    if (await store.add(block, { signal })) followed.emit([block])
  }

  /** A gossiped envelope's entry, if it opens and verifies and its author is followed. */
  private async openGossipedEntry (payload: Uint8Array): Promise<EntryBlock | undefined> {
    const envelope = await openEnvelope(payload)
    if (!envelope.ok) return undefined
    const decoded = await decodeEntry(envelope.value.entry)
    if (!decoded.ok || !this.components.followed.has(decoded.value.entry.author)) return undefined
    return (await verifyEntry(decoded.value.entry)).ok ? decoded.value : undefined
  }
}
