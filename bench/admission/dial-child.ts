/**
 * Real libp2p connections at a set rate, each from a node of its own (its own Ed25519 key,
 * TCP bound to one of the given source addresses, Noise, Yamux): what a peer runs. The
 * nodes keep their connections until told to release them (the paced stream whose worker
 * CPU is divided by the accepts). Dials start on a fixed schedule, not one after another, so
 * a slow worker does not slow the offered rate; a dial due while `concurrency` are in flight
 * is skipped and counted.
 */
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { CLIENT_DIAL_TIMEOUT_MS, dialOnlyNode, reasonOf } from './light-node.ts'
import type { DialCommand, DialEvent, DialRun } from './protocol.ts'

const reply = (message: DialEvent): void => { process.send?.(message) }
const held: Libp2p[] = []

async function dialOne (run: DialRun, index: number): Promise<number | undefined> {
  const at = Date.now()
  const started = performance.now()
  const source = run.sources[index % run.sources.length] ?? '127.0.0.1'
  const key = run.keys?.[index % run.keys.length]
  let node: Libp2p | undefined
  try {
    node = await dialOnlyNode(source, key === undefined ? undefined : privateKeyFromProtobuf(Buffer.from(key, 'hex')))
    await node.dial(multiaddr(run.target), { signal: AbortSignal.timeout(CLIENT_DIAL_TIMEOUT_MS) })
    reply({ type: 'dialled', at, ms: performance.now() - started, ok: true })
    held.push(node)
    return Date.now()
  } catch (err) {
    reply({ type: 'dialled', at, ms: performance.now() - started, ok: false, reason: reasonOf(err) })
    await node?.stop()?.catch(() => {})
    return undefined
  }
}

async function runDials (run: DialRun): Promise<void> {
  const startedAt = Date.now()
  const intervalMs = 1000 / run.ratePerSecond
  const deadline = startedAt + run.durationMs
  const inFlight = new Set<Promise<void>>()
  let skipped = 0
  let lastOpenedAt = 0
  for (let index = 0; index < run.count; index++) {
    const due = startedAt + index * intervalMs
    if (due >= deadline) break
    const wait = due - Date.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    if (inFlight.size >= run.concurrency) { skipped++; continue }
    const dial: Promise<void> = dialOne(run, index).then((openedAt) => {
      if (openedAt !== undefined) lastOpenedAt = Math.max(lastOpenedAt, openedAt)
      inFlight.delete(dial)
    })
    inFlight.add(dial)
  }
  await Promise.all(inFlight)
  reply({ type: 'run-done', startedAt, endedAt: Date.now(), skipped, lastOpenedAt })
}

process.on('message', (command: DialCommand) => {
  switch (command.type) {
    case 'run': void runDials(command); break
    case 'release':
      void Promise.all(held.splice(0).map(async (node) => { await node.stop()?.catch(() => {}) })).then(() => { reply({ type: 'released' }) })
      break
    case 'stop': process.exit(0)
  }
})
process.on('disconnect', () => { process.exit(0) })
reply({ type: 'ready' })
