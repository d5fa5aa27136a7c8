import { canonicalAccountId } from '../accounts/account-registry.ts'
import type { Logger } from '../logging/logger.ts'
import type { FleetMetricsHooks } from './fleet-metrics-hooks.ts'
import type { FleetKeys } from './keys.ts'
import type { FleetRedis } from './redis-connection.ts'

/** An account registered or removed through one worker's registry. */
export interface AccountChange {
  op: 'add' | 'remove'
  /** The canonical peer ID (canonicalAccountId). */
  peer: string
}

/**
 * What the fleet's workers hear of an account change: the accounts to re-read from Postgres,
 * or `all` when this worker may have missed changes (Redis came back, the subscription was
 * renewed) and must reload the whole registry.
 */
export type AccountsChanged = readonly string[] | 'all'

/**
 * Account changes told across the fleet at once (issue 20), rather than at each worker's next
 * PHAROS_ACCOUNTS_REFRESH_MS reload. An event only says which account changed: Postgres is the
 * source of truth, and the worker that hears it re-reads that account there, so events that
 * arrive out of order (two workers changing one account at once) still end in the stored state.
 * The periodic reload stays the fallback for changes made outside the API (an external feeder
 * writing the table) and for events lost while Redis was away.
 */
export interface AccountSync {
  /** Tells the fleet an account changed through this worker. Never throws; false if Redis did not take it. */
  announce: (change: AccountChange) => Promise<boolean>
  /** Told of changes made through other workers (see AccountsChanged). Returns the remover. */
  onRemoteChange: (listener: (changed: AccountsChanged) => void) => () => void
}

type AccountEventMessage = AccountChange & { origin: string }

/** Events larger than this are not ours (an account event is ~120 bytes). */
const MAX_EVENT_BYTES = 4096

/** An account event from the channel, or undefined if it is not one. */
export function parseAccountEvent (message: Buffer): AccountEventMessage | undefined {
  if (message.length > MAX_EVENT_BYTES) return undefined
  let value: unknown
  try {
    value = JSON.parse(message.toString())
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const { op, peer, origin } = value as Record<string, unknown>
  if ((op !== 'add' && op !== 'remove') || typeof peer !== 'string' || peer.length > 128 || typeof origin !== 'string') return undefined
  try {
    if (canonicalAccountId(peer) !== peer) return undefined
  } catch {
    return undefined
  }
  return { op, peer, origin }
}

export interface RedisAccountSyncInit {
  redis: FleetRedis
  keys: FleetKeys
  workerId: string
  log: Logger
  metrics?: Pick<FleetMetricsHooks, 'malformed'>
}

/**
 * Account events on a Redis channel. Nothing is kept in Redis: Postgres holds the accounts, so
 * a worker that (re)subscribes, and may have missed events, is told `all` and reloads.
 */
export class RedisAccountSync implements AccountSync {
  private readonly init: RedisAccountSyncInit
  private readonly log: Logger
  private readonly listeners = new Set<(changed: AccountsChanged) => void>()
  private readonly stops: Array<() => void> = []

  constructor (init: RedisAccountSyncInit) {
    this.init = init
    this.log = init.log.child({ component: 'fleet-accounts' })
  }

  start (): void {
    if (this.stops.length > 0) return
    const { redis, keys } = this.init
    this.stops.push(
      redis.subscribe(keys.accountEvents(), (message) => { this.heard(message) }),
      // Subscribed (again): events sent before, since the worker's first load or while the
      // subscriber was away, were not heard, so reload everything.
      redis.onSubscribed(() => { this.tell('all') })
    )
  }

  stop (): void {
    for (const stop of this.stops.splice(0)) stop()
  }

  async announce (change: AccountChange): Promise<boolean> {
    const { redis, keys, workerId } = this.init
    const event: AccountEventMessage = { ...change, origin: workerId }
    const sent = await redis.command('accounts', async (client) => await client.publish(keys.accountEvents(), JSON.stringify(event)))
    return sent.ok
  }

  onRemoteChange (listener: (changed: AccountsChanged) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private heard (message: Buffer): void {
    const event = parseAccountEvent(message)
    if (event === undefined) {
      this.init.metrics?.malformed.inc({ source: 'account-events' })
      return
    }
    if (event.origin === this.init.workerId) return
    this.tell([event.peer])
  }

  private tell (changed: AccountsChanged): void {
    for (const listener of this.listeners) {
      try {
        listener(changed)
      } catch (err) {
        this.log.error({ err }, 'account change listener threw')
      }
    }
  }
}

/** Accounts of a worker alone: its registry already has every change; nobody else to tell. */
export class LocalAccountSync implements AccountSync {
  async announce (_change: AccountChange): Promise<boolean> { return false }
  onRemoteChange (_listener: (changed: AccountsChanged) => void): () => void { return () => {} }
}
