import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LOOPBACK_TEST_ENV } from './loopback-env.ts'

export const MAIN = fileURLToPath(new URL('../../beacon/src/main.ts', import.meta.url))

/** A worker started as its own process, as operators run it. */
export interface WorkerProcess {
  child: ChildProcess
  peerId: string
  multiaddrs: string[]
  httpUrl: string
  /** Every stdout line so far (pino JSON). */
  lines: string[]
  stderr: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

export async function tempDir (prefix = 'pharos-test-'): Promise<string> {
  return await mkdtemp(join(tmpdir(), prefix))
}

/**
 * A fresh sealing secret for content keys (PHAROS_KEY_SEALING_SECRET), so a test worker on
 * Postgres has the key-exchange role, as a fleet configured for it does. A test of a worker
 * without one deletes the key from its env.
 */
export function testSealingSecret (version = 'v1'): string {
  return `${version}:${randomBytes(32).toString('base64')}`
}

/** Env for a worker on free ports and a fresh data dir; `extra` overrides. */
export async function workerEnv (extra: Record<string, string> = {}): Promise<Record<string, string>> {
  return {
    PATH: process.env.PATH ?? '',
    PHAROS_DATA_DIR: await tempDir(),
    PHAROS_P2P_HOST: '127.0.0.1',
    PHAROS_P2P_TCP_PORT: '0',
    PHAROS_P2P_WS_PORT: '0',
    PHAROS_HTTP_PORT: '0',
    PHAROS_LOG_LEVEL: 'info',
    PHAROS_SHUTDOWN_READINESS_DELAY_MS: '300',
    PHAROS_KEY_SEALING_SECRET: testSealingSecret(),
    ...LOOPBACK_TEST_ENV,
    ...extra
  }
}

/**
 * Runs main.ts with `env` and waits for its "started" log line. The bound only catches a
 * worker that hangs: a start costs a few CPU-seconds (PGlite's WASM, migrations, libp2p), and
 * with the suite's other processes on two shared cores (load average 15+) it took over 30 s
 * of wall time, so the bound is the 60 s the peer's end-to-end tests already used.
 */
export async function spawnWorker (env: Record<string, string>, args: string[] = [], timeoutMs = 60_000): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { resolve({ code, signal }) })
  })
  let buffered = ''
  const started = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Nobody holds a handle to a worker that never said it started: stop it, or it runs on.
      child.kill('SIGKILL')
      reject(new Error(`worker did not start within ${timeoutMs} ms; stderr: ${stderr}`))
    }, timeoutMs)
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk
      let newline
      while ((newline = buffered.indexOf('\n')) !== -1) {
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
    void exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`worker exited with ${code} before starting; stderr: ${stderr}`)) })
  })
  const record = await started
  return {
    child,
    peerId: record.peerId as string,
    multiaddrs: record.multiaddrs as string[],
    httpUrl: (record.adminUrl as string).replace(/\/v1\/node$/, ''),
    lines,
    stderr: () => stderr,
    exited
  }
}

/** Runs main.ts to completion (for config errors and --help). */
export async function runMain (env: Record<string, string>, args: string[] = []): Promise<ProcessResult> {
  return await runScript(MAIN, args, env)
}

/** What a process that ran to its exit printed, and its exit code. */
export interface ProcessResult { code: number | null, stdout: string, stderr: string }

/**
 * Runs `command` to its exit and collects its output; with `timeoutMs`, one still running
 * then is killed (SIGKILL) and the caller sees that exit.
 */
export async function runProcess (command: string, args: string[], { env, cwd, timeoutMs }: { env: Record<string, string>, cwd?: string, timeoutMs?: number }): Promise<ProcessResult> {
  const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/** Runs a TypeScript entry point with this Node to completion. */
export async function runScript (script: string, args: string[] = [], env: Record<string, string> = { PATH: process.env.PATH ?? '' }): Promise<ProcessResult> {
  return await runProcess(process.execPath, [script, ...args], { env })
}

export async function stopWorker (worker: WorkerProcess): Promise<void> {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) return
  worker.child.kill('SIGKILL')
  await worker.exited
}

/**
 * Env for a worker started in-process (`startWorker(loadConfig(env))`): loopback, free
 * ports, a fresh data dir, no readiness delay, and a high per-IP connection rate, since
 * every test peer dials from 127.0.0.1. `extra` overrides.
 */
export async function inProcessEnv (extra: Record<string, string> = {}): Promise<Record<string, string>> {
  return {
    PHAROS_DATA_DIR: await tempDir(),
    PHAROS_P2P_HOST: '127.0.0.1',
    PHAROS_P2P_TCP_PORT: '0',
    PHAROS_P2P_WS_PORT: '0',
    PHAROS_HTTP_PORT: '0',
    PHAROS_SHUTDOWN_READINESS_DELAY_MS: '0',
    PHAROS_KEY_SEALING_SECRET: testSealingSecret(),
    ...LOOPBACK_TEST_ENV,
    ...extra
  }
}
