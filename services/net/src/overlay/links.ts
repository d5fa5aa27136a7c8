/**
 * The overlay's outbound links and their send queues. Per neighbour and per protocol
 * (`/<network>/hyparview/2.0.0`, `/<network>/plumtree/2.0.0`) each side writes on one
 * long-lived outbound stream it opened and reads the one the other side opened (inbound.ts),
 * the gossipsub arrangement, so two peers that connect at once never race over who owns a
 * stream. A link is up while its outbound stream is open; a stream or connection that
 * closes, or a dial that fails, is a failed link: every topic gets `linkDown` and HyParView
 * repairs from its passive view.
 *
 * Queues are bounded in frames and bytes: a neighbour that stopped reading is dropped as
 * misbehaving, and past half the byte bound it is made lazy (`congested`: IHAVEs, not
 * payloads) until it reads again and GRAFTs. A connection the overlay dialled is closed again
 * once, for a grace period, no topic needs its peer and nothing else uses it
 * (connection-release.ts); one the remote opened, or another part of the node dialled, is
 * never closed.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { Listeners } from '@pharos/protocol/listeners.ts'
import { encodeHyParView, encodePlumtree, isHyParViewMessage, protocolOf } from '@pharos/protocol/overlay/index.ts'
import type { Message, OverlayProtocol, PeerKey } from '@pharos/protocol/overlay/index.ts'
import type { AddressLookup } from './address-lookup.ts'
import { ConnectionRelease } from './connection-release.ts'
import { PROTOCOLS } from './driver-context.ts'
import type { DriverContext } from './driver-context.ts'
import { decodePreamble } from './driver-frames.ts'
import { OverlayNotStartedError, OverlayRefusedError } from './overlay-api.ts'

export interface OutboundLink {
  readonly key: PeerKey
  readonly protocol: OverlayProtocol
  state: 'opening' | 'open' | 'closed'
  queue: Uint8Array[]
  /** Bytes of the frames in `queue` and of the one being written. */
  queuedBytes: number
  /** The queue is past half its byte bound (cleared once it is back under). */
  congested: boolean
  pumping: boolean
  stream?: Stream
  lp?: LengthPrefixedStream<Stream>
  lastUsed: number
}

const linkId = (key: PeerKey, protocol: OverlayProtocol): string => `${key}|${protocol}`

export class OutboundLinks {
  private readonly context: DriverContext
  private readonly addresses: AddressLookup
  private readonly links = new Map<string, OutboundLink>()
  private readonly refusals = new Listeners<OverlayRefusedError>((err) => { this.context.log.error('refusal listener failed - %e', err) })
  /**
   * The last frame encoded, by message object: Plumtree's eager push hands the same message to
   * every neighbour of the tree in a row, so at high publish rates each payload is encoded once,
   * not once per neighbour. Queues only read a frame, so they can share it.
   */
  private lastFrame: { topic: string, message: Message, frame: Uint8Array } | undefined
  /** Connections the overlay dialled, and when to release them. */
  readonly connections: ConnectionRelease

  constructor (context: DriverContext, addresses: AddressLookup) {
    this.context = context
    this.addresses = addresses
    this.connections = new ConnectionRelease({
      graceMs: context.init.connectionGraceMs,
      needed: (key) => this.needsPeer(key),
      peerStore: context.components.peerStore,
      log: context.log
    })
  }

  /** Called when a peer refuses our link (e.g. `not-registered`). */
  onRefused (listener: (error: OverlayRefusedError) => void): () => void {
    return this.refusals.add(listener)
  }

  /** Sends one of the node's messages to a neighbour: on its link for the message's protocol, opened if need be. */
  send (topic: string, to: PeerKey, message: Message): void {
    if (this.context.isShunned(to)) return
    const frame = this.encode(topic, message)
    const link = this.link(to, protocolOf(message))
    if (link.state === 'closed') return
    // What we announce is what the neighbour may GRAFT (neighbour-budget.ts).
    if (message.type === 'ihave') this.context.ledger.announced(to, topic, message.entries, Date.now())
    this.enqueue(link, frame, message.type === 'gossip')
  }

  private encode (topic: string, message: Message): Uint8Array {
    const last = this.lastFrame
    if (last !== undefined && last.message === message && last.topic === topic) return last.frame
    const frame = isHyParViewMessage(message) ? encodeHyParView({ topic, message }) : encodePlumtree({ topic, message })
    this.lastFrame = { topic, message, frame }
    return frame
  }

  /**
   * Queues `frame` on `link` (from `link`, not closed). A queue over its frame or byte bound
   * costs the neighbour its place (it stopped reading); a gossip frame that takes it past half
   * its byte bound makes the neighbour lazy. An empty queue takes any one frame, so every
   * frame the wire allows can be sent.
   */
  enqueue (link: OutboundLink, frame: Uint8Array, isGossip: boolean): void {
    const { counters, init } = this.context
    const key = link.key
    if (link.state === 'closed') return
    if (link.queue.length >= init.sendQueueFrames || (link.queue.length > 0 && link.queuedBytes + frame.length > init.sendQueueBytes)) {
      const byBytes = link.queue.length < init.sendQueueFrames
      if (byBytes) counters.queueByteOverflows++
      else counters.queueOverflows++
      this.context.log('send queue to %s passed its %s bound; dropping the neighbour', key, byBytes ? 'byte' : 'frame')
      this.context.shun(key, new Error(`send queue over its ${byBytes ? 'byte' : 'frame'} bound`))
      return
    }
    link.queue.push(frame)
    link.queuedBytes += frame.length
    if (link.queuedBytes > counters.sendQueuePeakBytes) counters.sendQueuePeakBytes = link.queuedBytes
    link.lastUsed = Date.now()
    if (isGossip && link.queuedBytes > init.sendQueueBytes / 2) {
      // It is not keeping up: payloads to it go lazy (IHAVE) until it reads and GRAFTs.
      if (!link.congested) counters.queueCongestions++
      link.congested = true
      this.context.handle({ type: 'congested', peer: key })
    }
    if (link.state === 'open') void this.pump(link)
  }

  /** The link to `key` for `protocol`, opened if there is none; closed already if it cannot be opened now. */
  link (key: PeerKey, protocol: OverlayProtocol): OutboundLink {
    const id = linkId(key, protocol)
    const existing = this.links.get(id)
    if (existing !== undefined && existing.state !== 'closed') return existing
    const link: OutboundLink = { key, protocol, state: 'opening', queue: [], queuedBytes: 0, congested: false, pumping: false, lastUsed: Date.now() }
    this.links.set(id, link)
    void this.open(link)
    return link
  }

  /** Whether we hold (or are opening) a link to `key` on either protocol. */
  has (key: PeerKey): boolean {
    return PROTOCOLS.some((protocol) => this.links.has(linkId(key, protocol)))
  }

  /** Closes our links to `key` at once (a draining or misbehaving peer); its queued frames are discarded. */
  closePeer (key: PeerKey, reason: Error): void {
    for (const protocol of PROTOCOLS) {
      const link = this.links.get(linkId(key, protocol))
      if (link !== undefined && link.state !== 'closed') this.closeLink(link, reason)
    }
  }

  /** Every topic learns the link to `key` is gone; its other links close too. */
  linkDown (key: PeerKey): void {
    this.closePeer(key, new Error('link down'))
    this.context.handle({ type: 'linkDown', peer: key })
  }

  /** Closes our links to a peer no topic has as a neighbour any more, once they drain. */
  maybeRelease (key: PeerKey): void {
    if (this.context.node()?.isNeighbor(key) === true) return
    for (const protocol of PROTOCOLS) {
      const link = this.links.get(linkId(key, protocol))
      if (link !== undefined) link.lastUsed = Math.min(link.lastUsed, Date.now() - this.context.init.linkIdleMs + 1000)
    }
  }

  /** Closes idle, drained links no topic needs, and releases connections nothing uses. */
  sweep (now: number): void {
    for (const link of [...this.links.values()]) {
      if (link.state !== 'open' || link.queue.length > 0 || now - link.lastUsed < this.context.init.linkIdleMs) continue
      if (this.context.node()?.isNeighbor(link.key) === true) continue
      // Idle and drained: close gracefully rather than abort.
      link.state = 'closed'
      this.links.delete(linkId(link.key, link.protocol))
      void link.stream?.close().catch(() => {})
    }
    void this.connections.sweep(now).catch((err: unknown) => { this.context.log.error('releasing unused connections failed - %e', err) })
  }

  /** The overlay is stopping: every link is aborted and the connection bookkeeping dropped. */
  closeAll (reason: Error): void {
    for (const link of [...this.links.values()]) this.closeLink(link, reason)
    this.connections.clear()
  }

  /** Bytes queued on every link now (frames waiting, and the one being written). */
  queuedBytes (): number {
    let bytes = 0
    for (const link of this.links.values()) bytes += link.queuedBytes
    return bytes
  }

  private async open (link: OutboundLink): Promise<void> {
    const { counters, init } = this.context
    const signal = AbortSignal.timeout(init.linkOpenTimeoutMs)
    try {
      // Dialling a node that is draining would hold it open past its deadline (the drainer
      // waits for its peers to leave), and the overlay stream would be refused anyway. A
      // draining node itself links to no one: it would call back the peers it sent away.
      if (this.context.isDeparting(link.key)) throw new Error('peer is draining')
      if (this.context.isShunned(link.key)) throw new Error('peer misbehaved recently')
      if (this.context.draining()) throw new Error('this node is draining')
      const peer = peerIdFromString(link.key)
      const decision = init.admit?.(peer) ?? { admitted: true }
      if (!decision.admitted) throw new Error(`peer not admitted: ${decision.reason}`)
      const connection = await this.connect(peer, signal)
      const stream = await connection.newStream(this.context.protocolIds[link.protocol], { signal })
      const lp = lpStream(stream, { maxDataLength: this.context.limits.maxFrameBytes })
      const preamble = decodePreamble((await lp.read({ signal })).subarray())
      if (preamble === undefined) throw new Error('malformed preamble')
      if (!preamble.accepted) {
        counters.refusalsReceived++
        if (preamble.reason === 'draining') this.context.handle({ type: 'draining', peer: link.key })
        const refusal = new OverlayRefusedError(link.key, preamble.reason)
        this.refusals.notify(refusal)
        throw refusal
      }
      if (link.state === 'closed') {
        stream.abort(new Error('link closed while opening'))
        return
      }
      link.stream = stream
      link.lp = lp
      link.state = 'open'
      stream.addEventListener('close', () => { this.fail(link, new Error('stream closed')) }, { once: true })
      void this.pump(link)
    } catch (err) {
      this.context.log('link to %s (%s) failed to open - %e', link.key, link.protocol, err)
      this.fail(link, err)
    }
  }

  private async connect (peer: PeerId, signal: AbortSignal): Promise<Connection> {
    const { components, counters } = this.context
    const existing = components.connectionManager.getConnections(peer).find((connection) => connection.status === 'open' && connection.limits === undefined)
    if (existing !== undefined) return existing
    const known = await components.peerStore.get(peer).then((record) => record.addresses.length, () => 0)
    if (known === 0) {
      // The node decides whether to look the peer up, and whom to ask; the driver asks.
      const node = this.context.node()
      if (node === undefined) throw new OverlayNotStartedError()
      const key = peer.toString()
      const decision = node.handle({ type: 'addressesNeeded', peer: key }, Date.now())
        .find((action) => action.type === 'lookup' || action.type === 'unreachable')
      if (decision?.type === 'unreachable') {
        counters.addressLookupsSkipped++
        throw new Error('no address known for the peer (none found on the last lookup)')
      }
      if (decision?.type === 'lookup') {
        const found = await this.addresses.lookup(peer, decision.ask, signal)
        this.context.node()?.handle({ type: 'lookupDone', peer: key, found }, Date.now())
      }
    }
    const before = new Set(components.connectionManager.getConnections(peer).map((connection) => connection.id))
    const connection = await components.connectionManager.openConnection(peer, { signal })
    this.connections.adopt(connection, before)
    return connection
  }

  /**
   * Whether the overlay needs `key`'s connection: a neighbour in some topic, a link of ours
   * opening or open (a pending request holds one), or a bootstrap contact.
   */
  private needsPeer (key: PeerKey): boolean {
    for (const protocol of PROTOCOLS) {
      const link = this.links.get(linkId(key, protocol))
      if (link !== undefined && link.state !== 'closed') return true
    }
    if (this.context.node()?.isNeighbor(key) === true) return true
    return this.context.init.bootstrap?.().some((contact) => contact.toString() === key) ?? false
  }

  private async pump (link: OutboundLink): Promise<void> {
    if (link.pumping || link.lp === undefined) return
    link.pumping = true
    try {
      while (link.state === 'open' && link.queue.length > 0) {
        const frame = link.queue.shift()
        if (frame === undefined) continue
        // Counted as queued until written: a neighbour that does not read holds the write.
        await link.lp.write(frame)
        link.queuedBytes -= frame.length
        if (link.congested && link.queuedBytes <= this.context.init.sendQueueBytes / 2) link.congested = false
      }
    } catch (err) {
      this.fail(link, err)
    } finally {
      link.pumping = false
    }
  }

  private fail (link: OutboundLink, err: unknown): void {
    if (link.state === 'closed') return
    this.closeLink(link, err instanceof Error ? err : new Error(String(err)))
    this.context.counters.linkFailures++
    this.linkDown(link.key)
  }

  /** Drops a link at once: its queued frames are discarded and its stream is aborted. */
  private closeLink (link: OutboundLink, reason: Error): void {
    link.state = 'closed'
    link.queue = []
    link.queuedBytes = 0
    link.stream?.abort(reason)
    this.links.delete(linkId(link.key, link.protocol))
  }
}
