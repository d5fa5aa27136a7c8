/**
 * Drain notices on the wire (`/<network>/drain/1.0.0`, one DrainNotice per stream). A worker
 * that is stopping tells its peers which sibling workers to move to. The other side takes a
 * notice only from a node `drainTrust` names (a beacon: its fleet's workers; the SDK: its
 * beacons), hands the siblings to `onDrain` listeners (the peer SDK dials them), and never
 * puts their addresses in the peer store: anyone else's notice is refused and counted.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { Listeners } from '@pharos/protocol/listeners.ts'
import type { DriverContext } from './driver-context.ts'
import { decodeDrainNotice, encodeDrainNotice, MAX_ADDRS_PER_PEER, MAX_LOOKUP_PEERS } from './driver-frames.ts'
import type { AddrRecord } from './driver-frames.ts'
import { DrainNoticeRefusedError } from './overlay-api.ts'
import type { DrainNotice, PeerAddrs } from './overlay-api.ts'

/** Drain notices written at once (guess: keeps a drain of thousands of peers to a few seconds without a burst of streams). */
const DRAIN_CONCURRENCY = 32
/** A drain notice is small (≤ 32 siblings × 8 addresses); anything past this is not one. */
const MAX_DRAIN_NOTICE_BYTES = 64 * 1024
/** Opening a stream and writing one notice, or reading one (guess). */
const DRAIN_NOTICE_TIMEOUT_MS = 5000

export class DrainNotices {
  private readonly context: DriverContext
  readonly protocol: string
  private readonly listeners = new Listeners<DrainNotice>((err) => { this.context.log.error('drain listener failed - %e', err) })

  constructor (context: DriverContext) {
    this.context = context
    this.protocol = `/${context.init.network}/drain/1.0.0`
  }

  onDrain (listener: (notice: DrainNotice) => void): () => void {
    return this.listeners.add(listener)
  }

  /**
   * Tells each of `targets` that is connected to move to one of `siblings`. The sibling list
   * is rotated per peer, so the peers spread evenly over the siblings. Resolves with the
   * peers that took the notice (they speak the protocol, so they will move).
   */
  async send (siblings: readonly PeerAddrs[], targets: readonly PeerId[], options: { signal?: AbortSignal } = {}): Promise<PeerId[]> {
    const records = siblings.slice(0, MAX_LOOKUP_PEERS).map((sibling) => ({
      peer: sibling.peerId,
      addrs: sibling.multiaddrs.slice(0, MAX_ADDRS_PER_PEER).flatMap((text) => {
        try { return [multiaddr(text).bytes] } catch { return [] }
      })
    })).filter((record) => record.addrs.length > 0)
    if (records.length === 0) return []
    const told: PeerId[] = []
    const queue = targets.map((peer, i) => ({ peer, first: i % records.length }))
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        if (options.signal?.aborted === true) return
        const order = [...records.slice(next.first), ...records.slice(0, next.first)].filter((record) => record.peer !== next?.peer.toString())
        if (order.length > 0 && await this.sendOne(next.peer, encodeDrainNotice(order), options.signal)) told.push(next.peer)
      }
    }
    await Promise.all(Array.from({ length: Math.min(DRAIN_CONCURRENCY, queue.length) }, worker))
    return told
  }

  private async sendOne (peer: PeerId, notice: Uint8Array, signal: AbortSignal | undefined): Promise<boolean> {
    const connection = this.context.components.connectionManager.getConnections(peer).find((c) => c.status === 'open')
    if (connection === undefined) return false
    const timeout = AbortSignal.timeout(DRAIN_NOTICE_TIMEOUT_MS)
    const bounded = signal === undefined ? timeout : AbortSignal.any([signal, timeout])
    try {
      const stream = await connection.newStream(this.protocol, { signal: bounded, runOnLimitedConnection: true })
      await lpStream(stream, { maxDataLength: MAX_DRAIN_NOTICE_BYTES }).write(notice, { signal: bounded })
      await stream.close({ signal: bounded })
      this.context.counters.drainNoticesSent++
      return true
    } catch (err) {
      this.context.log('drain notice to %p not delivered - %e', peer, err)
      return false
    }
  }

  /**
   * A drain notice, taken as far as `drainTrust` says of its sender. The siblings' addresses go
   * to the listeners only, never into the peer store: the peer store answers address lookups
   * and feeds our own dials, and a notice is not a reason to vouch for, or dial, what it names.
   */
  async read (stream: Stream, connection: Connection): Promise<void> {
    const { counters, init, log } = this.context
    const trust = init.drainTrust(connection.remotePeer)
    if (trust === 'refused') {
      counters.drainNoticesRefused++
      log('drain notice from %p refused: not a node whose drain we take', connection.remotePeer)
      stream.abort(new DrainNoticeRefusedError())
      return
    }
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_DRAIN_NOTICE_BYTES })
      const records = decodeDrainNotice((await lp.read({ signal: AbortSignal.timeout(DRAIN_NOTICE_TIMEOUT_MS) })).subarray())
      if (records === undefined) {
        counters.framesRejected.malformed++
        stream.abort(new Error('malformed drain notice'))
        return
      }
      await stream.close().catch(() => {})
      const siblings: PeerAddrs[] = trust === 'siblings' ? this.siblingsOf(records, connection.remotePeer) : []
      counters.drainNoticesReceived++
      // The node closes our links to it, every topic forgets it, and none links to it again for a while.
      this.context.handle({ type: 'draining', peer: connection.remotePeer.toString() })
      const notice = { from: connection.remotePeer, siblings }
      this.listeners.notify(notice)
    } catch (err) {
      log('drain notice from %p unreadable - %e', connection.remotePeer, err)
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  /** The well-formed sibling records of a notice from `sender` (not itself, not us), as text. */
  private siblingsOf (records: readonly AddrRecord[], sender: PeerId): PeerAddrs[] {
    const siblings: PeerAddrs[] = []
    for (const record of records) {
      try {
        if (peerIdFromString(record.peer).equals(sender) || record.peer === this.context.self) continue
      } catch {
        continue
      }
      const multiaddrs = record.addrs.flatMap((bytes) => {
        try { return [multiaddr(bytes).toString()] } catch { return [] }
      })
      if (multiaddrs.length > 0) siblings.push({ peerId: record.peer, multiaddrs })
    }
    return siblings
  }
}
