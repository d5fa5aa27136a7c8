/** IPC between the admission bench (run.ts) and its child processes. */

/** When something happened: `Date.now()` in the child, which the parent sorts into phases. */
type At = { at: number }

/** A canary ping not answered by then is lost, and counts as this long (guess: well past any idle p99). */
export const PING_TIMEOUT_MS = 5000

// probe-child.ts: the canary (an established peer pinging), the honest peer (dialling again
// and again) and a /healthz poller.
export interface ProbeStart {
  type: 'start'
  /** The worker's TCP multiaddr, ending in /p2p/<peer id>. */
  target: string
  httpUrl: string
  canary: { key: string, source: string, intervalMs: number }
  honest: { key: string, source: string, intervalMs: number }
  healthzIntervalMs: number
}
export type ProbeCommand = ProbeStart | { type: 'stop' }
export type ProbeEvent =
  | { type: 'ready' }
  | { type: 'started' }
  | ({ type: 'ping', ms: number, ok: boolean, reason?: string } & At)
  | ({ type: 'dial', ms: number, ok: boolean, reason?: string } & At)
  | ({ type: 'healthz', ms: number, ok: boolean } & At)
  | ({ type: 'canary-closed' } & At)
  | { type: 'stopped' }

// dial-child.ts: libp2p connections with their own identities at a set rate, held (the
// CPU-per-accept stream).
export interface DialRun {
  type: 'run'
  target: string
  ratePerSecond: number
  /** Source addresses, used in turn. */
  sources: string[]
  /** Stop after this many dials… */
  count: number
  /** …or after this long, whichever comes first. */
  durationMs: number
  /** Dials in flight at most; a dial due when this many are in flight is skipped and counted. */
  concurrency: number
  /** Private keys (protobuf, hex) to dial with, in turn; fresh keys when absent. */
  keys?: string[]
}
export type DialCommand = DialRun | { type: 'release' } | { type: 'stop' }
export type DialEvent =
  | { type: 'ready' }
  | ({ type: 'dialled', ms: number, ok: boolean, reason?: string } & At)
  | { type: 'run-done', startedAt: number, endedAt: number, skipped: number, lastOpenedAt: number }
  | { type: 'released' }

// slot-attack-child.ts: raw sockets that stop partway through multistream-select.
export interface SlotAttackStart {
  type: 'start'
  host: string
  port: number
  sources: string[]
  socketsPerSource: number
  /** Opens per source in any one second, at most (under the worker's per-IP rate). */
  opensPerSourcePerSecond: number
  /** Bytes of the multistream header sent at once. */
  firstBytes: number
  /** Every other socket then sends one more byte each this often; the rest go silent. */
  trickleIntervalMs: number
}
export interface SlotAttackStats {
  opens: number
  /** Sockets the worker closed. */
  closedByWorker: number
  /** Of those, closed within 100 ms of connecting: refused at accept. */
  refusedAtAccept: number
  /** How long the worker held the others open (ms). */
  heldMs: number[]
  /** The most sockets open at once. */
  peakOpen: number
}
export type SlotAttackCommand = SlotAttackStart | { type: 'status' } | { type: 'stop' }
export type SlotAttackEvent =
  | { type: 'ready' }
  | { type: 'status', open: number }
  | ({ type: 'stopped' } & SlotAttackStats)

// flood-child.ts: raw connections that complete Noise with a fresh identity, then hang up.
export interface FloodRun {
  type: 'run'
  host: string
  port: number
  ratePerSecond: number
  /** Source addresses, used in turn. */
  sources: string[]
  durationMs: number
  /** Handshakes in flight at most; one due while this many are in flight is skipped and counted. */
  concurrency: number
}
export type FloodCommand = FloodRun | { type: 'stop' }
export type FloodEvent =
  | { type: 'ready' }
  | { type: 'run-done', startedAt: number, endedAt: number, completed: number, failures: string[], skipped: number }
