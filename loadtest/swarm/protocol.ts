/** IPC between the swarm coordinator (cli.ts) and its children (light-child.ts, full-child.ts). */

export type Transport = 'tcp' | 'ws'

/** One light connection to open (the child makes it a fresh key): a target and a source address. */
export interface LightSpec {
  id: number
  target: string
  /** The loopback address the connection is bound to (127.x.y.z), so per-IP limits do not apply. */
  source: string
}

export type LightCommand =
  | { type: 'open', specs: LightSpec[], concurrency: number }
  | { type: 'close', ids: number[] }
  | { type: 'status' }
  | { type: 'stop' }

export type LightReply =
  | { type: 'ready' }
  | { type: 'opened', id: number, ms: number }
  | { type: 'open-failed', id: number, reason: string, message: string }
  | { type: 'batch-done' }
  | { type: 'closed-by-remote', id: number }
  | { type: 'status', held: number, rssBytes: number, heapBytes: number }

export interface FullPeerSpec {
  seed: string
  /** Bootstrap multiaddrs (each ending in /p2p/<worker>), a TCP or WS one first. */
  bootstrap: string[]
}

export interface FullConfig {
  network: string
  networkSize: number
  attachmentBytes: number
  peers: FullPeerSpec[]
}

export type FullCommand =
  | { type: 'start', concurrency: number, intervalMs: number }
  | { type: 'publish', id: number, peer: number }
  | { type: 'fetch', id: number, peer: number, author: string }
  | { type: 'status' }
  | { type: 'stop' }

export type FullReply =
  | { type: 'ready' }
  | { type: 'joined', peer: number, ms: number }
  | { type: 'join-failed', peer: number, reason: string, message: string }
  | { type: 'started' }
  | { type: 'published', id: number, peer: number, author: string, pinnedMs: number }
  | { type: 'publish-failed', id: number, reason: string }
  | { type: 'fetched', id: number, bytes: number, ms: number }
  | { type: 'fetch-failed', id: number, reason: string }
  | { type: 'status', held: number, rssBytes: number }

/** A failure reason with a closed set of values where possible: the error's name. */
export function reasonOf (err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' ? `${err.name}:${code}` : err.name
  }
  return 'unknown'
}
