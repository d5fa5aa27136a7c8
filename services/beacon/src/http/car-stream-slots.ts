/** A CAR stream refused because a concurrency cap is full: the config key of the cap, and its value. */
export interface SlotRefusal {
  key: 'gatewayCarMaxStreams' | 'gatewayCarMaxStreamsPerIp'
  limit: number
}

export interface CarStreamSlotLimits {
  /** CAR streams open at once on this worker. */
  maxStreams: number
  /** CAR streams open at once for one client (see `sourceKey`, net/source-address.ts). */
  maxStreamsPerClient: number
}

/**
 * Counts the CAR streams open on this worker, in all and per client, and refuses one more
 * than either cap allows. A slot is held from before the root is read until the response
 * closes (sent whole, cut off, or the client went away).
 */
export class CarStreamSlots {
  private readonly limits: CarStreamSlotLimits
  private readonly perClient = new Map<string, number>()
  private total = 0

  constructor (limits: CarStreamSlotLimits) {
    this.limits = limits
  }

  /** Streams open now. */
  get open (): number {
    return this.total
  }

  /** A slot for `client`, released once by calling `release` (later calls do nothing); or which cap is full. */
  acquire (client: string): { release: () => void } | SlotRefusal {
    const held = this.perClient.get(client) ?? 0
    // The client's own cap first: a client at its cap is told so even when the worker is full too.
    if (held >= this.limits.maxStreamsPerClient) return { key: 'gatewayCarMaxStreamsPerIp', limit: this.limits.maxStreamsPerClient }
    if (this.total >= this.limits.maxStreams) return { key: 'gatewayCarMaxStreams', limit: this.limits.maxStreams }
    this.perClient.set(client, held + 1)
    this.total++
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        this.total--
        const left = (this.perClient.get(client) ?? 1) - 1
        if (left === 0) this.perClient.delete(client)
        else this.perClient.set(client, left)
      }
    }
  }
}
