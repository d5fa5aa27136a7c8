/**
 * A real beacon worker for the peer's end-to-end tests, started as its own process the way
 * operators run it (embedded mode: PGlite in a temp data dir, no Postgres or Redis), through
 * the shared test helpers (services/testing). The peer sees the worker only as a process and
 * a network endpoint: nothing of beacon is imported.
 */
import type { ChildProcess } from 'node:child_process'
import { runProcess, spawnWorker, tempDir, workerEnv } from '@pharos/testing/worker-process.ts'
import type { ProcessResult } from '@pharos/testing/worker-process.ts'

export { tempDir }

const ADMIN_TOKEN = 'peer-e2e-admin-token-0123456789'

export interface WorkerProcess {
  child: ChildProcess
  peerId: string
  /** The loopback TCP multiaddr, with /p2p/. */
  tcpAddr: string
  httpUrl: string
  adminToken: string
  stderr: () => string
  lines: string[]
  stop: () => Promise<void>
}

/** Starts a worker on free loopback ports and waits for its "started" line. */
export async function startWorker (extra: Record<string, string> = {}, timeoutMs = 60_000): Promise<WorkerProcess> {
  const env = await workerEnv({ PHAROS_ADMIN_TOKENS: ADMIN_TOKEN, PHAROS_SHUTDOWN_READINESS_DELAY_MS: '0', ...extra })
  const worker = await spawnWorker(env, [], timeoutMs)
  const tcpAddr = worker.multiaddrs.find((addr) => addr.startsWith('/ip4/127.0.0.1/tcp/') && !addr.includes('/ws'))
  if (tcpAddr === undefined) throw new Error(`worker has no loopback TCP address: ${worker.multiaddrs.join(', ')}`)
  const { child } = worker
  return {
    child,
    peerId: worker.peerId,
    tcpAddr,
    httpUrl: worker.httpUrl,
    adminToken: ADMIN_TOKEN,
    stderr: worker.stderr,
    lines: worker.lines,
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 10_000)
      await worker.exited
      clearTimeout(timer)
    }
  }
}

/** Registers an account (who may join the overlay) through the admin API. */
export async function registerAccount (worker: WorkerProcess, peerId: string, label?: string): Promise<void> {
  const response = await fetch(`${worker.httpUrl}/v1/accounts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${worker.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(label === undefined ? { peerId } : { peerId, label })
  })
  if (response.status !== 201 && response.status !== 200) throw new Error(`registering ${peerId}: HTTP ${response.status} ${await response.text()}`)
}

/** Runs a script with this Node to completion (killed after `timeoutMs`). */
export async function runScript (script: string, args: string[], timeoutMs = 180_000): Promise<ProcessResult> {
  return await runProcess(process.execPath, [script, ...args], { env: { PATH: process.env.PATH ?? '' }, timeoutMs })
}
