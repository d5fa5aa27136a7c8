import type { Multiaddr } from '@multiformats/multiaddr'

export type TransportName = 'tcp' | 'ws' | 'circuit' | 'other'

/** The IP (or DNS name) at the start of a multiaddr, or undefined for a relayed address. */
export function hostOf (addr: Multiaddr): string | undefined {
  const first = addr.getComponents()[0]
  if (first === undefined) return undefined
  if (['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(first.name)) return first.value
  return undefined
}

/** A closed set for metric labels: the transport a connection rides on. */
export function transportOf (addr: Multiaddr): TransportName {
  const names = addr.getComponents().map((component) => component.name)
  if (names.includes('p2p-circuit')) return 'circuit'
  if (names.includes('ws') || names.includes('wss')) return 'ws'
  if (names.includes('tcp')) return 'tcp'
  return 'other'
}

/**
 * Flattens the strings of `addr`'s components in place, for an address held as long as its
 * connection. js-multiformats' base58 encoder builds a peer ID one character at a time, so the
 * `/p2p/` component libp2p appends to every connection's remote address is a chain of about
 * forty V8 cons strings, 1.2 KiB per connection held (heap snapshot diff, docs/benchmarks.md);
 * V8 flattens a cons string in place the first time one of its characters is read.
 */
export function flattenComponentValues (addr: Multiaddr): void {
  for (const { value } of addr.getComponents()) {
    if (value !== undefined && value.length > 0) value.charCodeAt(0)
  }
}
