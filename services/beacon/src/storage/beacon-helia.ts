import { withBitswap } from '@helia/bitswap'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import type { Logger } from '../logging/logger.ts'
import { pinoComponentLogger } from '../logging/libp2p-logger.ts'
import type { Counter as PromCounter } from 'prom-client'
import { blockHashers } from './hashers.ts'
import type { Helia } from '@helia/interface'
import type { BlockSendBudget } from '@helia/bitswap'
import type { Counter, Libp2p, Metrics, Stream } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'

/** Helia with Bitswap on the worker's own libp2p node. */
export type BeaconHelia = Helia & { libp2p: Libp2p }

export interface BeaconHeliaDeps {
  /** The worker's libp2p node; Helia adds the Bitswap protocol to it and nothing else. */
  libp2p: Libp2p
  /** What Bitswap serves from and fetched blocks are written to (BitswapBlockstoreView). */
  blockstore: Blockstore
  log: Logger
  /** The two counters of what Bitswap served (the pinning area's storage metrics). */
  metrics: { bitswapBlocksServed: PromCounter, bitswapBytesServed: PromCounter }
  /**
   * Write buffer of the streams Bitswap opens to send to a peer (PHAROS_BITSWAP_MAX_WRITE_BUFFER_BYTES).
   * @default the muxer's setting
   */
  maxWriteBufferBytes?: number
  /**
   * What serving blocks may hold in memory, per peer and in all (BitswapSendBudget).
   * @default unbounded (stock @helia/bitswap)
   */
  sendBudget?: BlockSendBudget
  /**
   * A stream Bitswap opens that takes no byte for this long is reset (PHAROS_BITSWAP_SEND_STALL_MS),
   * so a peer that stops reading gives its share of `sendBudget` back.
   * @default never
   */
  sendStallMs?: number
  /** Called for each stream reset for stalling (count it). */
  onSendStalled?: () => void
}

/** A Bitswap stream to a peer took no byte for PHAROS_BITSWAP_SEND_STALL_MS. */
export class BitswapSendStalledError extends Error {
  override readonly name = 'BitswapSendStalledError'

  constructor (stallMs: number) {
    super(`the peer took no Bitswap data for ${stallMs} ms`)
  }
}

/**
 * Helia 7 for a beacon. `createHelia` would add `@helia/libp2p`, which always creates a
 * libp2p node of its own (with DHT, UPnP, AutoTLS), and `@helia/http`, which fetches from
 * public HTTP gateways. A beacon wants neither: this starts from `createHeliaLight`, gives it
 * the worker's existing node as `helia.libp2p` (all `@helia/bitswap` reads), and adds Bitswap.
 *
 * There is no content routing (no DHT): pin jobs fetch from the pin's origins and from peers
 * already connected to the worker, which is what Bitswap asks by default.
 *
 * Helia's datastore holds only its own bookkeeping (datastore version, keychain, Helia's pin
 * index, none of which Pharos uses — pins live in Postgres), so it is in memory.
 *
 * Call `start()` after the libp2p node has started; `stop()` stops Bitswap, not libp2p.
 */
export function createBeaconHelia ({ libp2p, blockstore, log, metrics, maxWriteBufferBytes, sendBudget, sendStallMs, onSendStalled }: BeaconHeliaDeps): BeaconHelia {
  const helia = createHeliaLight({
    blockstore,
    datastore: new MemoryDatastore(),
    hashers: [...blockHashers],
    codecs: [dagCbor, dagJson],
    logger: pinoComponentLogger(log.child({ component: 'helia' })),
    metrics: bitswapMetricsBridge(metrics)
  })
  const node = maxWriteBufferBytes === undefined && sendStallMs === undefined ? libp2p : bitswapStreams(libp2p, { maxWriteBufferBytes, sendStallMs, onSendStalled })
  Object.defineProperty(helia, 'libp2p', { value: node, enumerable: true })
  const withNode = helia as BeaconHelia
  withBitswap(withNode, sendBudget === undefined ? {} : { sendBudget })
  return withNode
}

/**
 * The node as Bitswap sees it: the streams it dials carry `maxWriteBufferBytes` instead of the
 * muxer-wide limit, and are reset when they stall.
 *
 * - Bitswap writes a message of up to 4 MiB at a time, appending the next whenever the muxer
 *   drains rather than when the buffer empties, so a muxer limit sized for other protocols
 *   (1 MiB) would reset every transfer of large blocks.
 * - A peer that stops reading (a paused stream, a full TCP window) leaves Bitswap's write
 *   waiting for ever, holding the blocks and their send budget: the stream is reset once it
 *   took no byte for `sendStallMs`. Opening the stream gets as long.
 *
 * Helia uses this node for nothing but Bitswap.
 */
function bitswapStreams (libp2p: Libp2p, options: { maxWriteBufferBytes?: number, sendStallMs?: number, onSendStalled?: () => void }): Libp2p {
  const { maxWriteBufferBytes, sendStallMs, onSendStalled } = options
  return new Proxy(libp2p, {
    get (target, property) {
      if (property === 'dialProtocol') {
        return async (peer: Parameters<Libp2p['dialProtocol']>[0], protocols: Parameters<Libp2p['dialProtocol']>[1], dialOptions: Parameters<Libp2p['dialProtocol']>[2] = {}) => {
          const opening = sendStallMs === undefined ? dialOptions : { ...dialOptions, signal: anySignal(dialOptions.signal, AbortSignal.timeout(sendStallMs)) }
          const stream = await target.dialProtocol(peer, protocols, opening)
          // A documented run-time setting of a stream (@libp2p/interface MessageStream).
          if (maxWriteBufferBytes !== undefined) stream.maxWriteBufferLength = maxWriteBufferBytes
          if (sendStallMs !== undefined) resetWhenStalled(stream, sendStallMs, onSendStalled)
          return stream
        }
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}

function anySignal (signal: AbortSignal | undefined, timeout: AbortSignal): AbortSignal {
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
}

/**
 * Resets `stream` when a whole `stallMs` passes with bytes waiting in its write buffer and
 * none of them taken by the muxer. Progress is what left the buffer: the bytes handed to
 * `send` minus those still buffered.
 */
function resetWhenStalled (stream: Stream, stallMs: number, onStalled?: () => void): void {
  settleCloseOnError(stream)
  let handed = 0
  const send = stream.send.bind(stream)
  stream.send = (data) => {
    handed += data.byteLength
    return send(data)
  }
  let sentAtLastCheck = 0
  const timer = setInterval(() => {
    const sent = handed - stream.writeBufferLength
    if (stream.writeBufferLength > 0 && sent === sentAtLastCheck) {
      clearInterval(timer)
      onStalled?.()
      stream.abort(new BitswapSendStalledError(stallMs))
      return
    }
    sentAtLastCheck = sent
  }, stallMs)
  timer.unref()
  stream.addEventListener('close', () => { clearInterval(timer) }, { once: true })
}

/**
 * Makes `stream.close()` reject when the stream ends with an error while it waits. In
 * @libp2p/utils 7.4.1 it never settles then: it waits for the write buffer to empty and, if
 * the muxer needed a drain, for 'drain'; `abort()` (a stall reset, or a remote reset) empties
 * the buffer and emits 'close' before close() starts waiting for 'drain', which never comes.
 * Bitswap's send would wait for ever and hold its budget (docs/upstream.md).
 */
function settleCloseOnError (stream: Stream): void {
  const failed = new Promise<never>((_resolve, reject) => {
    stream.addEventListener('close', (event) => { if (event.error !== undefined) reject(event.error) }, { once: true })
  })
  failed.catch(() => {}) // only close() cares, and only while it waits
  const close = stream.close.bind(stream)
  stream.close = async (options) => { await Promise.race([close(options), failed]) }
}

const noop = (): void => {}
const noopMetric = { update: noop, increment: noop, decrement: noop, reset: noop, observe: noop, timer: () => noop }

/**
 * The `Metrics` Helia and Bitswap report to. Bitswap's own metric groups are keyed by peer
 * ID (unbounded label values, STYLE.md rule 7), so everything is dropped except the two
 * counters of what Bitswap sent, which feed `pharos_bitswap_{blocks,bytes}_served_total`.
 */
export function bitswapMetricsBridge (metrics: BeaconHeliaDeps['metrics']): Metrics {
  const counters: Record<string, Counter> = {
    helia_bitswap_sent_blocks_total: { increment: (value = 1) => { metrics.bitswapBlocksServed.inc(value) }, reset: noop },
    helia_bitswap_sent_data_bytes_total: { increment: (value = 1) => { metrics.bitswapBytesServed.inc(value) }, reset: noop }
  }
  const register = (): typeof noopMetric => noopMetric
  const bridge = {
    trackMultiaddrConnection: noop,
    trackProtocolStream: noop,
    registerMetric: register,
    registerMetricGroup: register,
    registerCounter: (name: string) => counters[name] ?? noopMetric,
    registerCounterGroup: register,
    registerHistogram: register,
    registerHistogramGroup: register,
    registerSummary: register,
    registerSummaryGroup: register,
    traceFunction: <F>(_name: string, fn: F): F => fn,
    createTrace: () => undefined
  }
  // The interface's register* overloads return void for calculated metrics; one no-op
  // object satisfies both forms at run time.
  return bridge as unknown as Metrics
}
