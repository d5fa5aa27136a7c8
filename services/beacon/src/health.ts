/**
 * What `/readyz` reports. Ready means: libp2p listens, storage answers, and the worker is
 * not draining. A check that hangs counts as a failure after `timeoutMs`.
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
}

export class Readiness {
  private draining = false
  private readonly checks = new Map<string, { check: ReadinessCheck, severity: 'required' | 'degrades' }>()
  private readonly timeoutMs: number
  private readonly listeners = new Set<(report: ReadinessReport) => void>()

  constructor (timeoutMs = 2000) {
    this.timeoutMs = timeoutMs
  }

  addCheck (name: string, check: ReadinessCheck, options: CheckOptions = {}): void {
    this.checks.set(name, { check, severity: options.severity ?? 'required' })
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
    await Promise.all([...this.checks].map(async ([name, { check, severity }]) => {
      let timer: NodeJS.Timeout | undefined
      try {
        await Promise.race([
          check(),
          new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs) })
        ])
        checks[name] = 'ok'
      } catch (err) {
        checks[name] = err instanceof Error ? err.message : String(err)
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
}
