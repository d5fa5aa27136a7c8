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
