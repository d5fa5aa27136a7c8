/** What the HTTP surface may read of the libp2p node; main adapts the real node to this. */
export interface PeerConnectionSummary {
  remoteAddr: string
  transport: string
  direction: 'inbound' | 'outbound'
  openedAt: string
}

export interface PeerSummary {
  peerId: string
  connections: PeerConnectionSummary[]
}

export interface NodeView {
  peerId (): string
  multiaddrs (): string[]
  /** Connected peers, at most `limit`, and how many there are in all. */
  peers (limit: number): { total: number, peers: PeerSummary[] }
}
