/**
 * A second worker on a data dir another worker holds stops at start with one line naming the
 * lock, and a worker whose port is taken stops with one line naming the port's config key
 * (issue 20: the second worker died with a stack trace on EADDRINUSE). Two real worker
 * processes; the lock's stale rules are checked on the lock itself.
 */
import assert from 'node:assert/strict'
import { readFile, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { DATA_DIR_LOCK_FILE, DataDirLockedError, LOCK_STALE_MS, lockDataDir } from '../../src/storage/data-dir-lock.ts'
import { MAIN, runProcess, spawnWorker, stopWorker, tempDir, workerEnv } from '@pharos/testing/worker-process.ts'
import type { ProcessResult, WorkerProcess } from '@pharos/testing/worker-process.ts'

/** sysexits EX_TEMPFAIL: the data dir or a port is held by another process. */
const EXIT_TEMPFAIL = 75

/** Runs main.ts to its exit; a worker that starts instead is killed after `timeoutMs` (and the test fails on its exit code). */
async function runToExit (env: Record<string, string>, timeoutMs = 60_000): Promise<ProcessResult> {
  return await runProcess(process.execPath, [MAIN], { env, timeoutMs })
}

function portOf (addr: string, transport: 'tcp' | 'ws'): string {
  const match = (transport === 'ws' ? /\/tcp\/(\d+)\/ws\// : /\/tcp\/(\d+)\/p2p\//).exec(addr)
  return match?.[1] ?? assert.fail(`no ${transport} port in ${addr}`)
}

/** The one line a refused start prints: no stack frame, nothing else. */
function assertOneLine (stderr: string, what: RegExp): void {
  const lines = stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `one line on stderr, got:\n${stderr}`)
  assert.match(lines[0] ?? '', what)
  assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace')
}

describe('a second worker on a held data dir or port', { timeout: 240_000 }, () => {
  let first: WorkerProcess
  let firstEnv: Record<string, string>

  before(async () => {
    firstEnv = await workerEnv()
    first = await spawnWorker(firstEnv)
  })
  after(async () => { await stopWorker(first) })

  it('stops at start on the same data dir, in one line naming the lock file and the holder\'s pid', async () => {
    const dataDir = firstEnv.PHAROS_DATA_DIR ?? assert.fail()
    const second = await runToExit(await workerEnv({ PHAROS_DATA_DIR: dataDir }))
    assert.equal(second.code, EXIT_TEMPFAIL, second.stderr)
    assertOneLine(second.stderr, new RegExp(`^pharos-beacon: PHAROS_DATA_DIR is in use by another Pharos worker \\(pid ${first.child.pid ?? 0} on .*lock ${join(dataDir, DATA_DIR_LOCK_FILE).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`))
    assert.equal(second.stdout, '', 'it opened nothing: no storage, no listener')
    // The first worker is untouched: still its lock, still serving.
    assert.match(await readFile(join(dataDir, DATA_DIR_LOCK_FILE), 'utf8'), new RegExp(`"pid":${first.child.pid ?? 0}`))
    assert.equal((await fetch(`${first.httpUrl}/healthz`)).status, 200)
  })

  it('stops in one line naming PHAROS_HTTP_PORT when the HTTP port is taken', async () => {
    const port = new URL(first.httpUrl).port
    const second = await runToExit(await workerEnv({ PHAROS_HTTP_PORT: port }))
    assert.equal(second.code, EXIT_TEMPFAIL, second.stderr)
    assertOneLine(second.stderr, new RegExp(`^pharos-beacon: PHAROS_HTTP_PORT: 127\\.0\\.0\\.1:${port} is already in use .*set PHAROS_HTTP_PORT to a free port$`))
  })

  it('stops in one line naming PHAROS_P2P_TCP_PORT, or PHAROS_P2P_WS_PORT, when a libp2p port is taken', async () => {
    const addr = first.multiaddrs.find((candidate) => candidate.startsWith('/ip4/127.0.0.1/')) ?? assert.fail()
    const tcp = portOf(first.multiaddrs.find((candidate) => !candidate.includes('/ws/')) ?? addr, 'tcp')
    const ws = portOf(first.multiaddrs.find((candidate) => candidate.includes('/ws/')) ?? addr, 'ws')
    const tcpTaken = await runToExit(await workerEnv({ PHAROS_P2P_TCP_PORT: tcp }))
    assert.equal(tcpTaken.code, EXIT_TEMPFAIL, tcpTaken.stderr)
    assertOneLine(tcpTaken.stderr, new RegExp(`^pharos-beacon: PHAROS_P2P_TCP_PORT: 127\\.0\\.0\\.1:${tcp} is already in use`))
    const wsTaken = await runToExit(await workerEnv({ PHAROS_P2P_WS_PORT: ws }))
    assert.equal(wsTaken.code, EXIT_TEMPFAIL, wsTaken.stderr)
    assertOneLine(wsTaken.stderr, new RegExp(`^pharos-beacon: PHAROS_P2P_WS_PORT: 127\\.0\\.0\\.1:${ws} is already in use`))
  })

  it('takes over the lock of a worker that was killed, and keeps its identity', async () => {
    const env = await workerEnv()
    const killed = await spawnWorker(env)
    killed.child.kill('SIGKILL')
    await killed.exited
    const lockFile = join(env.PHAROS_DATA_DIR ?? '', DATA_DIR_LOCK_FILE)
    assert.match(await readFile(lockFile, 'utf8'), new RegExp(`"pid":${killed.child.pid ?? 0}`), 'a killed worker leaves its lock behind')
    const next = await spawnWorker(env)
    try {
      assert.equal(next.peerId, killed.peerId)
      const warning = next.lines.map((line) => JSON.parse(line) as { msg: string, why?: string }).find((record) => record.msg.startsWith('took over the data dir lock'))
      assert.match(warning?.why ?? '', new RegExp(`pid ${killed.child.pid ?? 0} is gone`))
    } finally {
      next.child.kill('SIGTERM')
      await next.exited
    }
    await assert.rejects(readFile(lockFile), { code: 'ENOENT' }, 'a worker that stops cleanly removes its lock')
  })
})

describe('the data dir lock', () => {
  it('refuses a fresh lock written on another host (its pid cannot be checked from here)', async () => {
    const dataDir = await tempDir()
    const holder = { pid: 4242, host: 'some-other-host', since: new Date().toISOString() }
    await writeFile(join(dataDir, DATA_DIR_LOCK_FILE), JSON.stringify(holder))
    await assert.rejects(lockDataDir(dataDir), (err: unknown) => err instanceof DataDirLockedError && /pid 4242 on some-other-host/.test(err.message))
  })

  it('takes over a lock from another host that was not refreshed for LOCK_STALE_MS', async () => {
    const dataDir = await tempDir()
    const file = join(dataDir, DATA_DIR_LOCK_FILE)
    await writeFile(file, JSON.stringify({ pid: 4242, host: 'some-other-host', since: '2020-01-01T00:00:00.000Z' }))
    const old = new Date(Date.now() - LOCK_STALE_MS - 5000)
    await utimes(file, old, old)
    const lock = await lockDataDir(dataDir)
    try {
      assert.match(lock.tookOver ?? '', /not refreshed for \d+ s/)
      assert.equal(JSON.parse(await readFile(file, 'utf8')).pid, process.pid)
    } finally {
      await lock.release()
    }
  })

  it('refuses a second holder in the same process, and lets the next one in once released', async () => {
    const dataDir = await tempDir()
    const lock = await lockDataDir(dataDir)
    await assert.rejects(lockDataDir(dataDir), DataDirLockedError)
    await lock.release()
    const again = await lockDataDir(dataDir)
    assert.equal(again.tookOver, undefined, 'a released lock is gone, not stale')
    await again.release()
  })
})
