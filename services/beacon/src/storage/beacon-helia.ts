import { withBitswap } from '@helia/bitswap'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import type { Logger } from '../logging/logger.ts'
import { pinoComponentLogger } from '../logging/libp2p-logger.ts'
import type { StorageMetrics } from '../metrics/storage-metrics.ts'
import { blockHashers } from './hashers.ts'
import type { Helia } from '@helia/interface'
import type { Counter, Libp2p, Metrics } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'

/** Helia with Bitswap on the worker's own libp2p node. */
export type BeaconHelia = Helia & { libp2p: Libp2p }

export interface BeaconHeliaDeps {
  /** The worker's libp2p node; Helia adds the Bitswap protocol to it and nothing else. */
  libp2p: Libp2p
  /** What Bitswap serves from and fetched blocks are written to (BitswapBlockstoreView). */
  blockstore: Blockstore
  log: Logger
  metrics: Pick<StorageMetrics, 'bitswapBlocksServed' | 'bitswapBytesServed'>
  /**
   * Write buffer of the streams Bitswap opens to send to a peer (PHAROS_BITSWAP_MAX_WRITE_BUFFER_BYTES).
   * @default the muxer's setting
   */
  maxWriteBufferBytes?: number
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
export function createBeaconHelia ({ libp2p, blockstore, log, metrics, maxWriteBufferBytes }: BeaconHeliaDeps): BeaconHelia {
  const helia = createHeliaLight({
    blockstore,
    datastore: new MemoryDatastore(),
    hashers: [...blockHashers],
    codecs: [dagCbor, dagJson],
    logger: pinoComponentLogger(log.child({ component: 'helia' })),
    metrics: bitswapMetricsBridge(metrics)
  })
  const node = maxWriteBufferBytes === undefined ? libp2p : withStreamWriteBuffer(libp2p, maxWriteBufferBytes)
  Object.defineProperty(helia, 'libp2p', { value: node, enumerable: true })
  const withNode = helia as BeaconHelia
  withBitswap(withNode)
  return withNode
}

/**
 * The node as Bitswap sees it: streams it dials carry `maxWriteBufferBytes` instead of the
 * muxer-wide limit. Bitswap builds one batch of every block a peer wants and writes it in
 * messages of up to 4 MiB, appending the next message whenever the muxer drains rather than
 * when the buffer empties, so a muxer limit sized for other protocols (1 MiB) resets every
 * transfer of large blocks. Helia uses this node for nothing but Bitswap.
 */
function withStreamWriteBuffer (libp2p: Libp2p, maxWriteBufferBytes: number): Libp2p {
  return new Proxy(libp2p, {
    get (target, property) {
      if (property === 'dialProtocol') {
        return async (...args: Parameters<Libp2p['dialProtocol']>) => {
          const stream = await target.dialProtocol(...args)
          // A documented run-time setting of a stream (@libp2p/interface MessageStream).
          stream.maxWriteBufferLength = maxWriteBufferBytes
          return stream
        }
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
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
