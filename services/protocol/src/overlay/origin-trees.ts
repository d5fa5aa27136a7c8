/**
 * Plumtree's broadcast trees at one node: one per origin (the node that broadcast a message),
 * as Partisan's and Helium's plumtree keep one per root, and one shared tree that every new
 * origin's tree starts from (Partisan's "common" eager set, kept here by the paper's rules).
 *
 * Why per origin. A duplicate prunes a link in its origin's tree only, so concurrent broadcasts
 * from different origins never cut each other's trees: the paper's single tree, pruned by
 * whichever broadcast met itself first, fell into a forest at 20 broadcasts a second
 * (docs/overlay.md "Concurrent broadcasts").
 *
 * An origin's tree has a direction: its *parents* (the neighbours its messages came from first,
 * upstream) and the neighbours we *push* its payloads to (downstream). Every other active
 * neighbour is lazy for it and gets IDs only. Pushing only downstream matters once a link was
 * grafted: in the paper's symmetric eager set both ends push every message across a redundant
 * link, one duplicate each way, until both have pruned it.
 *
 * Why a shared tree. A new origin's tree must reach everyone at once, with no gap, and cost no
 * flood: it starts as a copy of the shared tree, a spanning tree kept by the paper's rules
 * (symmetric, eager until a duplicate prunes it) from the first message of each origin only. A
 * first message and its duplicates are exactly what the paper's single tree saw; an origin's
 * later messages shape its own tree and leave the shared one alone. Starting from the union of
 * the other origins' trees instead was measured: new links join every tree, an origin that never
 * broadcasts again never prunes them from its own, and the union grew towards every link (the
 * simulator's churn scenario went from RMR 0.10 to 2.6).
 *
 * Why trees expire. An origin's tree is kept while the origin is busy: a tree unused for
 * `idleMs` is replaced by a fresh copy of the shared tree at the origin's next message, which
 * then counts as a first message. An idle tree would otherwise take every new link (they join
 * every tree) and lose every departed parent, and the origin's next message, minutes later,
 * would pay for all of them (measured: churn scenario at 200 nodes, RMR 0.50 with trees kept,
 * 0.08 as the single tree had). So busy origins (more often than every `idleMs`) travel their
 * own trees, and the others the shared one, which their first messages keep pruned.
 */
import type { PeerKey } from './messages.ts'

/** A lazy neighbour's announcement of a message before its payload came: who, and at how many hops. */
export interface Announcement {
  readonly peer: PeerKey
  readonly round: number
}

/** One origin's tree at this node. Change it through {@link OriginTrees}. */
export interface OriginTree {
  /** Neighbours that get this origin's payloads in full from us (downstream). */
  readonly push: Set<PeerKey>
  /**
   * Neighbours that delivered this origin's last message first (upstream). A single duplicate
   * from one of them does not prune it (hysteresis): on a real network two near-equal paths take
   * turns in arriving first, and pruning each in turn would cut the tree twice.
   */
  readonly parents: Set<PeerKey>
  /** The message this tree was made for, as a copy of the shared tree (undefined: made for a PRUNE or GRAFT). */
  readonly first: string | undefined
  /** Tree optimisation evidence (§3.8): a lazy neighbour that announced a shorter path, for how many messages in a row. */
  shorter: { readonly peer: PeerKey, count: number } | undefined
  /** When a message or control message last used it (ms). */
  lastUsed: number
  /** This origin's last messages came by GRAFT (asked for), this many in a row: the tree lost its way here. */
  repairs: number
  /** Used since eviction last looked at it (the CLOCK algorithm's reference bit). */
  used: boolean
}

export class OriginTrees {
  /**
   * Eviction is CLOCK (second chance), an approximation of least-recently-used: the front entry
   * goes unless it was used since it was last looked at, in which case it moves to the back.
   * Moving every tree to the back on each use (exact LRU) costs a delete and a set per message.
   */
  readonly #trees = new Map<PeerKey, OriginTree>()
  /** The shared tree's eager links (symmetric, as in the paper). */
  readonly #shared = new Set<PeerKey>()
  readonly #neighbors: ReadonlySet<PeerKey>
  readonly #max: number
  readonly #idleMs: number
  readonly #sharedPruneDuplicates: number
  /** Duplicates of first messages in a row from each shared link (prune hysteresis). */
  readonly #sharedDuplicates = new Map<PeerKey, number>()
  /** Tree optimisation evidence for the shared tree (§3.8), from first messages. */
  #sharedShorter: { readonly peer: PeerKey, count: number } | undefined
  /** Trees dropped because more than the maximum were kept. */
  evictions = 0

  /**
   * `neighbors` is the active view, kept up to date by the owner; `max` bounds the origin trees
   * kept; `idleMs` is how long an unused one lives; `sharedPruneDuplicates` duplicates of first
   * messages in a row prune a proven shared link.
   */
  constructor(neighbors: ReadonlySet<PeerKey>, options: { max: number, idleMs: number, sharedPruneDuplicates: number }) {
    this.#neighbors = neighbors
    this.#max = options.max
    this.#idleMs = options.idleMs
    this.#sharedPruneDuplicates = options.sharedPruneDuplicates
  }

  /** Origin trees kept. */
  get size(): number {
    return this.#trees.size
  }

  /** The shared tree's links (what a new origin's tree pushes to). */
  get shared(): ReadonlySet<PeerKey> {
    return this.#shared
  }

  /**
   * The tree of `origin`, marked used at `now`; a new one (or one idle for longer than `idleMs`)
   * is a copy of the shared tree (every neighbour, if the shared tree has none), made for
   * message `first` if one brought it.
   */
  get(origin: PeerKey, now: number, first?: string): OriginTree {
    const existing = this.#trees.get(origin)
    if (existing !== undefined && now - existing.lastUsed <= this.#idleMs) {
      existing.used = true
      existing.lastUsed = now
      return existing
    }
    if (existing === undefined) {
      while (this.#trees.size >= this.#max) this.#evictOne()
    }
    const seed = this.#shared.size > 0 ? this.#shared : this.#neighbors
    const tree: OriginTree = { push: new Set(seed), parents: new Set(), first, shorter: undefined, lastUsed: now, repairs: 0, used: false }
    this.#trees.set(origin, tree)
    return tree
  }

  /** The tree of `origin` if one is kept and not idle, without creating it or marking it used. */
  peek(origin: PeerKey, now: number): OriginTree | undefined {
    const tree = this.#trees.get(origin)
    return tree !== undefined && now - tree.lastUsed <= this.#idleMs ? tree : undefined
  }

  /** `peer` delivered this origin's message first: it is upstream, and gets no pushes of it from us. */
  setParent(tree: OriginTree, peer: PeerKey): void {
    tree.parents.add(peer)
    tree.push.delete(peer)
  }

  /** The link to `peer` is redundant for this origin: neither upstream nor pushed to. */
  unlink(tree: OriginTree, peer: PeerKey): void {
    tree.push.delete(peer)
    tree.parents.delete(peer)
  }

  /** The link to `peer` joins the shared tree (a first message came by it first, or it grafted the shared tree). */
  shareLink(peer: PeerKey): void {
    this.#sharedDuplicates.delete(peer)
    if (this.#neighbors.has(peer)) this.#shared.add(peer)
  }

  /** The link to `peer` leaves the shared tree (it pruned it, or a shorter path replaced it). */
  unshareLink(peer: PeerKey): void {
    this.#sharedDuplicates.delete(peer)
    this.#shared.delete(peer)
  }

  /**
   * `peer` sent a duplicate of a first message over a shared link: true once it has sent
   * sharedPruneDuplicates in a row (no first copy between them; one, for a link that never
   * brought one), when the link leaves the shared tree.
   */
  sharedDuplicate(peer: PeerKey): boolean {
    if (!this.#shared.has(peer)) return false
    const count = (this.#sharedDuplicates.get(peer) ?? 0) + 1
    if (count < this.#sharedPruneDuplicates) {
      this.#sharedDuplicates.set(peer, count)
      return false
    }
    this.unshareLink(peer)
    return true
  }

  /** A new active neighbour is eager in every tree, shared and per origin (§3.4): the first duplicate through it prunes it there. */
  neighborUp(peer: PeerKey): void {
    this.#shared.add(peer)
    // Unproven: its first duplicate prunes it (a proven link, one that brought a first message
    // first, is given one duplicate's grace). New links are what churn adds, and most of them
    // are redundant in a tree.
    this.#sharedDuplicates.set(peer, this.#sharedPruneDuplicates - 1)
    for (const tree of this.#trees.values()) tree.push.add(peer)
  }

  /** A neighbour left the active view: it is in no tree any more. */
  neighborDown(peer: PeerKey): void {
    this.unshareLink(peer)
    for (const tree of this.#trees.values()) {
      tree.push.delete(peer)
      tree.parents.delete(peer)
      if (tree.shorter?.peer === peer) tree.shorter = undefined
    }
  }

  /** Pushed to in no tree (the driver cannot keep up sending to it); its GRAFTs make it eager again, tree by tree. */
  demote(peer: PeerKey): boolean {
    let demoted = this.#shared.has(peer)
    this.unshareLink(peer)
    for (const tree of this.#trees.values()) demoted = tree.push.delete(peer) || demoted
    return demoted
  }

  /**
   * §3.8, on a consistent gain only: the lazy neighbour (in `tree`, or in the shared tree) that
   * announced the message with the fewest hops before its payload came by `longer` at
   * `payloadRound`, if that saves at least `optimizationThreshold` hops, counted per tree; once
   * the same neighbour has done so for `optimizationConsistency` messages in a row, it replaces
   * `longer` in the tree and is returned (the caller GRAFTs it and PRUNEs `longer`). The tree
   * stays a tree: the shorter peer cannot be below us, since it had the message in fewer hops
   * than we did.
   */
  shorterPath(tree: OriginTree | 'shared', longer: PeerKey, payloadRound: number, announcers: readonly Announcement[],
    config: { readonly optimizationThreshold: number, readonly optimizationConsistency: number }): PeerKey | undefined {
    const linked = (peer: PeerKey): boolean => tree === 'shared' ? this.#shared.has(peer) : tree.push.has(peer) || tree.parents.has(peer)
    let best: Announcement | undefined
    for (const a of announcers) {
      if (a.peer !== longer && this.#neighbors.has(a.peer) && !linked(a.peer) && (best === undefined || a.round < best.round)) best = a
    }
    const previous = tree === 'shared' ? this.#sharedShorter : tree.shorter
    let next: { peer: PeerKey, count: number } | undefined
    if (best !== undefined && payloadRound - best.round >= config.optimizationThreshold) {
      next = { peer: best.peer, count: previous?.peer === best.peer ? previous.count + 1 : 1 }
      if (next.count >= config.optimizationConsistency) next = undefined
      else best = undefined
    } else {
      best = undefined
    }
    if (tree === 'shared') this.#sharedShorter = next
    else tree.shorter = next
    if (best === undefined) return undefined
    if (tree === 'shared') {
      this.shareLink(best.peer)
      this.unshareLink(longer)
    } else {
      this.setParent(tree, best.peer)
      this.unlink(tree, longer)
    }
    return best.peer
  }

  #evictOne(): void {
    for (;;) {
      const [origin, tree] = this.#trees.entries().next().value as [PeerKey, OriginTree]
      this.#trees.delete(origin)
      if (tree.used) {
        tree.used = false
        this.#trees.set(origin, tree)
        continue
      }
      this.evictions++
      return
    }
  }
}
