/**
 * Plumtree dissemination (Leitão, Pereira, Rodrigues: "Epidemic Broadcast Trees", SRDS 2007),
 * one instance per topic, IO-free. Section numbers in the comments refer to the paper.
 *
 * Payloads travel along spanning trees of *eager* links, one tree per origin (origin-trees.ts);
 * every other active link is *lazy* for that origin and carries only message IDs (IHAVE),
 * batched every {@link PlumtreeConfig.ihaveIntervalMs} (seed). A duplicate makes its link lazy in
 * the duplicate's origin's tree (PRUNE, batched like IHAVE); an announced message that does not
 * arrive in time is asked for (GRAFT), which makes the link eager in its origin's tree. The tree
 * is optimised by swapping an eager link for a lazy one whose path is
 * {@link PlumtreeConfig.optimizationThreshold} hops shorter, for several messages in a row (§3.8).
 *
 * Validate, then forward. A first receipt is handed to the application (`validate`) and held; it
 * is forwarded, announced and cached for GRAFTs only once the application accepts it (the
 * `validated` event). A rejected message goes nowhere, and the neighbour that sent it is reported
 * (`rejected`).
 *
 * The neighbour set always stays HyParView's active view: the topic calls
 * {@link Plumtree.neighborUp} and {@link Plumtree.neighborDown}.
 */
import { setNewest } from '../bounded-map.ts'
import { PayloadTooLargeError } from './errors.ts'
import { assertNever, SHARED_TREE } from './messages.ts'
import type { Action, GossipMessage, IHaveEntry, MessageId, PeerKey, PlumtreeMessage, Verdict } from './messages.ts'
import { LATENESS_BUCKET_MS, LATENESS_BUCKETS } from './constants.ts'
import { LatenessWindow } from './lateness-window.ts'
import { MessageStore } from './message-store.ts'
import { OriginTrees } from './origin-trees.ts'
import type { Announcement, OriginTree } from './origin-trees.ts'
import type { PlumtreeConfig } from './plumtree-config.ts'
import { RejectedCopies } from './rejected-copies.ts'

export { DEFAULT_PLUMTREE_CONFIG, resolvePlumtreeConfig } from './plumtree-config.ts'
export type { PlumtreeConfig } from './plumtree-config.ts'

/** A message announced to us that we lack. */
interface Missing {
  /** When its first announcement came (ms). */
  readonly since: number
  /** Announcers not asked yet, in arrival order. */
  announcers: Announcement[]
  /** Every announcer, as they came (§3.8 compares their hop counts with the payload's). */
  readonly announced: Announcement[]
  /** The announcer last asked with a GRAFT. */
  asked: PeerKey | undefined
}

/** A first receipt the application is validating. */
interface Pending {
  readonly from: PeerKey
  /** `from` was an active neighbour when it arrived. */
  readonly neighbor: boolean
  readonly origin: PeerKey
  readonly round: number
  readonly payload: Uint8Array
  /** IHAVEs that arrived before the payload (§3.8 looks at them once it is accepted). */
  readonly announcers: readonly Announcement[] | undefined
  /** It came from the peer we asked for it with a GRAFT: a repair, not a sign of the tree's shape. */
  readonly grafted: boolean
  /** It, or a copy upstream of it, came by GRAFT: forwarded marked so, its lateness is no sample of queueing. */
  readonly repaired: boolean
  /** Other neighbours that sent the same ID meanwhile: asked for their copy if this one is rejected. */
  readonly alsoFrom: PeerKey[]
}

/** Read-only view of the dissemination state, for an admin API. */
export interface PlumtreeSnapshot {
  /** Neighbours eager in the shared tree: what a new origin's tree starts pushing to. */
  readonly eager: readonly PeerKey[]
  /** Active neighbours lazy in the shared tree. */
  readonly lazy: readonly PeerKey[]
  /** Origins whose trees are kept. */
  readonly origins: number
  readonly cachedMessages: number
  /** Bytes of the cached payloads. */
  readonly cachedBytes: number
  readonly missingMessages: number
  /** First receipts the application is validating. */
  readonly pendingMessages: number
}

/** Counters kept by the dissemination layer (message counts are kept by the topic). */
export interface PlumtreeStats {
  /** First receipts handed to the application to validate. */
  validations: number
  /** Broadcasts the application accepted, delivered and forwarded. */
  delivered: number
  /** First receipts the application rejected (each reported as `rejected`). */
  rejected: number
  /** Copies identical to one rejected, rejected again unjudged (each reported as `rejected`). */
  rejectedCopies: number
  /** First receipts the application ignored (timeouts, overload): not forwarded, nobody blamed. */
  validationsIgnored: number
  /** First receipts dropped unjudged because maxPendingMessages were being validated. */
  pendingOverflow: number
  /** Payloads received again. */
  duplicates: number
  /** Duplicates from a tree parent that did not prune it (hysteresis: it delivered first last time). */
  prunesDeferred: number
  /** GRAFTs that asked for a missing payload. */
  graftRequests: number
  /** GRAFTs for a payload no longer cached (or never accepted). */
  graftMisses: number
  /** Missing messages given up after every announcer was asked. */
  graftsAbandoned: number
  /** Tree optimisations: an eager link swapped for a shorter lazy one (§3.8). */
  treeSwaps: number
  /** IHAVE entries dropped because too many messages were missing. */
  missingOverflow: number
  /** Control messages from peers outside the active view, ignored. */
  ignored: number
  /** Cached payloads dropped before their age because the cache held messageCacheMaxBytes. */
  cacheEvictions: number
  /** Neighbours made lazy in every tree because the driver could not keep up sending to them. */
  congestions: number
  /** Origin trees dropped because maxOriginTrees were kept. */
  treeEvictions: number
}

export class Plumtree {
  readonly #self: PeerKey
  readonly #config: Readonly<PlumtreeConfig>
  /** The active view (HyParView's), as Plumtree has been told of it. */
  readonly #neighbors = new Set<PeerKey>()
  readonly #trees: OriginTrees
  /** IDs seen (a held, pending one too) and accepted payloads. */
  readonly #store: MessageStore
  /** When the earliest pending `cacheExpiry` timer fires (undefined: none is pending). */
  #expiryDue: number | undefined
  readonly #pending = new Map<MessageId, Pending>()
  /** Payloads rejected under IDs that are forgotten again: the same bytes are not judged twice. */
  readonly #rejected: RejectedCopies
  readonly #missing = new Map<MessageId, Missing>()
  readonly #lazyQueue = new Map<PeerKey, IHaveEntry[]>()
  /** How late eager copies have come after their first IHAVE, recently (the GRAFT timeout adapts to it). */
  readonly #lateness = new LatenessWindow(LATENESS_BUCKET_MS, LATENESS_BUCKETS)
  /** Messages fetched by GRAFT, with when their first IHAVE came: a later duplicate shows how late the eager copy was. */
  readonly #pulled = new Map<MessageId, number>()
  /** Origins to PRUNE per neighbour at the next flush: at most one PRUNE per neighbour per interval. */
  readonly #pruneQueue = new Map<PeerKey, Set<PeerKey>>()
  #flushArmed = false
  readonly #stats: Omit<PlumtreeStats, 'treeEvictions' | 'cacheEvictions'> = {
    validations: 0,
    delivered: 0,
    rejected: 0,
    rejectedCopies: 0,
    validationsIgnored: 0,
    pendingOverflow: 0,
    duplicates: 0,
    prunesDeferred: 0,
    graftRequests: 0,
    graftMisses: 0,
    graftsAbandoned: 0,
    treeSwaps: 0,
    missingOverflow: 0,
    ignored: 0,
    congestions: 0
  }

  constructor(self: PeerKey, config: Readonly<PlumtreeConfig>) {
    this.#self = self
    this.#config = config
    this.#trees = new OriginTrees(this.#neighbors, { max: config.maxOriginTrees, idleMs: config.originTreeIdleMs, sharedPruneDuplicates: config.sharedPruneDuplicates })
    this.#store = new MessageStore(config)
    this.#rejected = new RejectedCopies(config.rejectedCacheMaxEntries, config.rejectedCacheMaxBytes)
  }

  /** Counters since creation (a copy). */
  get stats(): PlumtreeStats {
    return { ...this.#stats, treeEvictions: this.#trees.evictions, cacheEvictions: this.#store.evictions }
  }

  /** A new active neighbour starts eager in every tree (§3.4): each origin's first duplicate through it prunes it there. */
  neighborUp(peer: PeerKey): void {
    this.#neighbors.add(peer)
    this.#trees.neighborUp(peer)
  }

  /** §3.7: forget a departed neighbour, its queued announcements and prunes, and its announcements to us. */
  neighborDown(peer: PeerKey): void {
    this.#neighbors.delete(peer)
    this.#trees.neighborDown(peer)
    this.#lazyQueue.delete(peer)
    this.#pruneQueue.delete(peer)
    for (const missing of this.#missing.values()) {
      if (missing.announcers.some((a) => a.peer === peer)) missing.announcers = missing.announcers.filter((a) => a.peer !== peer)
    }
  }

  /**
   * §3.3 broadcast, as the origin of `id`: eager push along our own tree, lazy push to the rest.
   * Our own broadcasts are not delivered back to us. Returns false (and does nothing) if the ID
   * was already seen; a copy of it we were still validating is superseded (we vouch for ours).
   */
  broadcast(id: MessageId, payload: Uint8Array, now: number, out: Action[]): boolean {
    if (payload.length > this.#config.maxPayloadBytes) throw new PayloadTooLargeError(payload.length, this.#config.maxPayloadBytes)
    this.#store.expire(now)
    if (!this.#pending.delete(id) && this.#store.hasSeen(id)) return false
    this.#rejected.forget(id)
    this.#store.see(id, now)
    this.#store.cache(id, 0, this.#self, payload, now)
    this.#push(this.#trees.get(this.#self, now, id), id, 1, this.#self, payload, undefined, false, out)
    this.#armExpiry(now, out)
    return true
  }

  /** The application's verdict on a message it was asked to validate. */
  validated(id: MessageId, verdict: Verdict, now: number, out: Action[]): void {
    const held = this.#pending.get(id)
    if (held === undefined) return
    this.#pending.delete(id)
    switch (verdict) {
      case 'accept': this.#accept(id, held, now, out); return
      case 'reject': this.#reject(id, held, now, out); return
      case 'ignore': this.#stats.validationsIgnored++; return
      default: assertNever(verdict)
    }
  }

  /** The `cacheExpiry` timer: drop what outlived its age bound, and arm the timer for the next. */
  onCacheExpiry(now: number, out: Action[]): void {
    if (this.#expiryDue !== undefined && now >= this.#expiryDue) this.#expiryDue = undefined
    this.#store.expire(now)
    this.#armExpiry(now, out)
  }

  /**
   * The driver cannot keep up sending to `peer`: no more eager pushes to it, in any tree. Lazy
   * push still announces every message, so nothing is lost to it; once it reads again its GRAFTs
   * fetch what it missed, and after repairsBeforeJoin of an origin's messages in a row it joins
   * that origin's tree again (§3.6).
   */
  congested(peer: PeerKey): void {
    if (this.#trees.demote(peer)) this.#stats.congestions++
  }

  /** `neighbor` is whether `from` is in the active view (the topic asks HyParView). */
  handleMessage(from: PeerKey, message: PlumtreeMessage, neighbor: boolean, now: number, out: Action[]): void {
    this.#store.expire(now)
    if (message.type === 'gossip') {
      this.#onGossip(from, message, neighbor, now, out)
      return
    }
    if (!neighbor) {
      // Control messages only make sense on an active link; one may still be in flight after
      // the link was dropped.
      this.#stats.ignored++
      return
    }
    switch (message.type) {
      case 'ihave': this.#onIHave(from, message.entries, now, out); return
      case 'graft': this.#onGraft(from, message.id, message.origin, now, out); return
      case 'prune': this.#onPrune(from, message.origins, now); return
      default: assertNever(message)
    }
  }

  /**
   * The batch timer: one PRUNE per neighbour with every origin pruned since the last flush, then
   * every queued announcement, each split at its bound.
   */
  onIHaveFlush(out: Action[]): void {
    this.#flushArmed = false
    for (const [peer, origins] of this.#pruneQueue) {
      for (const chunk of chunks([...origins], this.#config.maxPruneOrigins)) {
        out.push({ type: 'send', to: peer, message: { type: 'prune', origins: chunk } })
      }
    }
    this.#pruneQueue.clear()
    for (const [peer, entries] of this.#lazyQueue) {
      for (const chunk of chunks(entries, this.#config.maxIHaveBatch)) {
        out.push({ type: 'send', to: peer, message: { type: 'ihave', entries: chunk } })
      }
    }
    this.#lazyQueue.clear()
  }

  /**
   * §3.6: an announced message has not arrived. GRAFT the next announcer still in the active view
   * and wait a shorter time before asking the one after. The link becomes eager (in the tree of
   * the message's origin, which the payload names) when the payload comes.
   */
  onGraftTimer(id: MessageId, out: Action[]): void {
    const missing = this.#missing.get(id)
    if (missing === undefined) return
    let next = missing.announcers.shift()
    while (next !== undefined && !this.#neighbors.has(next.peer)) next = missing.announcers.shift()
    if (next === undefined) {
      this.#missing.delete(id)
      this.#stats.graftsAbandoned++
      return
    }
    missing.asked = next.peer
    this.#stats.graftRequests++
    out.push({ type: 'send', to: next.peer, message: { type: 'graft', id, origin: null } })
    out.push({ type: 'timer', after: this.#config.graftRetryTimeoutMs, timer: { type: 'graft', messageId: id } })
  }

  snapshot(): PlumtreeSnapshot {
    const eager = [...this.#neighbors].filter((peer) => this.#trees.shared.has(peer))
    const lazy = [...this.#neighbors].filter((peer) => !this.#trees.shared.has(peer))
    return {
      eager,
      lazy,
      origins: this.#trees.size,
      cachedMessages: this.#store.cachedMessages,
      cachedBytes: this.#store.cachedBytes,
      missingMessages: this.#missing.size,
      pendingMessages: this.#pending.size
    }
  }

  // ---- message handlers ----------------------------------------------------------------------

  /**
   * §3.3: a first receipt is held for the application to validate; a duplicate closes a cycle in
   * its origin's tree, so its link goes lazy there. A payload from a peer outside the active view
   * (sent just before the link was dropped) is still validated and delivered, but changes no tree.
   */
  #onGossip(from: PeerKey, message: GossipMessage, neighbor: boolean, now: number, out: Action[]): void {
    const { id, origin, payload } = message
    const held = this.#pending.get(id)
    if (held !== undefined || this.#store.hasSeen(id)) {
      this.#stats.duplicates++
      // A copy of a message we fetched by GRAFT: the eager one was late, not lost (unless it was
      // late because a node upstream waited for a repair too: that copy says so, and is no sample).
      const pulledSince = this.#pulled.get(id)
      if (pulledSince !== undefined && message.repaired !== true) {
        this.#pulled.delete(id)
        this.#lateness.record(now, now - pulledSince)
      }
      if (held !== undefined && neighbor && from !== held.from && !held.alsoFrom.includes(from) &&
        held.alsoFrom.length < this.#config.maxAnnouncersPerMessage) held.alsoFrom.push(from)
      if (neighbor) this.#onDuplicate(from, id, origin, now, out)
      return
    }
    if (this.#rejected.matches(id, payload)) {
      // The same bytes as a copy already rejected: the verdict would be the same. The ID stays
      // unseen and missing, so a GRAFT timer that asked `from` for it moves on to the next announcer.
      this.#stats.rejectedCopies++
      out.push({ type: 'rejected', messageId: id, from })
      return
    }
    const round = Math.min(message.round, this.#config.maxRound)
    const missing = this.#missing.get(id)
    this.#missing.delete(id)
    this.#store.see(id, now)
    if (this.#pending.size >= this.#config.maxPendingMessages) {
      // Unjudged, so not forwarded; the ID stays seen, as an ignored one does.
      this.#stats.pendingOverflow++
      return
    }
    const grafted = missing?.asked === from
    const repaired = grafted || message.repaired === true
    if (missing !== undefined && !repaired) this.#lateness.record(now, now - missing.since)
    if (missing !== undefined && grafted) setNewest(this.#pulled, id, missing.since, this.#config.maxMissingMessages)
    // The tree is kept from the first copy on, so duplicates meanwhile count in it.
    this.#trees.get(origin, now, id)
    this.#pending.set(id, { from, neighbor, origin, round, payload, announcers: missing?.announced, grafted, repaired, alsoFrom: [] })
    this.#stats.validations++
    out.push({ type: 'validate', messageId: id, payload, from, origin, round })
  }

  /**
   * A duplicate from neighbour `from` in `origin`'s tree: the link is redundant there, so PRUNE
   * it (at the next flush), unless `from` delivered that origin's last message first. Such a
   * parent is given one duplicate's grace (prune hysteresis): on a real network two near-equal
   * paths take turns, and pruning each in turn would cut the tree twice. A duplicate of the
   * message the tree was made for shows a cycle in the shared tree it was copied from: after
   * sharedPruneDuplicates of those from one link in a row, the link leaves that one too (the
   * paper's rule for first messages, with hysteresis for a link that has brought one first: a
   * single duplicate is also what a neighbour that fetched a late copy by GRAFT sends back).
   */
  #onDuplicate(from: PeerKey, id: MessageId, origin: PeerKey, now: number, out: Action[]): void {
    const tree = this.#trees.peek(origin, now)
    if (tree !== undefined && tree.parents.has(from)) {
      tree.parents.delete(from)
      this.#stats.prunesDeferred++
      return
    }
    if (tree !== undefined && tree.first === id && this.#trees.sharedDuplicate(from)) {
      this.#queuePrune(from, SHARED_TREE, out)
    }
    if (tree !== undefined) this.#trees.unlink(tree, from)
    this.#queuePrune(from, origin, out)
  }

  /** The application accepted a held message: deliver it, forward it and announce it (§3.3). */
  #accept(id: MessageId, held: Pending, now: number, out: Action[]): void {
    const { from, origin, round, payload } = held
    this.#store.cache(id, round, origin, payload, now)
    this.#stats.delivered++
    out.push({ type: 'deliver', messageId: id, payload, from, round })
    const tree = this.#trees.get(origin, now)
    const neighbor = held.neighbor && this.#neighbors.has(from)
    if (neighbor) this.#attach(tree, id, origin, from, held.grafted, out)
    this.#push(tree, id, round + 1, origin, payload, from, held.repaired, out)
    if (neighbor) this.#considerShorterPath(tree, tree.first === id ? SHARED_TREE : origin, from, round, held.announcers, out)
    this.#armExpiry(now, out)
  }

  /**
   * The tree links a first receipt shows. From the eager path, `from` is upstream for this origin
   * (and is not pushed to). A copy we asked for (GRAFT) is a repair: one loss says nothing about
   * where an origin's tree runs, and joining `from` at once (as the paper does) closes a cycle
   * the origin's next message prunes again, a duplicate or two per loss. Only when its messages
   * came by GRAFT repairsBeforeJoin times in a row does the tree join `from` (GRAFT naming the
   * origin): its path here is gone (a parent left, or two prunes cut it).
   *
   * For the message a tree was made for, the link is in the shared tree too, by the paper's rule
   * (§3.6: a grafted link becomes eager at once). The shared tree is symmetric: our copy goes on
   * to every shared link but the one it came by, our old parent included, whose duplicate then
   * prunes that link; without joining `from` the shared tree would be cut here.
   */
  #attach(tree: OriginTree, id: MessageId, origin: PeerKey, from: PeerKey, grafted: boolean, out: Action[]): void {
    if (tree.first === id) this.#attachShared(from, grafted, out)
    if (!grafted) {
      tree.repairs = 0
      this.#trees.setParent(tree, from)
      return
    }
    tree.push.delete(from)
    if (++tree.repairs < this.#config.repairsBeforeJoin) return
    tree.repairs = 0
    this.#trees.setParent(tree, from)
    out.push({ type: 'send', to: from, message: { type: 'graft', id: null, origin } })
  }

  /**
   * The shared tree's part of a first message's receipt, by the paper's rule (§3.6): the link it
   * came by is in the shared tree, a grafted one included (GRAFT naming the shared tree, so the
   * other end knows). The shared tree is symmetric: our copy goes on to every shared link but
   * the one it came by, our old parent included, and its duplicate there prunes that link;
   * without joining `from` the shared tree would be cut here.
   */
  #attachShared(from: PeerKey, grafted: boolean, out: Action[]): void {
    const shared = this.#trees.shared.has(from)
    this.#trees.shareLink(from)
    if (grafted && !shared) out.push({ type: 'send', to: from, message: { type: 'graft', id: null, origin: SHARED_TREE } })
  }

  /**
   * The application rejected a held message: it goes nowhere and is not cached, and the sender is
   * reported. Its ID is forgotten, so a valid copy under it can still come: neighbours that sent
   * the same ID meanwhile are asked for theirs (GRAFT), as announcers would be. Its bytes are
   * remembered, so an identical copy is rejected without being judged again.
   */
  #reject(id: MessageId, held: Pending, now: number, out: Action[]): void {
    this.#store.unsee(id)
    this.#rejected.remember(id, held.payload)
    this.#stats.rejected++
    out.push({ type: 'rejected', messageId: id, from: held.from })
    if (held.alsoFrom.length === 0 || this.#missing.size >= this.#config.maxMissingMessages) return
    const announcers = held.alsoFrom.map((peer) => ({ peer, round: held.round }))
    this.#missing.set(id, { since: now, announcers, announced: [...announcers], asked: undefined })
    this.onGraftTimer(id, out)
  }

  /**
   * §3.6: remember announcers of messages we lack and start a GRAFT timer for each new one.
   * Announcements of messages we have, or hold for validation, are ignored. The seed's wording
   * would also swap links when such a late IHAVE shows a shorter path, but by then (up to a
   * batch interval later, with other nodes swapping too) the tree may have changed, and the swap
   * can split it: measured, a settled 1,000-node overlay (seed 2) broke into a forest, RMR 0.25,
   * p99 latency 3 s. Only the paper's rule (§3.8, at first receipt) is used.
   */
  #onIHave(from: PeerKey, entries: readonly IHaveEntry[], now: number, out: Action[]): void {
    for (const entry of entries) {
      if (this.#store.hasSeen(entry.id)) continue
      const round = Math.min(entry.round, this.#config.maxRound)
      let missing = this.#missing.get(entry.id)
      if (missing === undefined) {
        if (this.#missing.size >= this.#config.maxMissingMessages) {
          this.#stats.missingOverflow++
          continue
        }
        missing = { since: now, announcers: [], announced: [], asked: undefined }
        this.#missing.set(entry.id, missing)
        out.push({ type: 'timer', after: this.#graftTimeout(now), timer: { type: 'graft', messageId: entry.id } })
      }
      if (missing.announced.length < this.#config.maxAnnouncersPerMessage && !missing.announced.some((a) => a.peer === from)) {
        const announcement = { peer: from, round }
        missing.announcers.push(announcement)
        missing.announced.push(announcement)
      }
    }
  }

  /**
   * §3.6: with an ID, the sender wants that payload; with an origin, it joins that origin's tree
   * (we push to it). A payload we never accepted (held, rejected, or expired) is not sent.
   */
  #onGraft(from: PeerKey, id: MessageId | null, origin: PeerKey | null, now: number, out: Action[]): void {
    if (origin === SHARED_TREE) this.#trees.shareLink(from)
    else if (origin !== null) this.#trees.get(origin, now).push.add(from)
    if (id === null) return
    const cached = this.#store.cached(id)
    if (cached === undefined) {
      this.#stats.graftMisses++
      return
    }
    const message: GossipMessage = { type: 'gossip', id, round: Math.min(cached.round + 1, this.#config.maxRound), origin: cached.origin, payload: cached.payload, repaired: true }
    out.push({ type: 'send', to: from, message })
  }

  /**
   * §3.3: the sender got duplicates of these origins' messages from us; we push them to it no
   * more. A tree we do not keep is started (a copy of the shared tree) so the PRUNE is not lost.
   */
  #onPrune(from: PeerKey, origins: readonly PeerKey[], now: number): void {
    for (const origin of origins) {
      if (origin === SHARED_TREE) this.#trees.unshareLink(from)
      else this.#trees.get(origin, now).push.delete(from)
    }
  }

  // ---- helpers -------------------------------------------------------------------------------

  /**
   * §3.8, made to wait for a consistent gain, in `origin`'s tree (or, for the message a tree was
   * made for, the shared tree): when the same lazy neighbour has announced a path at least the
   * threshold shorter before the payload came, for optimizationConsistency messages in a row,
   * GRAFT it (naming the tree) and PRUNE the longer link.
   */
  #considerShorterPath(tree: OriginTree, origin: PeerKey | typeof SHARED_TREE, longer: PeerKey, payloadRound: number, announcers: readonly Announcement[] | undefined, out: Action[]): void {
    const shorter = this.#trees.shorterPath(origin === SHARED_TREE ? 'shared' : tree, longer, payloadRound, announcers ?? [], this.#config)
    if (shorter === undefined) return
    this.#stats.treeSwaps++
    out.push({ type: 'send', to: shorter, message: { type: 'graft', id: null, origin } })
    this.#queuePrune(longer, origin, out)
  }

  /**
   * How long to wait after a message's first IHAVE before the first GRAFT: the configured
   * timeout, or longer when eager copies have recently come later than that (a quarter more than
   * the latest of them), up to maxGraftTimeoutMs. A copy that is late, not lost, costs a GRAFT,
   * a second payload, and (repeated) a tree link that a PRUNE takes back.
   */
  #graftTimeout(now: number): number {
    const adapted = Math.ceil(1.25 * this.#lateness.max(now))
    return Math.min(this.#config.maxGraftTimeoutMs, Math.max(this.#config.graftTimeoutMs, adapted))
  }


  #queuePrune(peer: PeerKey, origin: PeerKey, out: Action[]): void {
    let origins = this.#pruneQueue.get(peer)
    if (origins === undefined) {
      origins = new Set()
      this.#pruneQueue.set(peer, origins)
    }
    origins.add(origin)
    this.#armFlush(out)
  }

  /** Eager push along `origin`'s tree and queue announcements for its lazy neighbours, except `except`. */
  #push(tree: OriginTree, id: MessageId, round: number, origin: PeerKey, payload: Uint8Array, except: PeerKey | undefined, repaired: boolean, out: Action[]): void {
    const hops = Math.min(round, this.#config.maxRound)
    const message: GossipMessage = repaired ? { type: 'gossip', id, round: hops, origin, payload, repaired } : { type: 'gossip', id, round: hops, origin, payload }
    let entry: IHaveEntry | undefined
    for (const peer of this.#neighbors) {
      if (peer === except) continue
      if (tree.push.has(peer)) {
        out.push({ type: 'send', to: peer, message })
        continue
      }
      entry ??= { id, round: hops }
      const queue = this.#lazyQueue.get(peer)
      if (queue === undefined) this.#lazyQueue.set(peer, [entry])
      else queue.push(entry)
    }
    if (entry !== undefined) this.#armFlush(out)
  }

  #armFlush(out: Action[]): void {
    if (this.#flushArmed) return
    this.#flushArmed = true
    out.push({ type: 'timer', after: this.#config.ihaveIntervalMs, timer: { type: 'ihaveFlush' } })
  }

  /**
   * Arms a `cacheExpiry` timer for when the oldest cached payload (or, once none is left, the
   * oldest remembered ID) outlives its age bound, so both are released on time even if no
   * message ever arrives again, unless a timer that fires no later is pending. Timers are at
   * least a tenth of the payload TTL apart, so a busy topic does not arm one per message: a
   * payload may outlive its TTL by that much. The IDs of messages dropped unaccepted arm none
   * (they are small, bounded by count, and go with the next expiry).
   */
  #armExpiry(now: number, out: Action[]): void {
    const due = this.#store.nextDue()
    if (due === undefined) return
    const granularity = Math.max(1, Math.ceil(this.#config.messageCacheTtlMs / 10))
    const after = Math.max(granularity, due - now)
    if (this.#expiryDue !== undefined && this.#expiryDue <= now + after) return
    this.#expiryDue = now + after
    out.push({ type: 'timer', after, timer: { type: 'cacheExpiry' } })
  }
}

/** `items` in slices of at most `size`; one slice (the array itself) when it fits. */
function chunks<T>(items: readonly T[], size: number): Array<readonly T[]> {
  if (items.length <= size) return [items]
  const out: Array<readonly T[]> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}
