import { isIPv6 } from 'node:net'

/** A CAR stream refused because a concurrency cap is full: the config key of the cap, and its value. */
export interface SlotRefusal {
  key: 'gatewayCarMaxStreams' | 'gatewayCarMaxStreamsPerIp'
  limit: number
}

export interface CarStreamSlotLimits {
  /** CAR streams open at once on this worker. */
  maxStreams: number
  /** CAR streams open at once for one client (see `clientKey`). */
  maxStreamsPerClient: number
}

/**
 * Who a request counts against for the per-client cap: its IPv4 address (an IPv4-mapped
 * IPv6 address is the IPv4 one), or the /64 prefix of its IPv6 address, since one host
 * commonly holds a whole /64 and could otherwise open a stream from every address in it.
 */
export function clientKey (ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip)
  if (mapped?.[1] !== undefined) return mapped[1]
  const address = ip.split('%')[0] ?? ip
  if (!isIPv6(address)) return ip
  const [head = '', tail] = address.split('::')
  // A dotted IPv4 tail is two 16-bit groups; it is in the low 64 bits either way.
  const groups = (part: string): string[] => part === '' ? [] : part.split(':').flatMap((group) => group.includes('.') ? ['0', '0'] : [group])
  const high = groups(head)
  const low = tail === undefined ? [] : groups(tail)
  const all = [...high, ...Array<string>(Math.max(8 - high.length - low.length, 0)).fill('0'), ...low]
  return `${all.slice(0, 4).map((group) => Number.parseInt(group, 16).toString(16)).join(':')}::/64`
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
