/** The IPC messages between a fleet test and its swarm children (swarm-child.ts). */
export interface SwarmPeerSpec {
  /** Hex of the 32-byte ed25519 seed: the parent derives the same peer ID to register it. */
  seed: string
  bootstrap: string[]
  beaconConnections: number
}

export interface SwarmConfig {
  network: string
  networkSize: number
  /** Authors every peer follows (their entries count as delivered). */
  follow: string[]
  peers: SwarmPeerSpec[]
}

export type SwarmCommand =
  | { type: 'start', concurrency: number }
  | { type: 'publish', id: number, peer: number, text: string }
  | { type: 'missing', cids: string[] }
  | { type: 'sync' }
  | { type: 'stop' }

export interface PeerDeliveries {
  index: number
  running: boolean
  missing: number
  sample: string[]
  /** Entries that arrived only through the final sync, not gossip. */
  bySync: number
}

export type SwarmReply =
  | { type: 'ready' }
  | { type: 'started', failures: string[] }
  | { type: 'published', id: number, cid: string, ms: number }
  | { type: 'publish-failed', id: number, error: string }
  | { type: 'missing', perPeer: PeerDeliveries[] }
  | { type: 'synced', failures: string[] }
