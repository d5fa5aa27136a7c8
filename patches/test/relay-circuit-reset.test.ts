/**
 * The patches that carry a connection's error to its streams (patches/@libp2p+utils+7.4.1.patch,
 * patches/@libp2p+yamux+8.0.3.patch, docs/upstream.md): two real peers relay
 * through a worker, and a circuit over the worker's data or time limit must end at both
 * ends as an error. The relay resets the circuit's streams; stock, the peers' muxers closed
 * every stream on the reset connection as if it had ended cleanly, so a transfer cut off
 * after 192 KiB of 3 MiB read as a complete one. The worker counts each cut against the
 * limit that made it (`pharos_limit_blocked_total`).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { loadConfig } from '@pharos/beacon/config/load.ts'
import { createLogger } from '@pharos/beacon/logging/logger.ts'
import { startWorker } from '@pharos/beacon/worker.ts'
import type { Worker } from '@pharos/beacon/worker.ts'
import { createClientPeer } from '../../services/beacon/test/helpers/client-peer.ts'
import type { ClientPeer } from '../../services/beacon/test/helpers/client-peer.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const SINK = '/pharos-test/sink/1.0.0'
const KiB = 1024

/** How a stream's reading ended: cleanly after `bytes`, or with an error. */
interface ReadEnd { bytes: number, error?: string }

async function readToEnd (stream: Stream): Promise<ReadEnd> {
  let bytes = 0
  try {
    for await (const chunk of stream) bytes += chunk.byteLength
    return { bytes }
  } catch (err) {
    return { bytes, error: (err as Error).name }
  }
}

/** `pharos_limit_blocked_total{limit}` on the worker's /metrics (0 before its first count). */
async function limitBlocked (worker: Worker, limit: string): Promise<number> {
  const text = (await worker.app.inject({ method: 'GET', url: '/metrics' })).body
  return Number(new RegExp(`^pharos_limit_blocked_total\\{limit="${limit}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
}

/** A worker with the given relay limits, a listener reachable only through it, and a dialer. */
async function relayed (env: Record<string, string>): Promise<{ worker: Worker, listener: ClientPeer, dialer: ClientPeer, open: () => Promise<{ dialerStream: Stream, listenerEnd: Promise<ReadEnd> }> }> {
  const worker = await startWorker(loadConfig(await inProcessEnv({ PHAROS_ADMIN_TOKENS: 'relay-reset-token-0123456789', ...env })), createLogger('silent'))
  const listener = await createClientPeer({ listen: ['/p2p-circuit'] })
  const dialer = await createClientPeer()
  await worker.accounts.add(listener.peerId.toString())
  const tcpAddr = worker.node.getMultiaddrs().map(String).find((text) => text.startsWith('/ip4/127.0.0.1/') && !text.includes('/ws')) ?? assert.fail('no TCP address')
  let ended: ((end: Promise<ReadEnd>) => void) | undefined
  await listener.handle(SINK, (stream) => { ended?.(readToEnd(stream)) }, { runOnLimitedConnection: true })
  await listener.dial(multiaddr(tcpAddr))
  await waitFor('a relay reservation', () => listener.getMultiaddrs().some((addr) => addr.toString().includes('/p2p-circuit')), 10_000)
  const open = async (): Promise<{ dialerStream: Stream, listenerEnd: Promise<ReadEnd> }> => {
    const listenerEnd = new Promise<Promise<ReadEnd>>((resolve) => { ended = resolve }).then(async (end) => await end)
    const dialerStream = await dialer.dialProtocol(multiaddr(`${tcpAddr}/p2p-circuit/p2p/${listener.peerId.toString()}`), SINK, { runOnLimitedConnection: true })
    return { dialerStream, listenerEnd }
  }
  return { worker, listener, dialer, open }
}

describe('a relayed circuit over the data limit', () => {
  let setup: Awaited<ReturnType<typeof relayed>>

  before(async () => { setup = await relayed({ PHAROS_RELAY_CIRCUIT_DATA_BYTES: String(256 * KiB) }) })
  after(async () => {
    await setup?.dialer.stop()
    await setup?.listener.stop()
    await setup?.worker.stop()
  })

  it('ends as an error at both ends, not as a clean end of stream', async () => {
    const { dialerStream, listenerEnd } = await setup.open()
    const dialerEnd = readToEnd(dialerStream)
    const data = new Uint8Array(3 * 1024 * KiB)
    let writeError: string | undefined
    try {
      for (let offset = 0; offset < data.length; offset += 64 * KiB) {
        if (!dialerStream.send(data.subarray(offset, offset + 64 * KiB))) {
          await new Promise((resolve, reject) => {
            dialerStream.addEventListener('drain', resolve, { once: true })
            dialerStream.addEventListener('close', (event) => { reject((event as Event & { error?: Error }).error ?? new Error('closed cleanly')) }, { once: true })
          })
        }
      }
      await dialerStream.close()
    } catch (err) {
      writeError = (err as Error).name
    }
    const listened = await listenerEnd
    assert.ok(listened.bytes < data.length, `the relay cut the circuit (${listened.bytes} bytes arrived)`)
    assert.equal(listened.error, 'StreamResetError', 'the receiver sees a reset, not the end of the data')
    assert.ok(writeError !== undefined, 'the sender\'s writes fail')
    assert.ok(['aborted', 'reset'].includes(dialerStream.status), `the sender's stream is ${dialerStream.status}, not closed`)
    assert.ok((await dialerEnd).error !== undefined, 'and reading from it fails too')
    await waitFor('the cut to be counted against its limit', async () => await limitBlocked(setup.worker, 'PHAROS_RELAY_CIRCUIT_DATA_BYTES') === 1, 5000)
    assert.equal(await limitBlocked(setup.worker, 'PHAROS_RELAY_CIRCUIT_DURATION_MS'), 0)
  })
})

describe('a relayed circuit over the time limit', () => {
  let setup: Awaited<ReturnType<typeof relayed>>

  before(async () => { setup = await relayed({ PHAROS_RELAY_CIRCUIT_DURATION_MS: '1000' }) })
  after(async () => {
    await setup?.dialer.stop()
    await setup?.listener.stop()
    await setup?.worker.stop()
  })

  it('ends as an error at both ends once its time is up', async () => {
    const { dialerStream, listenerEnd } = await setup.open()
    dialerStream.send(new Uint8Array(KiB))
    const [listened, dialed] = await Promise.all([listenerEnd, readToEnd(dialerStream)])
    assert.equal(listened.bytes, KiB)
    assert.equal(listened.error, 'StreamResetError', 'the receiver sees a reset')
    assert.ok(dialed.error !== undefined, `the dialer sees an error too (its stream is ${dialerStream.status})`)
    await waitFor('the cut to be counted against its limit', async () => await limitBlocked(setup.worker, 'PHAROS_RELAY_CIRCUIT_DURATION_MS') === 1, 5000)
    assert.equal(await limitBlocked(setup.worker, 'PHAROS_RELAY_CIRCUIT_DATA_BYTES'), 0)
  })
})
