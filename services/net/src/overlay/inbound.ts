/**
 * The overlay streams other peers opened to us: the read loop. The acceptor of a stream
 * first writes a preamble — accepted, or refused with a reason — and a refused peer gets no
 * state at all. Then each frame is decoded (strictly: services/protocol's wire.ts), charged
 * to the neighbour's budget (neighbour-budget.ts), its gossip ID checked against its payload's
 * content hash, and only then handed to the node. A malformed or oversized frame closes the
 * stream and is counted; the link's failure is then the node's to repair.
 */
import { lpStream } from '@libp2p/utils'
import type { Connection, Stream } from '@libp2p/interface'
import { decodeHyParView, decodePlumtree } from '@pharos/protocol/overlay/index.ts'
import type { OverlayProtocol, PeerKey } from '@pharos/protocol/overlay/index.ts'
import type { DriverContext } from './driver-context.ts'
import { encodePreamble } from './driver-frames.ts'
import type { OutboundLinks } from './links.ts'
import type { AdmitDecision } from './overlay-api.ts'

export class InboundStreams {
  private readonly context: DriverContext
  private readonly links: OutboundLinks
  private readonly streams = new Map<PeerKey, Set<Stream>>()

  constructor (context: DriverContext, links: OutboundLinks) {
    this.context = context
    this.links = links
  }

  /** A peer opened an overlay stream to us: read it until it ends. */
  accept (protocol: OverlayProtocol, stream: Stream, connection: Connection): void {
    void this.read(protocol, stream, connection).catch((err: unknown) => {
      this.context.log('inbound %s stream from %p ended - %e', protocol, connection.remotePeer, err)
    })
  }

  /** Whether `key` has an overlay stream open to us. */
  has (key: PeerKey): boolean {
    return this.streams.has(key)
  }

  /** Aborts every stream `key` opened to us (a misbehaving neighbour). */
  abortPeer (key: PeerKey, why: Error): void {
    for (const stream of this.streams.get(key) ?? []) stream.abort(why)
  }

  /** The overlay is stopping. */
  abortAll (reason: Error): void {
    for (const streams of this.streams.values()) for (const stream of streams) stream.abort(reason)
    this.streams.clear()
  }

  private async read (protocol: OverlayProtocol, stream: Stream, connection: Connection): Promise<void> {
    const { counters, init, ledger, limits } = this.context
    const from = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: limits.maxFrameBytes })
    const decision: AdmitDecision = this.context.draining()
      ? { admitted: false, reason: 'draining' }
      : this.context.isShunned(from) ? { admitted: false, reason: 'misbehaving' } : init.admit?.(connection.remotePeer) ?? { admitted: true }
    if (!decision.admitted) {
      // A clear refusal, then nothing: no topic ever hears of this peer.
      counters.refusalsSent[decision.reason]++
      await lp.write(encodePreamble({ accepted: false, reason: decision.reason }))
      await stream.close().catch(() => {})
      return
    }
    await lp.write(encodePreamble({ accepted: true }))
    let streams = this.streams.get(from)
    if (streams === undefined) {
      streams = new Set()
      this.streams.set(from, streams)
    }
    streams.add(stream)
    const unbudgeted = init.unbudgeted?.(connection.remotePeer) ?? false
    try {
      for (;;) {
        let bytes: Uint8Array
        try {
          bytes = (await lp.read()).subarray()
        } catch (err) {
          // A length prefix over the frame bound is refused before the frame is buffered.
          const name = (err as Error).name
          if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError') {
            counters.framesRejected.oversized++
            stream.abort(new Error('oversized frame'))
          } else if (name === 'InvalidMessageLengthError') {
            counters.framesRejected.malformed++
            stream.abort(new Error('malformed length prefix'))
          }
          return
        }
        const decoded = protocol === 'hyparview' ? decodeHyParView(bytes, limits) : decodePlumtree(bytes, limits)
        if (!decoded.ok) {
          counters.framesRejected[decoded.code]++
          this.context.log('closing %s stream from %s: %s frame', protocol, from, decoded.code)
          stream.abort(new Error(`${decoded.code} frame`))
          return
        }
        const { topic, message } = decoded.value
        if (this.context.node()?.hasTopic(topic) !== true) {
          // The node routes it nowhere and says so (`unknownTopic`); it costs no budget.
          this.context.handle({ type: 'frame', topic, from, message })
          continue
        }
        // Before anything costs us work (the hash of a payload, a topic's state): a frame over
        // the neighbour's budget, or one no honest node sends, is dropped and costs it score.
        const offence = ledger.charge(from, topic, message, Date.now(), unbudgeted)
        if (offence !== undefined) {
          this.context.penalize(from, offence)
          if (this.context.isShunned(from)) return
          continue
        }
        if (message.type === 'gossip' && message.id !== await init.messageIdOf(this.context.shortName(topic), message.payload)) {
          // Checked before any topic sees it: an ID not bound to its payload would let one
          // payload be cached and forwarded under any number of IDs, or squat another's ID.
          counters.framesRejected['bad-message-id']++
          this.context.log('closing %s stream from %s: gossip ID is not its payload\'s content hash', protocol, from)
          const why = new Error('gossip message ID is not the content hash of its payload')
          stream.abort(why)
          this.context.shun(from, why)
          return
        }
        this.context.handle({ type: 'frame', topic, from, message })
      }
    } finally {
      streams.delete(stream)
      if (streams.size === 0) this.streams.delete(from)
      // Our end too: a stream is only released once both sides closed their writable end, and
      // a half-open one kept its connection in use (connection-release.ts).
      if (stream.status === 'open') void stream.close().catch(() => {})
      // The sender closed its link: a failure only if it was our neighbour or owed us a reply
      // (a former neighbour closing its idle link has not left the passive view).
      if (this.context.started() && this.context.node()?.isLinked(from) === true) this.links.linkDown(from)
    }
  }
}
