import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import type { BlockSendBudget, BlockSendGrant } from '@helia/bitswap'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export interface BitswapSendBudgetInit {
  /** Bytes read for one peer and not yet sent (PHAROS_BITSWAP_PEER_BYTES_IN_FLIGHT). */
  peerBytes: number
  /** Bytes read for all peers and not yet sent (PHAROS_BITSWAP_BYTES_IN_FLIGHT). */
  totalBytes: number
  /** The size of a stored block, or undefined when it is not stored (or known corrupt). */
  sizeOf: (cid: CID, options?: AbortOptions) => Promise<number | undefined>
  /** Counts each block that had to wait, by the limit that held it. */
  limits?: Pick<LimitMetrics, 'blocked'>
}

/** What the budget holds now, and the most it ever held (a gauge and the tests read it). */
export interface BitswapSendBudgetSnapshot {
  bytesInFlight: number
  peersInFlight: number
  peersWaiting: number
  /** The most bytes in flight at once, for all peers and for any single peer. */
  peakBytesInFlight: number
  peakPeerBytesInFlight: number
}

interface Waiter {
  peer: string
  bytes: number
  grant: (grant: BlockSendGrant) => void
}

/**
 * The Bitswap send budget (the `sendBudget` hook of our @helia/bitswap patch,
 * docs/upstream.md): Bitswap reads a block to send only once this budget holds room for it,
 * and gives the room back when the message carrying the block was written to the peer's
 * stream, or failed. So what serving blocks holds in memory is bounded per peer and in all,
 * whoever the peers are (unregistered peers are served too), and a peer that never reads
 * costs at most its share until PHAROS_BITSWAP_SEND_STALL_MS aborts its stream.
 *
 * Fair shares: when the total is contended, freed room goes first to the waiting peer that
 * holds the least, so a peer holding its full share waits behind one holding nothing; a
 * waiter that does not fit the total holds the line (no starving large blocks). A peer at
 * its own cap does not hold the line for others.
 *
 * A block larger than a cap is still sent, alone: when the peer (or everyone) holds nothing.
 */
export class BitswapSendBudget implements BlockSendBudget {
  private readonly init: BitswapSendBudgetInit
  private readonly heldByPeer = new Map<string, number>()
  private held = 0
  private readonly waiting: Waiter[] = []
  private peakHeld = 0
  private peakPeerHeld = 0

  constructor (init: BitswapSendBudgetInit) {
    this.init = init
  }

  async sizeOf (cid: CID, options?: AbortOptions): Promise<number | undefined> {
    return await this.init.sizeOf(cid, options)
  }

  tryAcquire (peer: PeerId, bytes: number): BlockSendGrant | undefined {
    const key = peer.toString()
    if (!this.fitsPeer(key, bytes)) {
      this.init.limits?.blocked('bitswapPeerBytesInFlight')
      return undefined
    }
    // Someone already waits for room in the total: queue behind them rather than jump ahead.
    if (!this.fitsTotal(bytes) || this.waiting.some((waiter) => this.fitsPeer(waiter.peer, waiter.bytes))) {
      this.init.limits?.blocked('bitswapBytesInFlight')
      return undefined
    }
    return this.take(key, bytes)
  }

  async acquire (peer: PeerId, bytes: number, options?: AbortOptions): Promise<BlockSendGrant> {
    options?.signal?.throwIfAborted()
    const key = peer.toString()
    return await new Promise<BlockSendGrant>((resolve, reject) => {
      const signal = options?.signal
      const onAbort = (): void => {
        const index = this.waiting.indexOf(waiter)
        if (index >= 0) this.waiting.splice(index, 1)
        reject(signal?.reason)
        // The line may have been held by this waiter.
        this.pump()
      }
      const waiter: Waiter = {
        peer: key,
        bytes,
        grant: (grant) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(grant)
        }
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiting.push(waiter)
      this.pump()
    })
  }

  snapshot (): BitswapSendBudgetSnapshot {
    return {
      bytesInFlight: this.held,
      peersInFlight: this.heldByPeer.size,
      peersWaiting: new Set(this.waiting.map((waiter) => waiter.peer)).size,
      peakBytesInFlight: this.peakHeld,
      peakPeerBytesInFlight: this.peakPeerHeld
    }
  }

  private fitsPeer (peer: string, bytes: number): boolean {
    const held = this.heldByPeer.get(peer) ?? 0
    return held === 0 || held + bytes <= this.init.peerBytes
  }

  private fitsTotal (bytes: number): boolean {
    return this.held === 0 || this.held + bytes <= this.init.totalBytes
  }

  private take (peer: string, bytes: number): BlockSendGrant {
    const peerHeld = (this.heldByPeer.get(peer) ?? 0) + bytes
    this.heldByPeer.set(peer, peerHeld)
    this.held += bytes
    this.peakHeld = Math.max(this.peakHeld, this.held)
    this.peakPeerHeld = Math.max(this.peakPeerHeld, peerHeld)
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        const left = (this.heldByPeer.get(peer) ?? bytes) - bytes
        if (left > 0) this.heldByPeer.set(peer, left)
        else this.heldByPeer.delete(peer)
        this.held -= bytes
        this.pump()
      }
    }
  }

  /** Grants waiters while room lasts, the waiter whose peer holds least first. */
  private pump (): void {
    for (;;) {
      let chosen = -1
      let chosenHeld = Infinity
      for (let index = 0; index < this.waiting.length; index++) {
        const waiter = this.waiting[index]
        if (waiter === undefined || !this.fitsPeer(waiter.peer, waiter.bytes)) continue
        const held = this.heldByPeer.get(waiter.peer) ?? 0
        if (held < chosenHeld) {
          chosen = index
          chosenHeld = held
        }
      }
      const waiter = this.waiting[chosen]
      if (waiter === undefined || !this.fitsTotal(waiter.bytes)) return
      this.waiting.splice(chosen, 1)
      waiter.grant(this.take(waiter.peer, waiter.bytes))
    }
  }
}
