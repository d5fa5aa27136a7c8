/**
 * The handshake flood: raw TCP connections at a set rate, each from the next of the given
 * source addresses, each completing a libp2p Noise handshake with a fresh Ed25519 identity
 * (noise-initiator.ts) and then hanging up (FIN) before any muxer, as a flooding attacker
 * would. Connections start on a fixed schedule; one due while `concurrency` are in flight is
 * skipped and counted. Reports once, when the run is over.
 */
import { connect } from 'node:net'
import { noiseHandshake, x25519Key } from './noise-initiator.ts'
import { reasonOf } from './light-node.ts'
import type { FloodCommand, FloodEvent, FloodRun } from './protocol.ts'

/** A handshake not done by then is abandoned (the worker's own upgrade timeout is 10 s). */
const HANDSHAKE_TIMEOUT_MS = 10_000

const reply = (message: FloodEvent): void => { process.send?.(message) }
// An attacker keeps one Noise static key; each connection still gets a fresh identity.
const staticKey = x25519Key()

async function handshakeOnce (run: FloodRun, source: string): Promise<string | undefined> {
  const socket = connect({ host: run.host, port: run.port, localAddress: source })
  socket.setNoDelay(true)
  const timer = setTimeout(() => { socket.destroy(new Error('handshake timed out')) }, HANDSHAKE_TIMEOUT_MS)
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    await noiseHandshake(socket, staticKey)
    return undefined
  } catch (err) {
    return reasonOf(err)
  } finally {
    clearTimeout(timer)
    // Hang up: FIN once the last message is written, and let go of the socket when the worker closes its side.
    socket.end()
    setTimeout(() => { socket.destroy() }, 1000).unref()
  }
}

async function runFlood (run: FloodRun): Promise<void> {
  const startedAt = Date.now()
  const intervalMs = 1000 / run.ratePerSecond
  const inFlight = new Set<Promise<void>>()
  const failures: string[] = []
  let completed = 0
  let skipped = 0
  for (let index = 0; ; index++) {
    const due = startedAt + index * intervalMs
    if (due >= startedAt + run.durationMs) break
    const wait = due - Date.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    if (inFlight.size >= run.concurrency) { skipped++; continue }
    const one: Promise<void> = handshakeOnce(run, run.sources[index % run.sources.length] ?? '127.0.0.1').then((failure) => {
      if (failure === undefined) completed++
      else failures.push(failure)
      inFlight.delete(one)
    })
    inFlight.add(one)
  }
  await Promise.all(inFlight)
  reply({ type: 'run-done', startedAt, endedAt: Date.now(), completed, failures, skipped })
}

process.on('message', (command: FloodCommand) => {
  switch (command.type) {
    case 'run': void runFlood(command); break
    case 'stop': process.exit(0)
  }
})
process.on('disconnect', () => { process.exit(0) })
reply({ type: 'ready' })
