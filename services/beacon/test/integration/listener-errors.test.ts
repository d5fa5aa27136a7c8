/**
 * A worker out of file descriptors says so (issue 17, item 21). accept(2) failing with EMFILE
 * is injected where Node raises it — as an 'error' of the TCP and WebSocket listeners' real
 * server sockets — since libuv hides most of them from JavaScript (it accepts and closes the
 * waiting connections on a spare descriptor, see accept-errors.ts): it is counted, logged
 * once per interval rather than once per failure, and the WebSocket listener no longer takes
 * the process down with it. The descriptor watch is shown on a child process whose limit is
 * lowered with prlimit until it runs out for real.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { EventEmitter } from 'node:events'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

/** What Node emits on a listening server when accept(2) fails for want of a descriptor. */
function acceptEmfile (): Error {
  return Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', errno: -24, syscall: 'accept' })
}

interface LogLine { msg: string, transport?: string, code?: string, suppressed?: number, component?: string }

describe('a worker whose listeners run out of file descriptors', () => {
  let worker: Worker
  let client: ClientPeer
  const lines: LogLine[] = []

  before(async () => {
    const log = createLogger('info', { write: (line: string) => { lines.push(JSON.parse(line) as LogLine) } })
    worker = await startWorker(loadConfig(await inProcessEnv({ PHAROS_ADMIN_TOKENS: 'listener-errors-token-0123456789' })), log)
    client = await createClientPeer()
  })

  after(async () => {
    await client?.stop()
    await worker?.stop()
  })

  it('counts every failed accept, logs one line per transport per interval, and keeps serving', async () => {
    const components = (worker.node as unknown as { components: { transportManager: { getListeners: () => Array<{ server?: EventEmitter }> } } }).components
    const servers = components.transportManager.getListeners().map((listener) => listener.server).filter((server): server is EventEmitter => server !== undefined)
    assert.equal(servers.length, 2, 'the TCP and the WebSocket listener')
    for (const server of servers) for (let i = 0; i < 5; i++) server.emit('error', acceptEmfile())

    const metrics = (await worker.app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^pharos_listener_errors_total\{transport="tcp",code="EMFILE"\} 5$/m)
    assert.match(metrics, /^pharos_listener_errors_total\{transport="ws",code="EMFILE"\} 5$/m)
    const logged = lines.filter((line) => line.msg.startsWith('out of file descriptors'))
    assert.deepEqual(logged.map((line) => [line.transport, line.code, line.suppressed]).sort(), [['tcp', 'EMFILE', 0], ['ws', 'EMFILE', 0]], 'one line each, not one per failure')

    // Still accepting on both (stock, the WebSocket listener's error was uncaught and the process died).
    const addrs = worker.node.getMultiaddrs().map(String).filter((text) => text.startsWith('/ip4/127.0.0.1/'))
    for (const addr of addrs) assert.ok(await client.services.ping.ping(multiaddr(addr)) >= 0, addr)
  })
})

describe('the file descriptor watch', () => {
  it('logs, once, that a process whose limit is lowered has run out of descriptors', async () => {
    const script = `
      import { openSync } from 'node:fs'
      import { createLogger } from ${JSON.stringify(fileURLToPath(new URL('../../src/logging/logger.ts', import.meta.url)))}
      import { watchFileDescriptors } from ${JSON.stringify(fileURLToPath(new URL('../../src/p2p/accept-errors.ts', import.meta.url)))}
      const held = []
      for (;;) { try { held.push(openSync('/dev/null', 'r')) } catch { break } }
      watchFileDescriptors({ log: createLogger('info'), intervalMs: 50 })
      setTimeout(() => process.exit(0), 500)
    `
    const child = spawn('prlimit', ['--nofile=64:64', process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    assert.equal(code, 0, err)
    const lines = out.split('\n').filter((line) => line.length > 0).map((line) => JSON.parse(line) as LogLine & { level: number })
    const outOfFds = lines.filter((line) => line.msg.startsWith('out of file descriptors'))
    assert.equal(outOfFds.length, 1, `one error line in about ten checks: ${out}`)
    assert.equal(outOfFds[0]?.code, 'EMFILE')
  })
})
