/**
 * Errors of the worker's TCP and WebSocket listeners — above all accept(2) failing with
 * EMFILE or ENFILE, a worker out of file descriptors — logged and counted (issue 17, item 21).
 * Stock, the TCP listener only bumped a libp2p counter (`libp2p_tcp_listener_errors_total`)
 * and the WebSocket listener's server had no 'error' listener at all, so Node threw the
 * error and the process died (patched, docs/upstream.md). Both listeners now dispatch their
 * server's errors as an 'error' event; `withListenerErrors` subscribes to it.
 *
 * Note: libuv hides most EMFILEs on accept from JavaScript. It keeps one spare descriptor,
 * and when accept fails for want of one it closes the spare, accepts and closes the waiting
 * connections, and reopens it: those peers see their connection close at once and nothing
 * is reported. JavaScript sees the error only when that trick fails (the spare could not be
 * reopened). So the worker also watches its descriptor headroom (`watchFileDescriptors`).
 */
import { readdir, readFile } from 'node:fs/promises'
import type { CreateListenerOptions, Listener, Transport } from '@libp2p/interface'
import type { Counter } from 'prom-client'
import type { Logger } from '../logging/logger.ts'

/** The listener a server error came from: a closed set, for metric labels. */
export type ListenerTransport = 'tcp' | 'ws'

/** Error codes named in the metric; anything else is `other`. */
const CODES = new Set(['EMFILE', 'ENFILE'])

/** What a listener error is counted as: `EMFILE`, `ENFILE` or `other`. */
export function codeOf (err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code
  return typeof code === 'string' && CODES.has(code) ? code : 'other'
}

/**
 * Logs at most one line per `intervalMs` per kind of event, with how many more happened
 * since the last line; counts every one. A worker out of descriptors fails every accept,
 * and a line per failure would flood the log when the operator most needs it.
 */
export class RateLimitedReport {
  private readonly intervalMs: number
  private readonly now: () => number
  private readonly last = new Map<string, { at: number, suppressed: number }>()

  constructor (intervalMs: number, now: () => number = Date.now) {
    this.intervalMs = intervalMs
    this.now = now
  }

  /** Calls `log(suppressed)` unless `key` was logged less than `intervalMs` ago; then it only counts. */
  report (key: string, log: (suppressed: number) => void): void {
    const now = this.now()
    const seen = this.last.get(key)
    if (seen !== undefined && now - seen.at < this.intervalMs) {
      seen.suppressed++
      return
    }
    log(seen?.suppressed ?? 0)
    this.last.set(key, { at: now, suppressed: 0 })
  }
}

export interface ListenerErrorsInit {
  log: Logger
  /** `pharos_listener_errors_total{transport, code}`. */
  errors: Counter<'transport' | 'code'>
  /** One log line per this many ms per transport and code. @default 10000 (guess) */
  logIntervalMs?: number
}

/** Reports a listener's server error: counted always, logged rate-limited, EMFILE/ENFILE with what to do. */
export function listenerErrorReporter ({ log, errors, logIntervalMs = 10_000 }: ListenerErrorsInit): (transport: ListenerTransport, err: Error) => void {
  const limiter = new RateLimitedReport(logIntervalMs)
  return (transport, err) => {
    const code = codeOf(err)
    errors.inc({ transport, code })
    limiter.report(`${transport}|${code}`, (suppressed) => {
      if (code === 'other') {
        log.error({ err, transport, suppressed }, 'a libp2p listener failed')
      } else {
        log.error({ err, transport, code, suppressed }, 'out of file descriptors: the listener cannot accept connections (raise the process\'s descriptor limit, ulimit -n / LimitNOFILE, or lower PHAROS_MAX_CONNECTIONS)')
      }
    })
  }
}

/**
 * A transport whose listeners report their errors to `onError`: `transports: [withListenerErrors('tcp', tcp(), report)]`.
 * Dials and everything else are the transport's own.
 */
export function withListenerErrors<C> (transport: ListenerTransport, factory: (components: C) => Transport, onError: (transport: ListenerTransport, err: Error) => void): (components: C) => Transport {
  return (components) => {
    const created = factory(components)
    const createListener = created.createListener.bind(created)
    created.createListener = (options: CreateListenerOptions): Listener => {
      const listener = createListener(options)
      listener.addEventListener('error', (event) => { onError(transport, event.detail) })
      return listener
    }
    return created
  }
}

export interface FileDescriptorWatchInit {
  log: Logger
  /** Share of the soft limit in use above which a warning is logged. @default 0.9 (guess) */
  warnAtShare?: number
  /** How often the descriptors are counted. @default 10000 (guess: a scrape interval) */
  intervalMs?: number
  /** One warning per this many ms. @default 60000 (guess) */
  logIntervalMs?: number
  /** Where the process's descriptors are listed and its limits read. @default /proc/self (Linux) */
  procDir?: string
}

/** The soft `Max open files` limit from a `/proc/<pid>/limits` text, or undefined. */
export function softFileLimit (limits: string): number | undefined {
  const line = limits.split('\n').find((row) => row.startsWith('Max open files'))
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0]
  const value = Number(soft)
  return soft === undefined || !Number.isSafeInteger(value) ? undefined : value
}

/**
 * Counts the process's open descriptors every `intervalMs` and warns (rate-limited) when more
 * than `warnAtShare` of the soft limit are in use, or when it cannot even list them for want
 * of one (EMFILE). `process_open_fds` and `process_max_fds` (prom-client) carry the figures.
 * Does nothing where there is no /proc. Returns a stop function.
 */
export function watchFileDescriptors ({ log, warnAtShare = 0.9, intervalMs = 10_000, logIntervalMs = 60_000, procDir = '/proc/self' }: FileDescriptorWatchInit): () => void {
  const limiter = new RateLimitedReport(logIntervalMs)
  const check = async (): Promise<void> => {
    let limit: number | undefined
    try {
      limit = softFileLimit(await readFile(`${procDir}/limits`, 'utf8'))
    } catch (err) {
      if (codeOf(err) === 'other') return // no /proc here
    }
    let open: number
    try {
      open = (await readdir(`${procDir}/fd`)).length
    } catch (err) {
      const code = codeOf(err)
      if (code !== 'other') limiter.report(code, (suppressed) => { log.error({ err, code, suppressed }, 'out of file descriptors: connections, dials and storage are failing (raise ulimit -n / LimitNOFILE, or lower PHAROS_MAX_CONNECTIONS)') })
      return
    }
    if (limit === undefined || open < warnAtShare * limit) return
    limiter.report('headroom', (suppressed) => { log.warn({ open, limit, suppressed }, 'file descriptors nearly exhausted: accepts will start to fail silently (raise ulimit -n / LimitNOFILE, or lower PHAROS_MAX_CONNECTIONS)') })
  }
  const timer = setInterval(() => { void check() }, intervalMs)
  timer.unref()
  return () => { clearInterval(timer) }
}
