/**
 * Redis servers a test starts for itself, beyond the shared one scripts/with-services.sh
 * starts: a standalone server it may stop and start again on the same port (outages), and a
 * 3-node Redis Cluster. Each lives on loopback in a temp dir, persists nothing, and is
 * killed by `stop` (call it in `after`).
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { waitFor } from './wait.ts'

const run = promisify(execFile)

async function portIsFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => { resolve(false) })
    server.listen(port, '127.0.0.1', () => { server.close(() => { resolve(true) }) })
  })
}

/**
 * A free loopback port. With `clusterBus`, port + 10000 is free too (a Cluster node's bus
 * port), so the port is below 55536.
 */
export async function freePort (clusterBus = false): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => {
        const address = server.address()
        server.close(() => {
          if (typeof address === 'object' && address !== null) resolve(address.port)
          else reject(new Error('no port'))
        })
      })
    })
    if (!clusterBus) return port
    if (port < 55_536 && await portIsFree(port + 10_000)) return port
  }
  throw new Error('no free port pair for a Redis Cluster node')
}

async function redisCli (port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 30_000 })
  return stdout
}

export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string
  readonly dir: string
  /** Kills the server (SIGKILL: an outage, not a shutdown) and waits for it to exit. */
  stop: () => Promise<void>
  /** Starts it again on the same port, empty (it persists nothing), and waits for PING. */
  start: () => Promise<void>
  /** Freezes the process (SIGSTOP): connections stay open and nothing answers, as in a partition. */
  pause: () => void
  /** Thaws it (SIGCONT). */
  resume: () => void
  /** Stops it for good and removes its dir. */
  destroy: () => Promise<void>
}

/** A standalone redis-server on a free loopback port; `extraArgs` are appended to its command line. */
export async function startRedisServer (options: { extraArgs?: string[], clusterBus?: boolean } = {}): Promise<RedisServer> {
  const port = await freePort(options.clusterBus ?? false)
  const dir = await mkdtemp(join(tmpdir(), 'pharos-redis-'))
  const args = ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', join(dir, 'redis.log'), ...(options.extraArgs ?? [])]
  let child: ChildProcess | undefined

  const stop = async (): Promise<void> => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise((resolve) => running.once('exit', resolve))
    running.kill('SIGKILL')
    running.kill('SIGCONT') // a paused process dies only once thawed
    await exited
  }
  const start = async (): Promise<void> => {
    if (child !== undefined) return
    const started = spawn('redis-server', args, { stdio: 'ignore' })
    child = started
    started.once('error', () => { if (child === started) child = undefined })
    await waitFor(`redis-server on ${port} answering PING`, async () => await redisCli(port, 'ping').then((reply) => reply.trim() === 'PONG', () => false), 10_000)
  }

  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    stop,
    start,
    pause: () => { child?.kill('SIGSTOP') },
    resume: () => { child?.kill('SIGCONT') },
    destroy: async () => {
      await stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
}

export interface RedisClusterServers {
  readonly nodes: RedisServer[]
  /** The URL of one node: a client discovers the rest from it. */
  readonly url: string
  stop: () => Promise<void>
}

/**
 * A Redis Cluster of `size` primaries and no replicas: each node started with
 * `cluster-enabled yes`, joined by `redis-cli --cluster create`, ready once every node says
 * `cluster_state:ok`.
 */
export async function startRedisCluster (size = 3): Promise<RedisClusterServers> {
  const nodes: RedisServer[] = []
  try {
    for (let i = 0; i < size; i++) {
      nodes.push(await startRedisServer({
        clusterBus: true,
        extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000']
      }))
    }
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 60_000 })
    for (const node of nodes) {
      await waitFor(`cluster node ${node.port} reporting cluster_state:ok`, async () => await redisCli(node.port, 'cluster', 'info').then((reply) => reply.includes('cluster_state:ok'), () => false), 30_000)
    }
  } catch (err) {
    await Promise.all(nodes.map(async (node) => { await node.destroy() }))
    throw err
  }
  const first = nodes[0] as RedisServer
  return {
    nodes,
    url: first.url,
    stop: async () => { await Promise.all(nodes.map(async (node) => { await node.destroy() })) }
  }
}
