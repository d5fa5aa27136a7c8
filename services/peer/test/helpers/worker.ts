/**
 * A real beacon worker for the peer's end-to-end tests, started as its own process the way
 * operators run it (embedded mode: PGlite in a temp data dir, no Postgres or Redis). The
 * peer sees the worker only as a process and a network endpoint, so this spawns
 * services/beacon/src/main.ts rather than importing anything of beacon.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const MAIN = fileURLToPath(new URL('../../../beacon/src/main.ts', import.meta.url))

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

export async function tempDir (prefix = 'pharos-peer-e2e-'): Promise<string> {
  return await mkdtemp(join(tmpdir(), prefix))
}

/** Starts a worker on free loopback ports and waits for its "started" line. */
export async function startWorker (extra: Record<string, string> = {}, timeoutMs = 60_000): Promise<WorkerProcess> {
  const adminToken = 'peer-e2e-admin-token-0123456789'
  const env = {
    PATH: process.env.PATH ?? '',
    PHAROS_DATA_DIR: await tempDir('pharos-peer-worker-'),
    PHAROS_P2P_HOST: '127.0.0.1',
    PHAROS_P2P_TCP_PORT: '0',
    PHAROS_P2P_WS_PORT: '0',
    PHAROS_HTTP_PORT: '0',
    PHAROS_ADMIN_TOKENS: adminToken,
    PHAROS_SHUTDOWN_READINESS_DELAY_MS: '0',
    // Every test peer dials from 127.0.0.1, and the machine's cores are shared with the test:
    // the admission and load-shedding limits of a public worker would refuse the test's own
    // peers and requests (as the beacon's test helpers, test/helpers/loopback-env.ts).
    PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND: '1000',
    PHAROS_PENDING_UPGRADES_PER_SOURCE: '256',
    PHAROS_PENDING_UPGRADES_PER_PREFIX: '256',
    PHAROS_HANDSHAKE_LOOP_DELAY_TARGET_MS: '0',
    PHAROS_UPGRADE_FIRST_MESSAGE_TIMEOUT_MS: '10000',
    PHAROS_UPGRADE_MIN_BYTES_PER_SECOND: '0',
    PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
    PHAROS_LOG_LEVEL: 'info',
    ...extra
  }
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  const lines: string[] = []
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<number | null>((resolve) => { child.once('exit', resolve) })
  let buffered = ''
  const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`worker did not start within ${timeoutMs} ms; stderr: ${stderr}`)) }, timeoutMs)
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk
      for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        lines.push(line)
        try {
          const record = JSON.parse(line) as Record<string, unknown>
          if (record.msg === 'pharos beacon started') { clearTimeout(timer); resolve(record) }
        } catch {
          // not a log line
        }
      }
    })
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`worker exited with ${code} before starting; stderr: ${stderr}`)) })
  })
  const multiaddrs = started.multiaddrs as string[]
  const tcpAddr = multiaddrs.find((addr) => addr.startsWith('/ip4/127.0.0.1/tcp/') && !addr.includes('/ws'))
  if (tcpAddr === undefined) throw new Error(`worker has no loopback TCP address: ${multiaddrs.join(', ')}`)
  return {
    child,
    peerId: started.peerId as string,
    tcpAddr,
    httpUrl: (started.adminUrl as string).replace(/\/v1\/node$/, ''),
    adminToken,
    stderr: () => stderr,
    lines,
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 10_000)
      await exited
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

/** Runs a script with this Node to completion. */
export async function runScript (script: string, args: string[], timeoutMs = 180_000): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [script, ...args], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}
