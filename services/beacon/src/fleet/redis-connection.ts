import { Cluster, Redis } from 'ioredis'
import type { ClusterOptions, RedisOptions } from 'ioredis'
import type { Logger } from '../logging/logger.ts'
import type { FleetMetricsHooks, RedisOperation } from './fleet-metrics-hooks.ts'

/** `single`: the URL is one Redis server. `cluster`: it is any node of a Redis Cluster. */
export type RedisMode = 'single' | 'cluster'

/** The command (or subscriber) connection: one server, or a whole Cluster. */
export type RedisClient = Redis | Cluster

export interface OpenFleetRedisOptions {
  /** `redis://` or `rediss://` URL, with credentials if any (REDIS_URL). */
  url: string
  mode: RedisMode
  log: Logger
  /**
   * A command without a reply by then fails, and the caller falls back to local state
   * (guess: a healthy Redis answers in well under a millisecond on a LAN; a second means
   * it is not healthy, and waiting longer would stall message handling).
   * @default 1000
   */
  commandTimeoutMs?: number
  /**
   * Longest wait between reconnect attempts; attempts go on for ever, so a worker resyncs
   * within about this long after Redis returns (guess).
   * @default 2000
   */
  maxReconnectDelayMs?: number
  metrics?: Pick<FleetMetricsHooks, 'redisUp' | 'redisErrors'>
  /** Shown by CLIENT LIST, e.g. the worker name; the subscriber adds `:sub`. */
  connectionName?: string
}

/** What `FleetRedis.command` answers: the reply, or that Redis was down or failed. */
export type CommandResult<T> = { ok: true, value: T } | { ok: false }

/**
 * The fleet's Redis connections: one for commands, one for pub/sub (a subscribed
 * connection can send nothing else). Both reconnect for ever; commands never wait for a
 * connection that is not there.
 */
export interface FleetRedis {
  readonly mode: RedisMode
  /** The command connection. Prefer `command`, which bounds time and counts failures. */
  readonly client: RedisClient
  /** The pub/sub connection. Prefer `subscribe`, which survives reconnects. */
  readonly subscriber: RedisClient
  /** True while the command connection is ready. */
  isUp: () => boolean
  /** Told on every change of `isUp` (transitions only, never twice the same). */
  onStateChange: (listener: (up: boolean) => void) => () => void
  /** Resolves true once up, or false after `timeoutMs` (or on close). */
  waitUntilUp: (timeoutMs: number) => Promise<boolean>
  /**
   * Resolves true once commands can be sent and the subscriber holds every channel asked
   * for so far, or false after `timeoutMs`: after it, nothing published is missed.
   */
  waitUntilReady: (timeoutMs: number) => Promise<boolean>
  /**
   * Runs `run` on the command connection when Redis is up, within the command timeout.
   * Answers `{ ok: false }` at once while Redis is down, and when the command fails (counted
   * under `operation` and logged, rate-limited); never throws.
   */
  command: <T>(operation: RedisOperation, run: (client: RedisClient) => Promise<T>) => Promise<CommandResult<T>>
  /** Counts and logs (rate-limited) a failure of `operation`. */
  failed: (operation: RedisOperation, err: unknown) => void
  /**
   * Delivers every message of `channel` to `listener` (raw bytes), across reconnects.
   * Returns the function that stops it.
   */
  subscribe: (channel: string, listener: (message: Buffer) => void) => () => void
  /** Told each time the subscriber has (re)subscribed to every channel: messages sent while it was away are lost, so resync. */
  onSubscribed: (listener: () => void) => () => void
  close: () => Promise<void>
}

/** A Redis command that got no reply within the command timeout. */
export class RedisCommandTimeoutError extends Error {
  override readonly name = 'RedisCommandTimeoutError'
  constructor (ms: number) {
    super(`Redis gave no reply within ${ms} ms`)
  }
}

/** A pipeline or MULTI that Redis refused as a whole (EXECABORT or a discarded MULTI). */
export class RedisBatchRefusedError extends Error {
  override readonly name = 'RedisBatchRefusedError'
  constructor () {
    super('Redis refused the batch (EXEC answered null)')
  }
}

const DEFAULT_COMMAND_TIMEOUT_MS = 1000
const DEFAULT_MAX_RECONNECT_DELAY_MS = 2000
/** A TCP connect that hangs (host gone, packets dropped) is given up after this (guess). */
const CONNECT_TIMEOUT_MS = 2000
/** At most one warning per kind of failure in this window; the rest are counted into it (guess). */
const WARN_INTERVAL_MS = 10_000

/**
 * Rejects with RedisCommandTimeoutError after `ms`; the promise's own rejection is always handled.
 *
 * A reply that has already arrived wins over the timer. After this process was stalled
 * (descheduled on a loaded machine, a long GC, synchronous work) for longer than `ms`,
 * Node runs the expired timer before it reads the socket the reply is waiting in: the
 * timer only gives up after one more pass of the event loop (`setImmediate` runs after
 * the poll phase that reads sockets), so a stall is not mistaken for a slow Redis.
 * (Mistaking it made two workers both claim a message: docs/fleet.md, "Claims under load".)
 */
export async function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    let settled = false
    const timer = setTimeout(() => {
      setImmediate(() => {
        if (settled) return
        settled = true
        reject(new RedisCommandTimeoutError(ms))
      })
    }, ms)
    promise.then(
      (value) => {
        clearTimeout(timer)
        if (settled) return
        settled = true
        resolve(value)
      },
      (err: unknown) => {
        clearTimeout(timer)
        if (settled) return
        settled = true
        reject(err)
      })
  })
}

/** The replies of a pipeline or MULTI `exec`, each `[error, reply]`; throws if Redis refused it whole. */
export function batchReplies (replies: Array<[Error | null, unknown]> | null): Array<[Error | null, unknown]> {
  if (replies === null) throw new RedisBatchRefusedError()
  return replies
}

/** The first error among a batch's replies, so a batch counts as one failure. */
export function firstBatchError (replies: Array<[Error | null, unknown]>): Error | undefined {
  for (const [err] of replies) if (err !== null) return err
  return undefined
}

/** Warnings of one kind at most once per interval, with how many were held back. */
class WarnLimiter {
  private readonly log: Logger
  private readonly last = new Map<string, { at: number, suppressed: number }>()

  constructor (log: Logger) {
    this.log = log
  }

  warn (kind: string, err: unknown, message: string): void {
    const now = Date.now()
    const seen = this.last.get(kind)
    if (seen !== undefined && now - seen.at < WARN_INTERVAL_MS) {
      seen.suppressed++
      return
    }
    this.log.warn({ err, operation: kind, suppressed: seen?.suppressed ?? 0 }, message)
    this.last.set(kind, { at: now, suppressed: 0 })
  }
}

/** Backoff between reconnects: 50 ms doubling, capped; it never gives up (a number, always). */
function reconnectDelay (maxMs: number): (attempt: number) => number {
  return (attempt) => Math.min(50 * 2 ** Math.min(attempt, 16), maxMs)
}

/** The options shared by every connection of one mode; fail fast, never queue. */
function connectionOptions (options: OpenFleetRedisOptions, commandTimeoutMs: number): RedisOptions {
  return {
    // A command while disconnected fails at once: callers fall back to local state rather
    // than wait (an offline queue would hold message handling hostage to Redis).
    enableOfflineQueue: false,
    // A command caught by a disconnect is given up after one reconnect attempt.
    maxRetriesPerRequest: 1,
    // Our own bound (FleetRedis.command) fires first and is the one acted on; this one
    // covers what does not pass through it (SUBSCRIBE, QUIT).
    commandTimeout: commandTimeoutMs + 250,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // RESP2 replies have the shapes our parsers expect for every command used here
    // (HRANDFIELD WITHVALUES is a flat array); pub/sub has its own connection anyway.
    protocol: 2,
    connectionName: options.connectionName,
    retryStrategy: reconnectDelay(options.maxReconnectDelayMs ?? DEFAULT_MAX_RECONNECT_DELAY_MS)
  }
}

/** A Cluster's startup node and the credentials every node connection uses, from the URL. */
function clusterOf (options: OpenFleetRedisOptions, commandTimeoutMs: number): Cluster {
  const url = new URL(options.url)
  const { retryStrategy: _perNode, enableOfflineQueue: _queue, ...nodeOptions } = connectionOptions(options, commandTimeoutMs)
  const clusterOptions: ClusterOptions = {
    enableOfflineQueue: false,
    clusterRetryStrategy: reconnectDelay(options.maxReconnectDelayMs ?? DEFAULT_MAX_RECONNECT_DELAY_MS),
    slotsRefreshTimeout: commandTimeoutMs,
    redisOptions: {
      ...nodeOptions,
      username: url.username === '' ? undefined : decodeURIComponent(url.username),
      password: url.password === '' ? undefined : decodeURIComponent(url.password),
      tls: url.protocol === 'rediss:' ? {} : undefined
    }
  }
  return new Cluster([{ host: url.hostname, port: url.port === '' ? 6379 : Number(url.port) }], clusterOptions)
}

class FleetRedisConnection implements FleetRedis {
  readonly mode: RedisMode
  readonly client: RedisClient
  readonly subscriber: RedisClient
  private readonly log: Logger
  private readonly warnings: WarnLimiter
  private readonly metrics: OpenFleetRedisOptions['metrics']
  private readonly commandTimeoutMs: number
  private readonly stateListeners = new Set<(up: boolean) => void>()
  private readonly subscribedListeners = new Set<() => void>()
  private readonly channels = new Map<string, Set<(message: Buffer) => void>>()
  private up = false
  /** The subscriber is ready and subscribed to every channel in `channels`. */
  private subscribed = false
  /** The command connection timed out and is being replaced; down until it is ready again. */
  private hung = false
  private closed = false

  constructor (options: OpenFleetRedisOptions) {
    this.mode = options.mode
    this.log = options.log.child({ component: 'fleet-redis' })
    this.warnings = new WarnLimiter(this.log)
    this.metrics = options.metrics
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
    this.metrics?.redisUp.set(0)

    // Both connect in the background: a worker starts degraded when Redis is down at boot.
    this.client = options.mode === 'cluster'
      ? clusterOf(options, this.commandTimeoutMs)
      : new Redis(options.url, connectionOptions(options, this.commandTimeoutMs))
    this.subscriber = this.client instanceof Cluster
      ? this.client.duplicate()
      : this.client.duplicate({ connectionName: options.connectionName === undefined ? undefined : `${options.connectionName}:sub` })

    // An 'error' without a listener would be printed by ioredis; with one it is ours to
    // count and log. Connection errors repeat on every reconnect attempt: rate-limited.
    for (const [connection, which] of [[this.client, 'command'], [this.subscriber, 'subscriber']] as const) {
      connection.on('error', (err: Error) => { this.connectionFailed(which, err) })
      if (connection instanceof Cluster) connection.on('node error', (err: Error) => { this.connectionFailed(which, err) })
    }
    for (const status of ['wait', 'connecting', 'connect', 'ready', 'reconnecting', 'disconnecting', 'close', 'end']) {
      this.client.on(status, () => {
        if (status === 'ready') this.hung = false
        this.checkState()
      })
    }
    this.subscriber.on('ready', () => { this.resubscribe() })
    for (const status of ['reconnecting', 'close', 'end']) this.subscriber.on(status, () => { this.subscribed = false })
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => { this.deliver(channel.toString(), message) })
  }

  isUp (): boolean {
    return this.up
  }

  onStateChange (listener: (up: boolean) => void): () => void {
    this.stateListeners.add(listener)
    return () => { this.stateListeners.delete(listener) }
  }

  async waitUntilUp (timeoutMs: number): Promise<boolean> {
    if (this.up) return true
    if (this.closed) return false
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { stop(); resolve(this.up) }, timeoutMs)
      const stop = this.onStateChange((up) => {
        if (!up) return
        clearTimeout(timer)
        stop()
        resolve(true)
      })
    })
  }

  async waitUntilReady (timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    if (!await this.waitUntilUp(timeoutMs)) return false
    if (this.subscribed) return true
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { stop(); resolve(this.subscribed) }, Math.max(0, deadline - Date.now()))
      const stop = this.onSubscribed(() => {
        clearTimeout(timer)
        stop()
        resolve(true)
      })
    })
  }

  async command<T> (operation: RedisOperation, run: (client: RedisClient) => Promise<T>): Promise<CommandResult<T>> {
    if (!this.up) return { ok: false }
    try {
      // Bounds pipelines and a Cluster waiting for its slot map too, not only single commands.
      return { ok: true, value: await withTimeout(run(this.client), this.commandTimeoutMs) }
    } catch (err) {
      this.failed(operation, err)
      if (err instanceof RedisCommandTimeoutError) this.dropHungConnection()
      return { ok: false }
    }
  }

  failed (operation: RedisOperation, err: unknown): void {
    this.metrics?.redisErrors.inc({ operation })
    this.warnings.warn(operation, err, 'Redis command failed; carrying on with local state')
  }

  subscribe (channel: string, listener: (message: Buffer) => void): () => void {
    let listeners = this.channels.get(channel)
    if (listeners === undefined) {
      listeners = new Set()
      this.channels.set(channel, listeners)
      // Not yet ready: the 'ready' handler subscribes to every channel.
      if (this.subscriber.status === 'ready') {
        this.subscribed = false
        this.subscriber.subscribe(channel).then(() => { this.notifySubscribed() }, (err: unknown) => { this.connectionFailed('subscriber', err) })
      }
    }
    listeners.add(listener)
    return () => {
      const current = this.channels.get(channel)
      current?.delete(listener)
      if (current?.size !== 0) return
      this.channels.delete(channel)
      if (this.subscriber.status === 'ready') this.subscriber.unsubscribe(channel).catch((err: unknown) => { this.connectionFailed('subscriber', err) })
    }
  }

  onSubscribed (listener: () => void): () => void {
    this.subscribedListeners.add(listener)
    return () => { this.subscribedListeners.delete(listener) }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.stateListeners.clear()
    this.subscribedListeners.clear()
    await Promise.all([this.client, this.subscriber].map(async (connection) => {
      try {
        // QUIT lets replies in flight arrive; a Redis that does not answer is cut off.
        await withTimeout(connection.quit(), this.commandTimeoutMs)
      } catch {
        // Down or slow: disconnect below is all that is left to do.
      }
      connection.disconnect()
    }))
    this.setUp(false)
  }

  /**
   * A healthy Redis never takes the command timeout to answer; a connection that did is
   * hung (a partition, a stopped server) and TCP may not notice for minutes. Dropping it
   * makes the worker degrade at once, instead of every call waiting out the timeout, and
   * the reconnect loop finds Redis when it is back.
   */
  private dropHungConnection (): void {
    if (!this.up || this.closed) return
    this.log.warn({ timeoutMs: this.commandTimeoutMs }, 'Redis command timed out: reconnecting')
    // The socket may take a while to close (ioredis ends it, then destroys it if the peer
    // stays silent): count it down from now until it is ready again.
    this.hung = true
    this.client.disconnect(true)
    // The subscriber shares the path: it sends nothing, so it would never notice; a fresh
    // one resubscribes (and the resync it triggers covers what was missed).
    this.subscriber.disconnect(true)
    this.checkState()
  }

  private checkState (): void {
    if (this.closed) return
    this.setUp(this.client.status === 'ready' && !this.hung)
  }

  private setUp (up: boolean): void {
    if (up === this.up) return
    this.up = up
    this.metrics?.redisUp.set(up ? 1 : 0)
    if (this.closed) return
    if (up) {
      this.log.info('Redis is up: fleet state shared again')
    } else {
      // A connection closed by the server raises no 'error' event: count the loss here.
      this.metrics?.redisErrors.inc({ operation: 'connection' })
      this.log.warn('Redis is down: fleet state degrades to this worker\'s local state until it returns')
    }
    for (const listener of this.stateListeners) {
      try {
        listener(up)
      } catch (err) {
        this.log.error({ err }, 'Redis state listener threw')
      }
    }
  }

  private connectionFailed (which: 'command' | 'subscriber', err: unknown): void {
    if (this.closed) return
    this.metrics?.redisErrors.inc({ operation: 'connection' })
    this.warnings.warn(`connection:${which}`, err, `Redis ${which} connection failed; reconnecting`)
  }

  /** After every (re)connect of the subscriber: SUBSCRIBE again (idempotent on the server). */
  private resubscribe (): void {
    const channels = [...this.channels.keys()]
    if (channels.length === 0 || this.closed) {
      this.notifySubscribed()
      return
    }
    this.subscriber.subscribe(...channels).then(() => { this.notifySubscribed() }, (err: unknown) => { this.connectionFailed('subscriber', err) })
  }

  private notifySubscribed (): void {
    if (this.closed) return
    this.subscribed = true
    for (const listener of this.subscribedListeners) {
      try {
        listener()
      } catch (err) {
        this.log.error({ err }, 'Redis subscribed listener threw')
      }
    }
  }

  private deliver (channel: string, message: Buffer): void {
    const listeners = this.channels.get(channel)
    if (listeners === undefined) return
    for (const listener of listeners) {
      try {
        listener(message)
      } catch (err) {
        this.log.error({ err, channel }, 'Redis message listener threw')
      }
    }
  }
}

/**
 * Opens the fleet's Redis connections and returns at once: they connect in the
 * background, so a worker whose Redis is down at boot starts degraded (`isUp()` false,
 * every fleet structure answering from local state) and catches up when it connects.
 * Connection errors never throw or crash the process; they are counted and logged.
 */
export function openFleetRedis (options: OpenFleetRedisOptions): FleetRedis {
  return new FleetRedisConnection(options)
}
