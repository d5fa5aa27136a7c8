import type { Logger } from './logging/logger.ts'

/**
 * What `/readyz` reports. Ready means: libp2p listens, storage answers, and the worker is
 * not draining. A check that hangs counts as a failure after `timeoutMs`.
 *
 * `/readyz` is anonymous, so a failing check is reported by a fixed reason its owner chose
 * (`failure`), never by the error's text: a driver's message names hosts, users, databases
 * (`password authentication failed for user "…"`, `getaddrinfo ENOTFOUND db.internal`). The
 * error itself goes to the log, once per change of what failed. A check that has a reason
 * safe to show, and more telling than one fixed text, throws a {@link ReadinessFailure}
 * with it (the overload check names the limit the worker is over).
 *
 * Some checks only degrade the worker (Redis in a fleet: the worker keeps serving from
 * local state). A failing degrading check leaves `ready` true, so load balancers keep
 * sending peers, and sets `status: degraded` so operators see it.
 */
export type ReadinessCheck = () => Promise<void>

export type ReadinessStatus = 'ready' | 'degraded' | 'not-ready'

export interface ReadinessReport {
  ready: boolean
  status: ReadinessStatus
  checks: Record<string, 'ok' | string>
}

export interface CheckOptions {
  /** `required` failing makes the worker not ready (503); `degrades` only marks it degraded. @default 'required' */
  severity?: 'required' | 'degrades'
  /** What `/readyz` says when the check fails, whatever the error: fixed text, no detail. @default 'failing' */
  failure?: string
}

export interface ReadinessOptions {
  /** A check that has not answered by then has failed. @default 2000 */
  timeoutMs?: number
  /** Where a failing check's error goes (the answer carries only its fixed reason). @default not logged */
  log?: Logger
}

/** What `/readyz` says of a check that did not answer in time. */
const TIMED_OUT = 'no answer in time'

export class Readiness {
  private draining = false
  private readonly checks = new Map<string, { check: ReadinessCheck, severity: 'required' | 'degrades', failure: string }>()
  private readonly timeoutMs: number
  private readonly log: Logger | undefined
  private readonly listeners = new Set<(report: ReadinessReport) => void>()
  /** The error each failing check last logged, so a probe every few seconds logs a failure once, not on every probe. */
  private readonly logged = new Map<string, string>()

  constructor (options: ReadinessOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 2000
    this.log = options.log?.child({ component: 'readiness' })
  }

  addCheck (name: string, check: ReadinessCheck, options: CheckOptions = {}): void {
    this.checks.set(name, { check, severity: options.severity ?? 'required', failure: options.failure ?? 'failing' })
  }

  /** From now on the worker answers not-ready, for good. */
  startDraining (): void {
    this.draining = true
  }

  /** Called with every report made (for the readiness gauges). */
  onReport (listener: (report: ReadinessReport) => void): void {
    this.listeners.add(listener)
  }

  async report (): Promise<ReadinessReport> {
    const checks: Record<string, string> = {}
    let ready = true
    let degraded = false
    if (this.draining) {
      checks.draining = 'shutting down'
      ready = false
    }
    await Promise.all([...this.checks].map(async ([name, { check, severity, failure }]) => {
      let timer: NodeJS.Timeout | undefined
      const timedOut = new CheckTimeoutError(`no answer within ${this.timeoutMs} ms`)
      try {
        await Promise.race([
          check(),
          new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(timedOut) }, this.timeoutMs) })
        ])
        checks[name] = 'ok'
        if (this.logged.delete(name)) this.log?.info({ check: name }, 'readiness check passes again')
      } catch (err) {
        checks[name] = err === timedOut ? TIMED_OUT : err instanceof ReadinessFailure ? err.reason : failure
        this.logFailure(name, err)
        if (severity === 'required') ready = false
        else degraded = true
      } finally {
        clearTimeout(timer)
      }
    }))
    const report: ReadinessReport = { ready, status: !ready ? 'not-ready' : degraded ? 'degraded' : 'ready', checks }
    for (const listener of this.listeners) listener(report)
    return report
  }

  private logFailure (name: string, err: unknown): void {
    const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    if (this.logged.get(name) === detail) return
    this.logged.set(name, detail)
    this.log?.warn({ check: name, err }, 'readiness check failing')
  }
}

/**
 * A failing check's reason as `/readyz` shows it: thrown by a check whose owner wrote the
 * text for anonymous readers (a fixed phrase, a config key; never a driver's message).
 */
export class ReadinessFailure extends Error {
  override readonly name = 'ReadinessFailure'
  readonly reason: string

  constructor (reason: string) {
    super(reason)
    this.reason = reason
  }
}

/** A check that did not answer within the readiness timeout. */
class CheckTimeoutError extends Error {
  override readonly name = 'CheckTimeoutError'
}
