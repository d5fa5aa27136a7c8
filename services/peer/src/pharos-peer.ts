/**
 * The peer SDK: what a network's app embeds to take part in a Pharos network (DESIGN.md §1,
 * §3, §4). One `PharosPeer` is one libp2p node with the overlay driver, Helia with Bitswap on
 * that node, the peer's own signed log, and clients of the beacon's sync and key-exchange
 * protocols. It reaches nothing but the beacons it is given and the peers the overlay
 * introduces: no DHT, no public bootstrap list, no HTTP gateways.
 *
 *   const peer = await createPharosPeer({ privateKey, bootstrap: ['/ip4/…/tcp/4001/p2p/12D3KooW…'] })
 *   await peer.start()                                  // dial, join the overlay, learn own head
 *   const { cid } = await peer.publishPost({ text: 'hello', attachments: [{ name: 'a.txt', bytes }] })
 *   await peer.waitUntilHeld([cid])                     // the beacon pinned it
 *   const log = await peer.fetchLog(author)             // verified, head first
 *   const post = await peer.fetchPost(log[0])           // body and files over Bitswap
 */
import { unixfs } from '@helia/unixfs'
import type { UnixFS } from '@helia/unixfs'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Helia } from '@helia/interface'
import type { CID } from 'multiformats/cid'
import type { Delivery, OverlayDriver } from '../../net/src/overlay/overlay-driver.ts'
import { AcceptedPayloads } from '../../net/src/overlay/gossip-validators.ts'
import type { ChallengeResult } from '../../protocol/src/audit/index.ts'
import { compareHeads, decodeEntry, HEAD_REQUEST_LIMITS, messageIdOf, newerHeads, openEnvelope, openHeadRequest, signHeadRequest, SYNC_LIMITS, syncProtocolId, verifyEntry } from '../../protocol/src/log/index.ts'
import type { Ed25519Signer, Entry, EntryBlock, HeadInfo, HeadWant, KnownHead } from '../../protocol/src/log/index.ts'
import { ACCEPTED_ENTRIES_MAX, DEFAULT_MAX_ATTACHMENT_BYTES, DEFAULT_NETWORK, DEFAULT_TIMEOUTS, HEAD_ANSWER_ASKERS_MAX, HEAD_ANSWER_INTERVAL_MS, HEAD_REQUEST_INTERVAL_MS, HEAD_REQUEST_RETRY_MS } from './constants.ts'
import type { PeerTimeouts } from './constants.ts'
import { UnknownAuthorError } from './errors.ts'
import { KeyExchangeClient } from '../../net/src/clients/key-exchange-client.ts'
import { signerFor } from './keys.ts'
import { LocalLog } from './local-log.ts'
import { ContentKeys } from './content-keys.ts'
import { Fetcher } from './fetcher.ts'
import { Publisher } from './publisher.ts'
import type { LogReceiptOptions, PinReceiptOptions, PostInput, PublishedEntry, WaitUntilHeldOptions } from './publisher.ts'
import type { KeyDeposit } from './content-keys.ts'
import type { Post } from './fetcher.ts'
import { challengeBeacon } from './storage-audit.ts'
import { beaconOf, BeaconSessions } from './beacon-sessions.ts'
import type { BeaconContact } from './beacon-sessions.ts'
import { asError } from './failures.ts'
import { PeerLifecycle } from './lifecycle.ts'
import { createPeerNode } from './peer-node.ts'
import type { PharosPeerInit, PharosPeerNode } from './peer-node.ts'
import { walkLog } from './log-verify.ts'
import { report } from './progress.ts'
import type { FetchLogOptions, FetchPostOptions, PublishPostOptions } from './progress.ts'
import type { LogSource } from './log-verify.ts'
import type { LogReceipt, PinReceipt } from './receipts.ts'
import { serveSync } from './sync-responder.ts'
import { SyncClient } from '../../net/src/clients/sync-client.ts'
import type { AbortOptions, Libp2p, Logger, PeerId } from '@libp2p/interface'

export type { AttachmentInput, AttachmentLink } from './post.ts'

export type { PharosPeerInit, PharosPeerNode, PharosPeerServices } from './peer-node.ts'

export type { LogReceiptOptions, PinReceiptOptions, PostInput, PublishedEntry, WaitUntilHeldOptions } from './publisher.ts'
export type { Post } from './fetcher.ts'
export type { KeyDeposit } from './content-keys.ts'

/** What `sync` did. */
export interface SyncReport {
  /** Entries fetched and verified, over all authors. */
  fetched: number
  /** Authors whose held head moved. */
  updated: string[]
  /** Authors whose sync failed, and why; the others went on. */
  failed: Array<{ author: string, error: Error }>
}

export class PharosPeer {
  /** The peer's ID; its log's author. */
  readonly peerId: PeerId
  /** The libp2p node (overlay as `services.overlay`). */
  readonly libp2p: PharosPeerNode
  /** Helia on the same node, Bitswap only. */
  readonly helia: Helia & { libp2p: Libp2p }

  private readonly self: string
  private readonly signer: Ed25519Signer
  private readonly network: string
  private readonly timeouts: PeerTimeouts
  private readonly log: Logger
  private readonly store: LocalLog
  /** Entries the overlay's content validator checked, for the delivery that follows (gossip-validators.ts). */
  private readonly accepted: AcceptedPayloads<EntryBlock>
  private readonly fs: UnixFS
  private readonly syncClient: SyncClient
  private readonly followed = new Set<string>()
  private readonly entryListeners = new Set<(block: EntryBlock) => void>()
  private readonly cleanups: Array<() => void> = []
  private readonly lifecycle = new PeerLifecycle()
  private readonly sessions: BeaconSessions
  private readonly publisher: Publisher
  private readonly fetcher: Fetcher
  private readonly keys: ContentKeys
  /** Authors to ask the `sync` topic about at the next HEAD request, and when that goes out. */
  private readonly headAsks = new Set<string>()
  private headAskTimer: NodeJS.Timeout | undefined
  private lastHeadAskAt = -Infinity
  /** Askers of HEAD requests this peer answered, and when (bounded, oldest forgotten first). */
  private readonly headAnswers = new Map<string, number>()
  /** The head being fetched per author after an announcement, so several seeders' answers fetch it once. */
  private readonly fetchingHeads = new Map<string, { cid: CID, seq: number }>()

  /** Use `createPharosPeer`. */
  constructor (init: PharosPeerInit, libp2p: PharosPeerNode, helia: Helia & { libp2p: Libp2p }, beacons: BeaconContact[], accepted: AcceptedPayloads<EntryBlock>) {
    this.libp2p = libp2p
    this.accepted = accepted
    this.helia = helia
    this.peerId = libp2p.peerId
    this.self = this.peerId.toString()
    this.signer = signerFor(init.privateKey)
    this.network = init.network ?? DEFAULT_NETWORK
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...init.timeouts }
    this.log = (init.logger ?? defaultLogger()).forComponent('pharos:peer')
    this.store = new LocalLog(helia.blockstore)
    this.fs = unixfs(helia)
    this.syncClient = new SyncClient(libp2p, this.network, this.timeouts.requestMs)
    const beaconConnections = Math.max(1, Math.min(init.beaconConnections ?? beacons.length, beacons.length))
    const sessions = this.sessions = new BeaconSessions({ libp2p, overlay: libp2p.services.overlay, beacons, beaconConnections, timeouts: this.timeouts, run: this.lifecycle, log: this.log })
    const { self, signer, network, store, fs, syncClient, log } = this
    this.publisher = new Publisher({ self, signer, network, store, fs, blockstore: helia.blockstore, overlay: libp2p.services.overlay, sessions, syncClient, run: this.lifecycle, log })
    this.fetcher = new Fetcher({ blockstore: helia.blockstore, fs, timeouts: this.timeouts, maxAttachmentBytes: init.maxAttachmentBytes ?? DEFAULT_MAX_ATTACHMENT_BYTES, run: this.lifecycle })
    this.keys = new ContentKeys({ signer, keyClient: new KeyExchangeClient(libp2p, network, this.timeouts.requestMs), sessions })
  }

  private get overlay (): OverlayDriver {
    return this.libp2p.services.overlay
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /**
   * Starts the node, serves the sync protocol, dials the bootstrap beacons, joins the overlay
   * topics through them and waits (at most `timeouts.joinMs`) until the content topic has an
   * active neighbour; then asks for its own head, so a new entry continues its log, and
   * syncs the authors it follows. Throws OverlayRefusedError if a beacon refuses it (e.g.
   * `not-registered`), NoBeaconError if none can be dialled in three passes over the list,
   * JoinTimeoutError.
   */
  async start (options: AbortOptions = {}): Promise<void> {
    if (this.lifecycle.status !== 'stopped') return
    this.lifecycle.status = 'starting'
    this.lifecycle.renew()
    try {
      await this.libp2p.start()
      await this.helia.start()
      await serveSync(this.libp2p, this.network, this.store, (from, known) => { this.onKnownHeads(from, known) }, { timeoutMs: this.timeouts.requestMs, logger: this.log })
      this.cleanups.push(this.overlay.onDeliver((delivery) => { this.onDelivery(delivery) }))
      this.lifecycle.status = 'started'
      if (!this.sessions.hasBeacons()) {
        this.publisher.settleOwnHeadLocally()
        return
      }
      const connected = await this.sessions.dialAtStart(options)
      await this.sessions.joinOverlay(connected, options)
      await this.publisher.refreshOwnHead(options).catch((err: unknown) => { this.log('own head not learned at start (publish asks again) - %e', err) })
      await this.sync(options)
      this.cleanups.push(this.sessions.watch(() => {
        void this.sync({ signal: this.lifecycle.signal }).catch((err: unknown) => { this.log('sync on reconnect failed - %e', err) })
      }))
    } catch (err) {
      this.lifecycle.status = 'started'
      await this.stop()
      throw err
    }
  }

  /** Stops background work, Helia and the node. */
  async stop (): Promise<void> {
    if (this.lifecycle.status !== 'started') return
    this.lifecycle.status = 'stopping'
    this.lifecycle.end()
    clearTimeout(this.headAskTimer)
    this.headAskTimer = undefined
    this.headAsks.clear()
    this.accepted.clear()
    for (const cleanup of this.cleanups.splice(0)) cleanup()
    await this.libp2p.unhandle(syncProtocolId(this.network)).catch(() => {})
    await this.helia.stop().catch((err: unknown) => { this.log('helia stop failed - %e', err) })
    await this.libp2p.stop()
    this.lifecycle.status = 'stopped'
  }

  // ---- own log ------------------------------------------------------------------------------

  /** This peer's current head, if it has published anything (or learned its head from a beacon). */
  head (author: string = this.peerId.toString()): { cid: CID, seq: number } | undefined {
    const head = this.store.head(author)
    return head === undefined ? undefined : { cid: head.cid, seq: head.entry.seq }
  }

  /**
   * Publishes a post: each attachment becomes a UnixFS file (CIDv1, raw leaves) in the local
   * blockstore, the body a dag-cbor block linking them, and the next entry of the peer's log
   * (`append-feed-post`, `params.content` = the body) is signed, kept, and broadcast on the
   * content topic under its CID. Throws OwnHeadUnknownError if no beacon could say where the
   * log stands (publishing then could fork it).
   */
  async publishPost (post: PostInput, options: PublishPostOptions = {}): Promise<PublishedEntry> {
    this.lifecycle.requireStarted('publishPost')
    return await this.publisher.publishPost(post, options)
  }

  /**
   * Resolves once a beacon reports every CID in `state` (`pinned` by default). Polls the
   * beacon's `status` meanwhile, and every few seconds re-announces the peer's head with a
   * `heads` request carrying it as `known`, so a beacon that missed the gossip fetches it.
   * On timeout, RequestTimeoutError says what the last status was. With `receipts: true`,
   * resolves with a verified pin receipt per CID (see `receipt`).
   */
  async waitUntilHeld (cids: readonly CID[], options: WaitUntilHeldOptions & { receipts: true }): Promise<PinReceipt[]>
  async waitUntilHeld (cids: readonly CID[], options?: WaitUntilHeldOptions): Promise<void>
  async waitUntilHeld (cids: readonly CID[], options: WaitUntilHeldOptions = {}): Promise<PinReceipt[] | void> {
    this.lifecycle.requireStarted('waitUntilHeld')
    return await this.publisher.waitUntilHeld(cids, options)
  }

  /**
   * A signed receipt from a beacon (docs/logs.md "Receipts"), verified before it is returned:
   * for an author's log (a peer ID: up to `options.head`, else the beacon's best head) or for
   * a pinned DAG (a CID). The receipt must be signed by the beacon that answered (Noise
   * authenticated it), be of the kind asked for, and be about exactly that author, head or
   * root; otherwise ReceiptVerificationError, at once. A beacon that holds it only in part
   * says so and the next beacon is asked; NotHeldError if none gives one.
   */
  async receipt (author: string, options?: LogReceiptOptions): Promise<LogReceipt>
  async receipt (cid: CID, options?: PinReceiptOptions): Promise<PinReceipt>
  async receipt (subject: string | CID, options: LogReceiptOptions & PinReceiptOptions = {}): Promise<LogReceipt | PinReceipt> {
    this.lifecycle.requireStarted('receipt')
    return await this.publisher.receipt(subject, options)
  }

  // ---- following and fetching ---------------------------------------------------------------

  /** Follows authors: `sync` fetches their logs, and their entries are taken from gossip. */
  follow (authors: readonly string[]): void {
    const added = authors.filter((author) => !this.followed.has(author))
    for (const author of authors) this.followed.add(author)
    if (this.lifecycle.started && added.length > 0) this.askHeads(added)
  }

  unfollow (authors: readonly string[]): void {
    for (const author of authors) this.followed.delete(author)
  }

  /** Calls `listener` with each new entry of a followed author (from sync or gossip), oldest first. */
  onEntry (listener: (block: EntryBlock) => void): () => void {
    this.entryListeners.add(listener)
    return () => { this.entryListeners.delete(listener) }
  }

  private emit (blocks: readonly EntryBlock[]): void {
    for (const block of blocks) {
      for (const listener of this.entryListeners) {
        try {
          listener(block)
        } catch (err) {
          this.log.error('entry listener failed - %e', err)
        }
      }
    }
  }

  /** Where a walk gets entries: the local log, then beacons (`preferred` first). */
  private logSource (preferred?: PeerId): LogSource {
    return {
      local: async (cid, options) => await this.store.get(cid, options),
      remote: async (from, options) => {
        const beacons = await this.sessions.connected(options)
        const askers = preferred === undefined ? beacons : [preferred, ...beacons.filter((beacon) => !beacon.equals(preferred))]
        let last: unknown
        let answered = false
        for (const peer of askers) {
          try {
            const blocks = await this.syncClient.entries(peer, from, SYNC_LIMITS.entries, options)
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

  /** The best head each asked beacon reports per author (beacons that fail are skipped). */
  private async beaconHeads (authors: readonly string[], options: AbortOptions): Promise<Map<string, { head: HeadInfo, from: PeerId }>> {
    const best = new Map<string, { head: HeadInfo, from: PeerId }>()
    await this.sessions.withBeacon('heads', options, async (beacon) => {
      for (const head of await this.syncClient.heads(beacon, authors, this.store.knownHeads(authors), options)) {
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
  async sync (options: AbortOptions = {}): Promise<SyncReport> {
    this.lifecycle.requireStarted('sync')
    const report: SyncReport = { fetched: 0, updated: [], failed: [] }
    const authors = [...this.followed]
    if (authors.length === 0) return report
    // The overlay's seeders (peers that hold these logs; beacons too) answer the topic by
    // announcing better heads to us, which are then fetched like any announcement.
    this.askHeads(authors)
    if (!this.sessions.hasBeacons()) return report
    const heads = await this.beaconHeads(authors, options)
    for (const [author, { head, from }] of heads) {
      const local = this.store.head(author)
      if (local !== undefined && compareHeads(head, { seq: local.entry.seq, cid: local.cid }) >= 0) continue
      try {
        const fetched = await this.fetchMissing(author, { cid: head.cid, seq: head.seq }, this.logSource(from), options.signal)
        report.fetched += fetched.length
        if (fetched.length > 0) report.updated.push(author)
      } catch (err) {
        if (options.signal?.aborted === true) throw err
        this.log('sync of %s failed - %e', author, err)
        report.failed.push({ author, error: asError(err) })
      }
    }
    return report
  }

  /**
   * An author's whole log, from the best head (the best of what beacons report and what the
   * peer holds) down to genesis, every entry decoded and verified: signed by `author`, each
   * `prev` the CID of the entry below, each seq one more than the one below, genesis at seq 0.
   * Missing entries are fetched (and kept). Throws LogVerificationError naming the entry and
   * the reason, MissingEntryError if the chain cannot be completed, UnknownAuthorError if
   * nobody has a head for the author.
   */
  async fetchLog (author: string, options: FetchLogOptions = {}): Promise<EntryBlock[]> {
    this.lifecycle.requireStarted('fetchLog')
    let remote: { head: HeadInfo, from: PeerId } | undefined
    let headError: unknown
    if (this.sessions.hasBeacons()) {
      try {
        remote = (await this.beaconHeads([author], options)).get(author)
      } catch (err) {
        if (options.signal?.aborted === true) throw err
        headError = err
      }
    }
    const local = this.store.head(author)
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
    for (const block of fetched.toReversed()) await this.store.add(block, { signal: options.signal })
    return log
  }

  /**
   * A post's body and attachments, over Bitswap from whoever holds them (beacons serve
   * pinned content). Helia checks every block against its CID; this checks the body's shape
   * and that each attachment has the size the body says. Bounded by `timeouts.fetchPostMs`.
   */
  async fetchPost (entry: Entry | EntryBlock, options: FetchPostOptions = {}): Promise<Post> {
    this.lifecycle.requireStarted('fetchPost')
    return await this.fetcher.fetchPost(entry, options)
  }


  // ---- gossip and the other side of sync ----------------------------------------------------

  /**
   * An entry on the content topic from a followed author: kept if it continues what we hold.
   * A HEAD request on the sync topic: answered for the authors we hold.
   */
  private onDelivery (delivery: Delivery): void {
    if (delivery.topic === 'sync') {
      void this.answerHeadRequest(delivery.payload).catch((err: unknown) => { this.log('head request not answered - %e', err) })
      return
    }
    if (delivery.topic !== 'content') return
    // Taken at once, followed or not: what the validator kept is for this delivery only.
    const checked = this.accepted.take(delivery.messageId, delivery.payload)
    if (this.followed.size === 0) return
    void this.ingest(delivery.payload, checked).catch((err: unknown) => { this.log('gossiped entry dropped - %e', err) })
  }

  /**
   * Asks the `sync` topic for the heads of `authors` (docs/logs.md "HEAD requests"): a signed
   * request naming the head we hold of each, at most one every HEAD_REQUEST_INTERVAL_MS and
   * 32 authors each; the rest wait for the next. Seeders that hold better heads announce them
   * to us over the sync protocol, and `onKnownHeads` fetches them.
   */
  private askHeads (authors: readonly string[]): void {
    for (const author of authors) if (author !== this.self) this.headAsks.add(author)
    if (this.headAsks.size === 0 || this.headAskTimer !== undefined) return
    const wait = Math.max(0, this.lastHeadAskAt + HEAD_REQUEST_INTERVAL_MS - Date.now())
    this.headAskTimer = setTimeout(() => {
      this.headAskTimer = undefined
      void this.sendHeadRequest().catch((err: unknown) => { this.log('head request not sent - %e', err) })
    }, wait)
    this.headAskTimer.unref?.()
  }

  private async sendHeadRequest (): Promise<void> {
    if (!this.lifecycle.started) return
    if ((this.overlay.snapshot().sync?.active.length ?? 0) === 0) {
      // A broadcast with no neighbour goes nowhere (just after start the sync topic may still
      // be joining): ask once it has one.
      this.headAskTimer = setTimeout(() => {
        this.headAskTimer = undefined
        void this.sendHeadRequest().catch((err: unknown) => { this.log('head request not sent - %e', err) })
      }, HEAD_REQUEST_RETRY_MS)
      this.headAskTimer.unref?.()
      return
    }
    const wants: HeadWant[] = []
    for (const author of this.headAsks) {
      if (wants.length >= HEAD_REQUEST_LIMITS.authors) break
      this.headAsks.delete(author)
      if (!this.followed.has(author)) continue
      const held = this.store.head(author)
      wants.push(held === undefined ? { author } : { author, held: { cid: held.cid, seq: held.entry.seq } })
    }
    if (wants.length > 0) {
      this.lastHeadAskAt = Date.now()
      const payload = await signHeadRequest(wants, this.lastHeadAskAt, this.signer)
      const messageId = await messageIdOf('sync', payload)
      if (messageId !== undefined && this.lifecycle.started) this.overlay.broadcast('sync', messageId, payload)
    }
    if (this.headAsks.size > 0) this.askHeads([])
  }

  /**
   * A HEAD request from the topic: for the authors we hold a better head of than the asker,
   * announce those heads to it (a sync `heads` request carrying them as `known`). Only over a
   * connection we already hold to the asker (a broadcast never makes us dial), and to one
   * asker at most once every HEAD_ANSWER_INTERVAL_MS.
   */
  private async answerHeadRequest (payload: Uint8Array): Promise<void> {
    const opened = await openHeadRequest(payload, Date.now())
    if (!opened.ok || opened.value.asker === this.self) return
    const { asker, wants } = opened.value
    const held = new Map<string, { cid: CID, seq: number }>()
    for (const want of wants) {
      const head = this.store.head(want.author)
      if (head !== undefined) held.set(want.author, { cid: head.cid, seq: head.entry.seq })
    }
    const known = newerHeads(wants, held)
    if (known.length === 0) return
    const peer = peerIdFromString(asker)
    if (!this.libp2p.getConnections(peer).some((connection) => connection.status === 'open' && connection.limits === undefined)) return
    const now = Date.now()
    const last = this.headAnswers.get(asker)
    if (last !== undefined && now - last < HEAD_ANSWER_INTERVAL_MS) return
    this.headAnswers.delete(asker)
    this.headAnswers.set(asker, now)
    for (const oldest of this.headAnswers.keys()) {
      if (this.headAnswers.size <= HEAD_ANSWER_ASKERS_MAX) break
      this.headAnswers.delete(oldest)
    }
    await this.syncClient.announce(peer, known, { signal: this.lifecycle.signal })
  }

  /**
   * A gossiped entry: `checked` is what the overlay's validator verified of this payload (its
   * envelope and both signatures); only a delivery it kept nothing for is verified here.
   */
  private async ingest (payload: Uint8Array, checked: EntryBlock | undefined): Promise<void> {
    const block = checked ?? await this.openGossipedEntry(payload)
    if (block === undefined || !this.followed.has(block.entry.author)) return
    const { author, prev, seq } = block.entry
    const signal = AbortSignal.any([this.lifecycle.signal, AbortSignal.timeout(this.timeouts.requestMs * 4)])
    if (prev !== null && await this.store.get(prev, { signal }) === undefined) {
      await this.fetchMissing(author, { cid: prev, seq: seq - 1 }, this.logSource(), signal)
    }
    if (await this.store.add(block, { signal })) this.emit([block])
  }

  /** A gossiped envelope's entry, if it opens and verifies and its author is followed. */
  private async openGossipedEntry (payload: Uint8Array): Promise<EntryBlock | undefined> {
    const envelope = await openEnvelope(payload)
    if (!envelope.ok) return undefined
    const decoded = await decodeEntry(envelope.value.entry)
    if (!decoded.ok || !this.followed.has(decoded.value.entry.author)) return undefined
    return (await verifyEntry(decoded.value.entry)).ok ? decoded.value : undefined
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
      if (await this.store.add(block, signal === undefined ? {} : { signal })) added.push(block)
    }
    this.emit(added)
    return verified
  }

  /**
   * A peer told us heads it holds (sync on connect, or a seeder answering our HEAD request):
   * fetch from it what we lack of the authors we follow. A head already being fetched, or a
   * worse one, is not fetched again: several seeders answer the same request.
   */
  private onKnownHeads (from: PeerId, known: readonly KnownHead[]): void {
    for (const head of known) {
      if (!this.followed.has(head.author)) continue
      const local = this.store.head(head.author)
      if (local !== undefined && compareHeads(head, { seq: local.entry.seq, cid: local.cid }) >= 0) continue
      const fetching = this.fetchingHeads.get(head.author)
      if (fetching !== undefined && compareHeads(head, fetching) >= 0) continue
      this.fetchingHeads.set(head.author, { cid: head.cid, seq: head.seq })
      const signal = AbortSignal.any([this.lifecycle.signal, AbortSignal.timeout(this.timeouts.requestMs * 4)])
      void this.fetchMissing(head.author, { cid: head.cid, seq: head.seq }, this.logSource(from), signal)
        .catch((err: unknown) => { this.log('fetching announced head of %s from %p failed - %e', head.author, from, err) })
        .finally(() => { if (this.fetchingHeads.get(head.author)?.cid.equals(head.cid) === true) this.fetchingHeads.delete(head.author) })
    }
  }

  // ---- key exchange and storage audits ------------------------------------------------------

  /**
   * Deposits a content key with a beacon, under an allow-list this peer signs (only `allow`
   * may get it). Resolves with the key hash once the beacon confirmed it.
   */
  async depositKey (deposit: KeyDeposit, options: AbortOptions = {}): Promise<{ keyHash: Uint8Array }> {
    this.lifecycle.requireStarted('depositKey')
    return await this.keys.deposit(deposit, options)
  }

  /** The key whose SHA-256 is `keyHash`, from a beacon; KeyDeniedError (with the beacon's reason) if this peer may not have it. */
  async getKey (keyHash: Uint8Array, options: AbortOptions = {}): Promise<Uint8Array> {
    this.lifecycle.requireStarted('getKey')
    return await this.keys.get(keyHash, options)
  }

  /**
   * Challenges a beacon worker to prove it holds `cids` (1..64 blocks this peer also holds,
   * e.g. its own posts): a fresh random nonce goes out, and each answer — SHA-256 of the nonce
   * and the block — is checked against this peer's own copy (docs/audits.md). Resolves with
   * the verdict (`passed`, `failed`, `unverifiable` when this peer holds none of them, or
   * `refused` when the worker is rate-limiting) and the outcome per CID. Throws
   * MalformedResponseError for an answer that is not one.
   */
  async challenge (worker: PeerId | string, cids: readonly CID[], options: AbortOptions = {}): Promise<ChallengeResult> {
    this.lifecycle.requireStarted('challenge')
    return await challengeBeacon({ libp2p: this.libp2p, blockstore: this.helia.blockstore, network: this.network, requestMs: this.timeouts.requestMs }, worker, cids, options)
  }
}

/**
 * Builds a peer (not started). Throws InvalidBootstrapAddressError for a bootstrap address
 * without `/p2p/<peer id>`.
 */
export async function createPharosPeer (init: PharosPeerInit): Promise<PharosPeer> {
  const beacons = init.bootstrap.map(beaconOf)
  const accepted = new AcceptedPayloads<EntryBlock>(ACCEPTED_ENTRIES_MAX)
  const { libp2p, helia } = await createPeerNode(init, init.network ?? DEFAULT_NETWORK, init.logger ?? defaultLogger(), beacons, accepted)
  return new PharosPeer(init, libp2p, helia, beacons, accepted)
}
