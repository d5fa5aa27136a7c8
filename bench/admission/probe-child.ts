/**
 * What the admission bench watches the worker with, in a process of its own (the attacks
 * run in others, at a lower priority):
 *
 * - the **canary**: a registered peer connected before anything starts, pinging the worker
 *   over that connection (libp2p ping, a new stream each) on a fixed schedule, one at a
 *   time; each ping's latency counts from when it was due. A ping that fails, or could not
 *   be sent within the timeout, is lost and counts as the timeout. If the connection
 *   closes, that is reported and the canary dials again;
 * - the **honest peer**: another registered peer, from its own source address, that dials the
 *   worker again and again, one attempt at a time, at most one per interval: an attempt
 *   succeeds when the connection is upgraded and one ping over it is answered, within the
 *   client's dial timeout. It then hangs up;
 * - the worker's /healthz, polled on a fixed schedule.
 */
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import type { Connection, Libp2p } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { CLIENT_DIAL_TIMEOUT_MS, pingingNode, reasonOf } from './light-node.ts'
import { PING_TIMEOUT_MS } from './protocol.ts'
import type { ProbeCommand, ProbeEvent, ProbeStart } from './protocol.ts'

const HEALTHZ_TIMEOUT_MS = 5000

const reply = (message: ProbeEvent): void => { process.send?.(message) }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
let running = true
const loops: Array<Promise<void>> = []
const nodes: Libp2p[] = []

async function canary (start: ProbeStart, target: Multiaddr): Promise<void> {
  const node = await pingingNode(start.canary.source, privateKeyFromProtobuf(Buffer.from(start.canary.key, 'hex')))
  nodes.push(node)
  let connection: Connection | undefined
  const connect = async (): Promise<void> => {
    connection = await node.dial(target, { signal: AbortSignal.timeout(CLIENT_DIAL_TIMEOUT_MS) })
    connection.addEventListener('close', () => {
      if (running) reply({ type: 'canary-closed', at: Date.now() })
      connection = undefined
    }, { once: true })
  }
  await connect()
  reply({ type: 'started' })
  loops.push((async () => {
    const firstWall = Date.now()
    const firstTick = performance.now()
    for (let tick = 0; running; tick++) {
      const due = firstTick + tick * start.canary.intervalMs
      const at = firstWall + tick * start.canary.intervalMs
      const wait = due - performance.now()
      if (wait > 0) await sleep(wait)
      if (!running) break
      // A ping waits for the one before it (one outbound ping stream per peer, as the spec
      // says), and its latency counts from when it was due, so a stall is not hidden by the
      // pings it kept from being sent.
      const late = performance.now() - due
      if (late >= PING_TIMEOUT_MS) {
        reply({ type: 'ping', at, ms: PING_TIMEOUT_MS, ok: false, reason: 'backlog' })
        continue
      }
      if (connection === undefined) {
        reply({ type: 'ping', at, ms: PING_TIMEOUT_MS, ok: false, reason: 'no-connection' })
        await connect().catch(() => {})
        continue
      }
      try {
        await node.services.ping.ping(connection.remotePeer, { signal: AbortSignal.timeout(Math.max(1, Math.floor(PING_TIMEOUT_MS - late))) })
        reply({ type: 'ping', at, ms: performance.now() - due, ok: true })
      } catch (err) {
        reply({ type: 'ping', at, ms: PING_TIMEOUT_MS, ok: false, reason: reasonOf(err) })
      }
    }
  })())
}

async function honestAttempt (node: Libp2p<{ ping: Ping }>, target: Multiaddr): Promise<void> {
  const at = Date.now()
  const started = performance.now()
  const signal = AbortSignal.timeout(CLIENT_DIAL_TIMEOUT_MS)
  let connection: Connection | undefined
  try {
    connection = await node.dial(target, { signal })
    await node.services.ping.ping(target, { signal })
    reply({ type: 'dial', at, ms: performance.now() - started, ok: true })
  } catch (err) {
    reply({ type: 'dial', at, ms: performance.now() - started, ok: false, reason: reasonOf(err) })
  } finally {
    await connection?.close().catch(() => {})
    // A connection the dial opened but did not hand back (aborted mid-upgrade) goes too.
    await Promise.all(node.getConnections().map(async (open) => { await open.close().catch(() => {}) }))
  }
}

async function honest (start: ProbeStart, target: Multiaddr): Promise<void> {
  const node = await pingingNode(start.honest.source, privateKeyFromProtobuf(Buffer.from(start.honest.key, 'hex')))
  nodes.push(node)
  loops.push((async () => {
    while (running) {
      const next = Date.now() + start.honest.intervalMs
      await honestAttempt(node, target)
      const wait = next - Date.now()
      if (wait > 0 && running) await sleep(wait)
    }
  })())
}

function healthz (start: ProbeStart): void {
  loops.push((async () => {
    const first = Date.now()
    for (let tick = 0; running; tick++) {
      const wait = first + tick * start.healthzIntervalMs - Date.now()
      if (wait > 0) await sleep(wait)
      if (!running) break
      const at = Date.now()
      const started = performance.now()
      try {
        const response = await fetch(new URL('/healthz', start.httpUrl), { signal: AbortSignal.timeout(HEALTHZ_TIMEOUT_MS) })
        await response.arrayBuffer()
        reply({ type: 'healthz', at, ms: performance.now() - started, ok: response.ok })
      } catch {
        reply({ type: 'healthz', at, ms: HEALTHZ_TIMEOUT_MS, ok: false })
      }
    }
  })())
}

async function stop (): Promise<void> {
  running = false
  await Promise.all(loops)
  await Promise.all(nodes.map(async (node) => { await node.stop()?.catch(() => {}) }))
  reply({ type: 'stopped' })
}

process.on('message', (command: ProbeCommand) => {
  switch (command.type) {
    case 'start': {
      const target = multiaddr(command.target)
      void canary(command, target).then(async () => { await honest(command, target); healthz(command) }).catch((err: unknown) => {
        process.stderr.write(`[admission] probe: the canary could not connect: ${String(err)}\n`)
        process.exit(1)
      })
      break
    }
    case 'stop': void stop(); break
  }
})
process.on('disconnect', () => { process.exit(0) })
reply({ type: 'ready' })
