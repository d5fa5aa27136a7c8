/**
 * A child process of the swarm generator holding many light connections. Each is a real
 * libp2p connection to a worker (TCP or WebSocket, Noise, Yamux) made by its own minimal
 * libp2p node with its own ed25519 key, bound to its own 127.x.y.z source address: no
 * services, no listeners, no connection monitor. The worker sees distinct peers from
 * distinct IPs, runs identify and its yamux keep-alive on each; the connection then sits idle
 * (what most of a beacon's connections do). See loadtest/README.md for what one costs here.
 */
import { createRequire } from 'node:module'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { tcp } from '@libp2p/tcp'
import type { TCPOptions } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import type { Libp2p, Transport } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { multiaddrToUri } from '@multiformats/multiaddr-to-uri'
import { createLibp2p } from 'libp2p'
import { reasonOf } from './protocol.ts'
import type { LightCommand, LightReply, LightSpec } from './protocol.ts'

/**
 * `ws` (the WebSocket library the worker's listener runs on, a dependency of
 * @libp2p/websockets): unlike the global WebSocket it can bind a local address. Typed here
 * for the little used, as it ships no types.
 */
type WsConstructor = new (url: string, options: { localAddress: string }) => WebSocket
const WsWebSocket = createRequire(import.meta.url)('ws') as WsConstructor

/**
 * @libp2p/websockets dials with the global WebSocket, which cannot choose its source
 * address; this swaps its (internal) `_connect` for one that dials with `ws` from `source`.
 */
function webSocketsFrom (source: string): ReturnType<typeof webSockets> {
  const factory = webSockets()
  return (components) => {
    const transport = factory(components) as Transport & { _connect: (ma: Multiaddr, options: { signal?: AbortSignal }) => Promise<WebSocket> }
    transport._connect = async (ma, options) => {
      const socket = new WsWebSocket(multiaddrToUri(ma), { localAddress: source })
      socket.binaryType = 'arraybuffer'
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => { socket.close(); reject(new Error('dial aborted')) }
        options.signal?.addEventListener('abort', onAbort, { once: true })
        socket.addEventListener('open', () => { options.signal?.removeEventListener('abort', onAbort); resolve() }, { once: true })
        socket.addEventListener('error', () => { options.signal?.removeEventListener('abort', onAbort); reject(Object.assign(new Error('websocket error'), { name: 'WebSocketError' })) }, { once: true })
      })
      return socket
    }
    return transport
  }
}

/**
 * @libp2p/tcp spreads `dialOpts` into `net.connect` (tcp.js `_connect`), so a
 * `localAddress` binds the source even though its type lists only socket options.
 */
function tcpFrom (source: string): TCPOptions['dialOpts'] {
  return { localAddress: source } as TCPOptions['dialOpts']
}

const nodes = new Map<number, Libp2p>()
const reply = (message: LightReply): void => { process.send?.(message) }

async function openOne (spec: LightSpec): Promise<void> {
  const started = performance.now()
  let node: Libp2p | undefined
  try {
    const target = multiaddr(spec.target)
    const ws = spec.target.includes('/ws')
    node = await createLibp2p({
      // A random key: 0.07 ms here, against 0.5–1.8 ms to derive one from a seed.
      privateKey: await generateKeyPair('Ed25519'),
      addresses: { listen: [] },
      transports: [ws ? webSocketsFrom(spec.source) : tcp({ dialOpts: tcpFrom(spec.source) })],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionMonitor: { enabled: false },
      // The generator shares the CPU with the worker under test: its own dial timeouts
      // (default 6 s per address) must not be what fails; the worker's upgrade timeout is.
      connectionManager: { dialTimeout: 60_000, addressDialTimeout: 60_000 },
      services: {}
    })
    const connection = await node.dial(target, { signal: AbortSignal.timeout(60_000) })
    nodes.set(spec.id, node)
    const id = spec.id
    connection.addEventListener('close', () => {
      if (nodes.get(id) !== node) return
      nodes.delete(id)
      reply({ type: 'closed-by-remote', id })
      void node?.stop()
    }, { once: true })
    reply({ type: 'opened', id: spec.id, ms: performance.now() - started })
  } catch (err) {
    await node?.stop()?.catch(() => {})
    reply({ type: 'open-failed', id: spec.id, reason: reasonOf(err), message: err instanceof Error ? err.message : String(err) })
  }
}

async function open (specs: LightSpec[], concurrency: number): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, async () => {
    while (next < specs.length) {
      const spec = specs[next++]
      if (spec !== undefined) await openOne(spec)
    }
  }))
  reply({ type: 'batch-done' })
}

async function close (ids: number[]): Promise<void> {
  await Promise.all(ids.map(async (id) => {
    const node = nodes.get(id)
    nodes.delete(id)
    await node?.stop()
  }))
}

process.on('message', (command: LightCommand) => {
  switch (command.type) {
    case 'open': void open(command.specs, command.concurrency); break
    case 'close': void close(command.ids); break
    case 'status': {
      const memory = process.memoryUsage()
      reply({ type: 'status', held: nodes.size, rssBytes: memory.rss, heapBytes: memory.heapUsed })
      break
    }
    case 'stop':
      void close([...nodes.keys()]).finally(() => { process.exit(0) })
      break
  }
})
process.on('disconnect', () => { process.exit(0) })
reply({ type: 'ready' })
