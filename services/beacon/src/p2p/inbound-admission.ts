/**
 * Admission of inbound connections, before and during their upgrade (multistream-select,
 * Noise, Yamux): a beacon is the network's front door and must keep letting honest peers in
 * while it is under attack (issue 19).
 *
 * libp2p alone keeps one global count of connections mid-upgrade and refuses the newcomer
 * once it is full, so a few hundred sockets that send half a multistream header and then
 * trickle or go silent kept every honest dial out until libp2p's 10 s upgrade timeout, and
 * were reopened as soon as they closed. Here:
 *
 * - **Fair pending slots.** Connections mid-upgrade are counted per source (an IPv4
 *   address, an IPv6 /64) and per network (IPv4 /24, IPv6 /48), each with a cap. When a
 *   cap is full, a newcomer from a source (or network) that holds fewer slots than the
 *   heaviest one takes a slot from it: the heaviest holder's oldest pending connection is
 *   closed (`evicted`). Only a newcomer that would itself be the heaviest is refused
 *   (`source-cap`, or `pending-cap` for the global cap). An honest peer, holding nothing,
 *   always gets a slot.
 * - **No progress, no slot.** An upgrade whose first multistream-select message is not
 *   complete within `firstMessageTimeoutMs`, or that has sent fewer than
 *   `minBytesPerSecond` on average since, is closed (`slow-upgrade`) long before libp2p's
 *   overall upgrade timeout. An honest initiator sends its first message at once and about
 *   60 bytes before it waits on us, so neither rule touches it.
 * - **CPU admission.** New upgrades are admitted at a rate that follows the measured
 *   event-loop delay (`HandshakeGovernor`): while the loop lags past its target, new
 *   handshakes are shed first (`overload`), before established peers, HTTP or ingest
 *   suffer. A refused connection costs an accept and a close, not a Noise handshake.
 * - **Members keep a lane.** A handshake's cost comes before the peer's identity is known,
 *   so a flood of strangers' handshakes would take the tokens of registered peers too.
 *   The addresses that members (registered peers, fleet workers) last connected from are
 *   remembered (`rememberMember`), and a new connection from one of them that finds the
 *   common tokens gone takes one from a second bucket of its own, at the same rate: a
 *   returning member gets in through a strangers' flood. TCP source addresses cannot be
 *   forged, so only a member's own network holds such an address.
 * - **Per-source rate.** libp2p's per-host connection rate, enforced here so that its
 *   refusals are counted with the others (`rate-limit`).
 *
 * Every refusal is counted by reason (`pharos_connections_refused_total{reason}`). This sits
 * between a transport's listener and libp2p's upgrader (`withInboundAdmission`), so it sees
 * the raw connection, its source address and its bytes, and works for TCP and WebSockets
 * alike without patching libp2p.
 */
import type { CreateListenerOptions, MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { setNewest } from '@pharos/protocol/bounded-map.ts'
import { sourceKey, sourcePrefix } from '../net/source-address.ts'
import { hostOf } from './multiaddr-parts.ts'

/** Why an inbound connection was refused or closed before its upgrade finished: a closed set, for metric labels. */
export type AdmissionRefusal = 'rate-limit' | 'pending-cap' | 'source-cap' | 'slow-upgrade' | 'evicted' | 'overload'
export const ADMISSION_REFUSALS = ['rate-limit', 'pending-cap', 'source-cap', 'slow-upgrade', 'evicted', 'overload'] as const satisfies readonly AdmissionRefusal[]

export interface InboundAdmissionLimits {
  /** Connections mid-upgrade at once, from everyone. */
  maxPending: number
  /** Connections mid-upgrade at once from one source (an IPv4 address, an IPv6 /64). */
  maxPendingPerSource: number
  /** Connections mid-upgrade at once from one network (an IPv4 /24, an IPv6 /48). */
  maxPendingPerPrefix: number
  /** New connections one source may open per second. */
  connectionsPerSourcePerSecond: number
  /** The first multistream-select message must be complete this long after the accept. */
  firstMessageTimeoutMs: number
  /** After `firstMessageTimeoutMs`, an upgrade must have brought at least this many bytes per second on average. */
  minBytesPerSecond: number
  /** Above this event-loop delay, new handshakes are shed; 0: never (only `maxHandshakesPerSecond` binds). */
  loopDelayTargetMs: number
  /** The most new handshakes admitted per second while the loop keeps up. */
  maxHandshakesPerSecond: number
  /** The fewest admitted per second however far the loop lags, so that some peers still get in. */
  minHandshakesPerSecond: number
}

/** An inbound connection closed by admission; its name is what the upgrade failed with. */
export class InboundAdmissionError extends Error {
  override readonly name = 'InboundAdmissionError'
  readonly reason: AdmissionRefusal
  constructor (reason: AdmissionRefusal) {
    super(`inbound connection closed by admission: ${reason}`)
    this.reason = reason
  }
}

export interface InboundAdmissionEvents {
  /** A connection refused, or closed before its upgrade finished, and the limit that did it. */
  onRefused?: (reason: AdmissionRefusal, limit: keyof InboundAdmissionLimits) => void
}

/** How often pending upgrades are checked for progress. */
const SWEEP_INTERVAL_MS = 250
/** A sweep this much later than due means the worker's own loop was held. */
const SWEEP_LATE_MS = 50
/** Sources whose connection rate is remembered (the oldest are forgotten, as if idle). */
const RATE_SOURCES_MAX = 65_536
/** Sources a member last connected from that are remembered (the least recent are forgotten; guess: a worker's connections several times over). */
const MEMBER_SOURCES_MAX = 65_536
/** The first multistream-select message is short ("/multistream/1.0.0\n"); a longer length prefix is no honest one. */
const FIRST_MESSAGE_MAX_PREFIX_BYTES = 2

/** One connection mid-upgrade. */
export class PendingUpgrade {
  readonly source: string
  readonly prefix: string
  readonly startedAt: number
  /** The worker's own stalled time (`StallClock.stalledMs`) when it started: not charged to the peer. */
  stalledAtStart = 0
  /** Bytes the peer has sent so far. */
  bytes = 0
  /** Its first multistream-select message is complete. */
  firstMessage = false
  #length = 0
  #prefixBytes = 0
  #lengthKnown = false
  readonly #close: (reason: AdmissionRefusal, limit: keyof InboundAdmissionLimits) => void

  constructor (source: string, prefix: string, startedAt: number, close: (reason: AdmissionRefusal, limit: keyof InboundAdmissionLimits) => void) {
    this.source = source
    this.prefix = prefix
    this.startedAt = startedAt
    this.#close = close
  }

  /** Counts `chunk`, and follows the first message's unsigned-varint length prefix until it is whole. */
  received (chunk: Uint8Array | Uint8ArrayList): void {
    this.bytes += chunk.byteLength
    if (this.firstMessage) return
    for (let i = 0; !this.#lengthKnown && i < chunk.byteLength && this.#prefixBytes < FIRST_MESSAGE_MAX_PREFIX_BYTES; i++) {
      const byte = chunk instanceof Uint8Array ? (chunk[i] ?? 0) : chunk.get(i)
      this.#length += (byte & 0x7f) * 128 ** this.#prefixBytes
      this.#prefixBytes++
      if (byte < 0x80) this.#lengthKnown = true
    }
    if (this.#lengthKnown && this.bytes >= this.#prefixBytes + this.#length) this.firstMessage = true
  }

  close (reason: AdmissionRefusal, limit: keyof InboundAdmissionLimits): void {
    this.#close(reason, limit)
  }
}

/** What `PendingUpgrades.admit` decided: a slot (perhaps taken from the heaviest holder), or a refusal. */
export type SlotDecision =
  | { readonly admitted: true, readonly evict: PendingUpgrade | undefined, readonly limit: SlotLimit }
  | { readonly admitted: false, readonly reason: 'source-cap' | 'pending-cap', readonly limit: SlotLimit }

/** The cap a slot decision was made at. */
export type SlotLimit = 'maxPending' | 'maxPendingPerSource' | 'maxPendingPerPrefix'

/**
 * The bookkeeping of fair pending slots, without IO: who holds how many, and whom a
 * newcomer may take a slot from. Sets and arrays keep insertion order, so "oldest" is first.
 */
export class PendingUpgrades {
  readonly #limits: Pick<InboundAdmissionLimits, 'maxPending' | 'maxPendingPerSource' | 'maxPendingPerPrefix'>
  readonly #all = new Set<PendingUpgrade>()
  readonly #bySource = new Map<string, PendingUpgrade[]>()
  readonly #byPrefix = new Map<string, Set<PendingUpgrade>>()

  constructor (limits: Pick<InboundAdmissionLimits, 'maxPending' | 'maxPendingPerSource' | 'maxPendingPerPrefix'>) {
    this.#limits = limits
  }

  get size (): number { return this.#all.size }

  /** Slots held by `source`, or by the network `prefix`. */
  held (key: { source: string } | { prefix: string }): number {
    return 'source' in key ? (this.#bySource.get(key.source)?.length ?? 0) : (this.#byPrefix.get(key.prefix)?.size ?? 0)
  }

  /**
   * Whether a newcomer from `source` in `prefix` gets a slot. It does not take it: `add`
   * does, once the evicted connection (if any) was closed.
   */
  admit (source: string, prefix: string): SlotDecision {
    const ownSource = this.held({ source })
    if (ownSource >= this.#limits.maxPendingPerSource) return { admitted: false, reason: 'source-cap', limit: 'maxPendingPerSource' }
    const inPrefix = this.#byPrefix.get(prefix)
    const ownPrefix = inPrefix?.size ?? 0
    if (ownPrefix >= this.#limits.maxPendingPerPrefix) {
      // The network is full: take a slot from its heaviest source, if that holds more than we do.
      const victim = this.#oldestOfHeaviestSource(inPrefix ?? new Set())
      if (victim === undefined || this.held({ source: victim.source }) <= ownSource) return { admitted: false, reason: 'source-cap', limit: 'maxPendingPerPrefix' }
      return { admitted: true, evict: victim, limit: 'maxPendingPerPrefix' }
    }
    if (this.#all.size >= this.#limits.maxPending) {
      // Everything is full: take a slot from the heaviest network's heaviest source, if that
      // network holds more than ours (or it is ours, and that source holds more than we do).
      const heaviest = this.#heaviestPrefix()
      const victim = heaviest === undefined ? undefined : this.#oldestOfHeaviestSource(heaviest)
      if (heaviest === undefined || victim === undefined) return { admitted: false, reason: 'pending-cap', limit: 'maxPending' }
      const fairer = victim.prefix === prefix ? this.held({ source: victim.source }) > ownSource : heaviest.size > ownPrefix
      return fairer ? { admitted: true, evict: victim, limit: 'maxPending' } : { admitted: false, reason: 'pending-cap', limit: 'maxPending' }
    }
    return { admitted: true, evict: undefined, limit: 'maxPending' }
  }

  add (upgrade: PendingUpgrade): void {
    this.#all.add(upgrade)
    const sourceList = this.#bySource.get(upgrade.source)
    if (sourceList === undefined) this.#bySource.set(upgrade.source, [upgrade])
    else sourceList.push(upgrade)
    const prefixSet = this.#byPrefix.get(upgrade.prefix)
    if (prefixSet === undefined) this.#byPrefix.set(upgrade.prefix, new Set([upgrade]))
    else prefixSet.add(upgrade)
  }

  /** Frees the slot; a second call does nothing. */
  remove (upgrade: PendingUpgrade): void {
    if (!this.#all.delete(upgrade)) return
    const sourceList = this.#bySource.get(upgrade.source) ?? []
    const index = sourceList.indexOf(upgrade)
    if (index >= 0) sourceList.splice(index, 1)
    if (sourceList.length === 0) this.#bySource.delete(upgrade.source)
    const prefixSet = this.#byPrefix.get(upgrade.prefix)
    prefixSet?.delete(upgrade)
    if (prefixSet?.size === 0) this.#byPrefix.delete(upgrade.prefix)
  }

  /** Every pending upgrade, oldest first. */
  entries (): IterableIterator<PendingUpgrade> {
    return this.#all.values()
  }

  /** The network that holds the most slots; of equals, the one whose oldest connection is oldest. */
  #heaviestPrefix (): Set<PendingUpgrade> | undefined {
    let heaviest: Set<PendingUpgrade> | undefined
    for (const set of this.#byPrefix.values()) {
      if (heaviest === undefined || set.size > heaviest.size || (set.size === heaviest.size && oldestStart(set) < oldestStart(heaviest))) heaviest = set
    }
    return heaviest
  }

  /** Of the sources in `upgrades`, the one holding the most slots (of equals, the one with the oldest connection): its oldest connection. */
  #oldestOfHeaviestSource (upgrades: Set<PendingUpgrade>): PendingUpgrade | undefined {
    let victim: PendingUpgrade | undefined
    let victimHeld = 0
    for (const upgrade of upgrades) {
      const list = this.#bySource.get(upgrade.source)
      const oldest = list?.[0]
      if (list === undefined || oldest === undefined) continue
      if (victim === undefined || list.length > victimHeld || (list.length === victimHeld && oldest.startedAt < victim.startedAt)) {
        victim = oldest
        victimHeld = list.length
      }
    }
    return victim
  }
}

function oldestStart (upgrades: Set<PendingUpgrade>): number {
  for (const upgrade of upgrades) return upgrade.startedAt
  return Number.POSITIVE_INFINITY
}

/**
 * How long the worker's own event loop was held, as seen by a periodic timer: while it was,
 * a peer's bytes waited in the kernel, unread, and its upgrade made no progress through no
 * fault of its own. After a stall, the timers phase runs before the poll phase that reads
 * the sockets, so a check right then would see bytes missing that have arrived.
 */
export class StallClock {
  readonly #intervalMs: number
  #lastTick: number | undefined
  /** Every late tick's lateness, summed. */
  stalledMs = 0

  constructor (intervalMs: number) {
    this.#intervalMs = intervalMs
  }

  /** The periodic timer fired at `now`; returns whether it was late (the loop was held). */
  tick (now: number): boolean {
    const late = this.#lastTick === undefined ? 0 : Math.max(0, now - this.#lastTick - this.#intervalMs)
    this.#lastTick = now
    if (late <= SWEEP_LATE_MS) return false
    this.stalledMs += late
    return true
  }
}

/** The governor's token buckets: everyone's, and the one kept for the sources members connect from. */
export type HandshakeLane = 'any' | 'member'

/**
 * Admits new handshakes at a rate the event loop absorbs: a token bucket whose rate halves
 * whenever the loop's delay passes its target (at most once per `BACKOFF_INTERVAL_MS`) and
 * grows back by a twentieth of the ceiling each interval it stays under (AIMD, as TCP
 * congestion control). Shedding at the door is cheap: a refused connection costs an accept
 * and a close; an admitted one a Noise handshake (~4 ms of CPU) and what follows it.
 */
export class HandshakeGovernor {
  static readonly BACKOFF_INTERVAL_MS = 100
  readonly #limits: Pick<InboundAdmissionLimits, 'loopDelayTargetMs' | 'maxHandshakesPerSecond' | 'minHandshakesPerSecond'>
  #rate: number
  readonly #lanes: Record<HandshakeLane, { tokens: number, refilledAt: number | undefined }>
  #adjustedAt = Number.NEGATIVE_INFINITY
  /** The longest delay sampled since the rate was last adjusted. */
  #worstDelayMs = 0

  constructor (limits: Pick<InboundAdmissionLimits, 'loopDelayTargetMs' | 'maxHandshakesPerSecond' | 'minHandshakesPerSecond'>) {
    this.#limits = limits
    this.#rate = limits.maxHandshakesPerSecond
    this.#lanes = {
      any: { tokens: this.#burst(), refilledAt: undefined },
      member: { tokens: this.#burst(), refilledAt: undefined }
    }
  }

  /** Handshakes admitted per second now. */
  get rate (): number { return this.#rate }

  /**
   * One event-loop delay sample (how late a periodic timer fired). The rate moves at most
   * once per `BACKOFF_INTERVAL_MS`, on the worst sample since it last moved: one long stall
   * is one late sample, and must not be missed for falling between two steps.
   */
  onLoopDelay (delayMs: number, now: number): void {
    if (this.#limits.loopDelayTargetMs === 0) return
    this.#worstDelayMs = Math.max(this.#worstDelayMs, delayMs)
    if (now - this.#adjustedAt < HandshakeGovernor.BACKOFF_INTERVAL_MS) return
    this.#adjustedAt = now
    const worst = this.#worstDelayMs
    this.#worstDelayMs = 0
    const { loopDelayTargetMs, maxHandshakesPerSecond, minHandshakesPerSecond } = this.#limits
    if (worst > loopDelayTargetMs) {
      this.#rate = Math.max(minHandshakesPerSecond, this.#rate / 2)
      for (const lane of Object.values(this.#lanes)) lane.tokens = Math.min(lane.tokens, this.#burst())
    } else {
      this.#rate = Math.min(maxHandshakesPerSecond, this.#rate + maxHandshakesPerSecond / 20)
    }
  }

  /**
   * Takes a token for one new handshake from `lane`'s bucket, if there is one. Both buckets
   * fill at the governor's rate, so members and strangers together get at most twice it.
   */
  tryAdmit (now: number, lane: HandshakeLane = 'any'): boolean {
    const bucket = this.#lanes[lane]
    if (bucket.refilledAt !== undefined) bucket.tokens = Math.min(this.#burst(), bucket.tokens + this.#rate * Math.max(0, now - bucket.refilledAt) / 1000)
    bucket.refilledAt = now
    if (bucket.tokens < 1) return false
    bucket.tokens--
    return true
  }

  /**
   * A second's worth, and at least one: a fleet worker that dies sends its peers to the
   * others all at once, and that burst is honest.
   */
  #burst (): number {
    return Math.max(1, this.#rate)
  }
}

/** Per-source token buckets: `perSecond` new connections a second, with a second's burst. */
class SourceRate {
  readonly #perSecond: number
  readonly #buckets = new Map<string, { tokens: number, at: number }>()

  constructor (perSecond: number) {
    this.#perSecond = perSecond
  }

  tryTake (source: string, now: number): boolean {
    const bucket = this.#buckets.get(source) ?? { tokens: this.#perSecond, at: now }
    bucket.tokens = Math.min(this.#perSecond, bucket.tokens + this.#perSecond * Math.max(0, now - bucket.at) / 1000)
    bucket.at = now
    const allowed = bucket.tokens >= 1
    if (allowed) bucket.tokens--
    setNewest(this.#buckets, source, bucket, RATE_SOURCES_MAX)
    return allowed
  }
}

export interface InboundAdmissionInit {
  limits: InboundAdmissionLimits
  events?: InboundAdmissionEvents
  /** @default performance.now */
  now?: () => number
}

/**
 * The admission of one worker's inbound connections (every listener shares it). Feed it the
 * event loop's delay (`onLoopDelay`), wrap each transport with `withInboundAdmission`, and
 * `stop` it with the node.
 */
export class InboundAdmission {
  readonly #limits: InboundAdmissionLimits
  readonly #events: InboundAdmissionEvents
  readonly #now: () => number
  readonly #slots: PendingUpgrades
  readonly #governor: HandshakeGovernor
  readonly #rate: SourceRate
  /** Sources (sourceKey) members last connected from, least recent first. */
  readonly #memberSources = new Map<string, true>()
  #sweep: ReturnType<typeof setInterval> | undefined
  readonly #stalls = new StallClock(SWEEP_INTERVAL_MS)

  constructor ({ limits, events = {}, now = () => performance.now() }: InboundAdmissionInit) {
    this.#limits = limits
    this.#events = events
    this.#now = now
    this.#slots = new PendingUpgrades(limits)
    this.#governor = new HandshakeGovernor(limits)
    this.#rate = new SourceRate(limits.connectionsPerSourcePerSecond)
  }

  /** Connections mid-upgrade now. */
  get pending (): number { return this.#slots.size }

  /** New handshakes admitted per second now (the governor's rate). */
  get handshakeRate (): number { return this.#governor.rate }

  onLoopDelay (delayMs: number): void {
    this.#governor.onLoopDelay(delayMs, this.#now())
  }

  /**
   * A member (a registered peer, a fleet worker) connected from `ip`: new connections from
   * that source may use the members' lane of the governor while strangers' handshakes take
   * all the common tokens.
   */
  rememberMember (ip: string): void {
    setNewest(this.#memberSources, sourceKey(ip), true, MEMBER_SOURCES_MAX)
  }

  /** Whether a member connected from this source lately (for tests and metrics). */
  isMemberSource (ip: string): boolean {
    return this.#memberSources.has(sourceKey(ip))
  }

  /** Checks pending upgrades for progress every `SWEEP_INTERVAL_MS`. */
  start (): void {
    if (this.#sweep !== undefined) return
    this.#sweep = setInterval(() => { this.sweep() }, SWEEP_INTERVAL_MS)
    this.#sweep.unref()
  }

  stop (): void {
    clearInterval(this.#sweep)
    this.#sweep = undefined
  }

  /**
   * Closes the upgrades that make no progress (`slow-upgrade`), timed without the worker's
   * own stalls (`StallClock`): right after one, it judges nothing, so the sockets are read
   * first. Run by the timer.
   */
  sweep (): void {
    const now = this.#now()
    if (this.#stalls.tick(now)) return
    const { firstMessageTimeoutMs, minBytesPerSecond } = this.#limits
    for (const upgrade of [...this.#slots.entries()]) {
      const elapsed = now - upgrade.startedAt - (this.#stalls.stalledMs - upgrade.stalledAtStart)
      if (elapsed < firstMessageTimeoutMs) continue
      if (!upgrade.firstMessage) upgrade.close('slow-upgrade', 'firstMessageTimeoutMs')
      else if (upgrade.bytes * 1000 < minBytesPerSecond * elapsed) upgrade.close('slow-upgrade', 'minBytesPerSecond')
    }
  }

  /** An upgrader that admits each inbound connection before handing it to `upgrader`. */
  wrap (upgrader: Upgrader): Upgrader {
    return {
      upgradeInbound: async (maConn: MultiaddrConnection, opts: Parameters<Upgrader['upgradeInbound']>[1]) => { await this.#upgradeInbound(upgrader, maConn, opts) },
      upgradeOutbound: async (maConn: MultiaddrConnection, opts: Parameters<Upgrader['upgradeOutbound']>[1]) => await upgrader.upgradeOutbound(maConn, opts),
      createInboundAbortSignal: (signal) => upgrader.createInboundAbortSignal(signal),
      getStreamMuxers: () => upgrader.getStreamMuxers(),
      getConnectionEncrypters: () => upgrader.getConnectionEncrypters()
    } satisfies Upgrader
  }

  async #upgradeInbound (upgrader: Upgrader, maConn: MultiaddrConnection, opts: Parameters<Upgrader['upgradeInbound']>[1]): Promise<void> {
    const ip = hostOf(maConn.remoteAddr)
    if (ip === undefined) {
      // Not from an IP (a relayed or in-memory connection): nothing to be fair between.
      await upgrader.upgradeInbound(maConn, opts)
      return
    }
    const now = this.#now()
    const source = sourceKey(ip)
    const prefix = sourcePrefix(ip)
    const refuse = (reason: AdmissionRefusal, limit: keyof InboundAdmissionLimits): never => {
      this.#events.onRefused?.(reason, limit)
      const error = new InboundAdmissionError(reason)
      maConn.abort(error)
      throw error
    }
    if (!this.#rate.tryTake(source, now)) refuse('rate-limit', 'connectionsPerSourcePerSecond')
    const decision = this.#slots.admit(source, prefix)
    if (!decision.admitted) return refuse(decision.reason, decision.limit)
    // Shed after the fairness checks: a refused source spends no token of the honest ones.
    // Counted against the loop-delay target while the rate is lowered for lag, else the ceiling.
    if (!this.#governor.tryAdmit(now) && !(this.#memberSources.has(source) && this.#governor.tryAdmit(now, 'member'))) {
      refuse('overload', this.#governor.rate < this.#limits.maxHandshakesPerSecond ? 'loopDelayTargetMs' : 'maxHandshakesPerSecond')
    }
    decision.evict?.close('evicted', decision.limit)

    let closed = false
    const upgrade = new PendingUpgrade(source, prefix, now, (reason, limit) => {
      if (closed) return
      closed = true
      this.#slots.remove(upgrade)
      this.#events.onRefused?.(reason, limit)
      maConn.abort(new InboundAdmissionError(reason))
    })
    upgrade.stalledAtStart = this.#stalls.stalledMs
    this.#slots.add(upgrade)
    // Count the peer's bytes as they arrive: the transports' connections (AbstractMessageStream)
    // hand every chunk to their own `onData`, looked up on the instance each time.
    const stream = maConn as MultiaddrConnection & { onData?: (data: Uint8Array | Uint8ArrayList) => void }
    const onData = stream.onData
    if (onData !== undefined) {
      stream.onData = (data) => {
        upgrade.received(data)
        onData.call(stream, data)
      }
    }
    try {
      await upgrader.upgradeInbound(maConn, opts)
    } finally {
      closed = true
      this.#slots.remove(upgrade)
      // The prototype's onData again, so an upgraded connection pays nothing for admission.
      // Assigned, not deleted: by now the upgrade has added properties of its own (libp2p's
      // metrics wrap send and dispatchEvent), and deleting one that is not the newest turns
      // the object into a dictionary (V8), about 1.6 KiB more for every connection held.
      if (onData !== undefined) stream.onData = onData
    }
  }
}

/**
 * A transport whose listeners admit inbound connections through `admission`:
 * `transports: [withInboundAdmission(tcp(), admission)]`. Dials are the transport's own.
 */
export function withInboundAdmission<C> (factory: (components: C) => Transport, admission: InboundAdmission): (components: C) => Transport {
  return (components) => {
    const created = factory(components)
    const createListener = created.createListener.bind(created)
    created.createListener = (options: CreateListenerOptions) => createListener({ ...options, upgrader: admission.wrap(options.upgrader) })
    return created
  }
}
