/**
 * What `/readyz` reports. Ready means: libp2p listens, storage answers, and the worker is
 * not draining. A check that hangs counts as a failure after `timeoutMs`.
 */
export type ReadinessCheck = () => Promise<void>

export interface ReadinessReport {
  ready: boolean
  checks: Record<string, 'ok' | string>
}

export class Readiness {
  private draining = false
  private readonly checks = new Map<string, ReadinessCheck>()
  private readonly timeoutMs: number

  constructor (timeoutMs = 2000) {
    this.timeoutMs = timeoutMs
  }

  addCheck (name: string, check: ReadinessCheck): void {
    this.checks.set(name, check)
  }

  /** From now on the worker answers not-ready, for good. */
  startDraining (): void {
    this.draining = true
  }

  async report (): Promise<ReadinessReport> {
    const checks: Record<string, string> = {}
    if (this.draining) checks.draining = 'shutting down'
    await Promise.all([...this.checks].map(async ([name, check]) => {
      let timer: NodeJS.Timeout | undefined
      try {
        await Promise.race([
          check(),
          new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs) })
        ])
        checks[name] = 'ok'
      } catch (err) {
        checks[name] = err instanceof Error ? err.message : String(err)
      } finally {
        clearTimeout(timer)
      }
    }))
    return { ready: Object.values(checks).every((value) => value === 'ok'), checks }
  }
}
