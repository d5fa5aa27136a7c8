/**
 * Addresses of peers the overlay learns by key only. HyParView names peers by key (the peer
 * ID string); a peer learned from a FORWARDJOIN or SHUFFLE may be unknown to our peer store,
 * so we ask the peer that told us about it (`/<network>/peer-addrs/1.0.0`), which by
 * induction knows it, and then our bootstrap peers. The node decides whether to ask and whom
 * (its back-off for peers nobody had an address for); this part asks over the wire, answers
 * others' lookups from the peer store, and files addresses learnt out of band.
 * See docs/overlay-driver.md.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import type { PeerKey } from '@pharos/protocol/overlay/index.ts'
import type { DriverContext } from './driver-context.ts'
import { decodeAddrRequest, decodeAddrResponse, encodeAddrRequest, encodeAddrResponse, MAX_ADDRS_PER_PEER } from './driver-frames.ts'

/** A lookup request names a few peer keys: anything past this is not one. */
const MAX_REQUEST_BYTES = 4096
/** An answer holds at most MAX_LOOKUP_PEERS records of MAX_ADDRS_PER_PEER addresses. */
const MAX_RESPONSE_BYTES = 64 * 1024
/** Reading a lookup request (guess: the asker writes it as soon as the stream is open). */
const REQUEST_TIMEOUT_MS = 5000

export class AddressLookup {
  private readonly context: DriverContext
  readonly protocol: string

  constructor (context: DriverContext) {
    this.context = context
    this.protocol = `/${context.init.network}/peer-addrs/1.0.0`
  }

  /**
   * Files peers learnt out of band with their addresses in the peer store, so they can be
   * dialled; returns the keys of those that had a well-formed address (malformed ones are
   * skipped).
   */
  async remember (peers: ReadonlyArray<{ peerId: string, multiaddrs: readonly string[] }>): Promise<PeerKey[]> {
    const keys: PeerKey[] = []
    for (const { peerId, multiaddrs } of peers) {
      if (peerId === this.context.self) continue
      let id: PeerId
      try {
        id = peerIdFromString(peerId)
      } catch {
        continue
      }
      const addrs = multiaddrs.slice(0, MAX_ADDRS_PER_PEER).flatMap((text) => {
        try { return [multiaddr(text)] } catch { return [] }
      })
      if (addrs.length === 0) continue
      await this.context.components.peerStore.merge(id, { multiaddrs: addrs })
      keys.push(peerId)
    }
    return keys
  }

  /** Answers a lookup from an admitted peer with what our peer store holds. */
  async answer (stream: Stream, connection: Connection): Promise<void> {
    const { components, counters, init, log } = this.context
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
      const decision = init.admit?.(connection.remotePeer) ?? { admitted: true }
      const request = decodeAddrRequest((await lp.read({ signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).subarray())
      if (request === undefined || !decision.admitted) {
        stream.abort(new Error(request === undefined ? 'malformed lookup' : 'not admitted'))
        return
      }
      const records = []
      counters.addressLookupsAnswered += request.length
      for (const key of request) {
        try {
          const record = await components.peerStore.get(peerIdFromString(key))
          const addrs = record.addresses.slice(0, MAX_ADDRS_PER_PEER).map((address) => address.multiaddr.bytes)
          if (addrs.length > 0) records.push({ peer: key, addrs })
        } catch {
          // unknown or unparsable peer: nothing to say about it
        }
      }
      await lp.write(encodeAddrResponse(records))
      await stream.close()
    } catch (err) {
      log('address lookup from %p failed - %e', connection.remotePeer, err)
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  /** Asks `askers` (the node's choice: whoever told us about `peer`, then our bootstrap peers), in order, for its addresses; true once one answered with some. */
  async lookup (peer: PeerId, askers: readonly PeerKey[], signal: AbortSignal): Promise<boolean> {
    const { components, counters, log } = this.context
    const key = peer.toString()
    for (const asker of askers) {
      counters.addressLookups++
      try {
        const connection = components.connectionManager.getConnections(peerIdFromString(asker)).find((c) => c.status === 'open')
        if (connection === undefined) continue
        const stream = await connection.newStream(this.protocol, { signal })
        const lp = lpStream(stream, { maxDataLength: MAX_RESPONSE_BYTES })
        await lp.write(encodeAddrRequest([key]))
        const records = decodeAddrResponse((await lp.read({ signal })).subarray())
        await stream.close().catch(() => {})
        const found = records?.find((record) => record.peer === key)
        if (found === undefined || found.addrs.length === 0) continue
        await components.peerStore.merge(peer, { multiaddrs: found.addrs.map((bytes) => multiaddr(bytes)) })
        return true
      } catch (err) {
        log('address lookup of %s via %s failed - %e', key, asker, err)
      }
    }
    return false
  }
}
