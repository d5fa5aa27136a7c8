/**
 * Counts what each system puts on the wire, at the one layer both share: libp2p protocol
 * streams. libp2p hands every negotiated stream to its `metrics` component
 * (`trackProtocolStream`) and every raw connection to it (`trackMultiaddrConnection`); this
 * component wraps their `send`, the way @libp2p/prometheus-metrics counts bytes, and counts
 *
 * - per protocol stream: bytes sent (length prefixes included) and length-prefixed frames
 *   sent — both systems frame with an unsigned-varint length, so a frame is one protocol
 *   message for Pharos and one RPC for gossipsub. Each frame is decoded (`classify`) to tell
 *   payload-carrying frames from control-only ones and to count what it carries;
 * - per TCP connection: every byte, i.e. the protocol bytes plus multistream-select, noise,
 *   yamux, and any identify traffic from connections opened during the window.
 *
 * Only sends are counted (each byte once, by its sender), and only while the window is open.
 */
import { Uint8ArrayList } from 'uint8arraylist'
import type { Metrics, MultiaddrConnection, Stream } from '@libp2p/interface'

/** What one frame is, as far as the report cares. */
export interface FrameClass {
  /** Carries at least one broadcast payload. */
  payload: boolean
  /** What it carries, e.g. `{ gossip: 1 }` or `{ ihave: 1, 'ihave-ids': 12 }`. */
  items: Record<string, number>
}

/** Decides the class of one frame a node sent on a stream of `protocol`, or undefined if the protocol is not the measured system's. */
export type Classifier = (protocol: string, direction: 'inbound' | 'outbound', frame: Uint8Array) => FrameClass | undefined

export interface WireTally {
  frames: number
  bytes: number
  payloadFrames: number
  payloadBytes: number
  controlFrames: number
  controlBytes: number
  /** Every byte the nodes sent on TCP, all protocols and framing included. */
  tcpBytes: number
  /** Counts of what the frames carried, by item. */
  items: Record<string, number>
  /** Frames that failed to decode (should stay 0; a non-zero count means the classifier is wrong). */
  undecoded: number
}

function emptyTally (): WireTally {
  return { frames: 0, bytes: 0, payloadFrames: 0, payloadBytes: 0, controlFrames: 0, controlBytes: 0, tcpBytes: 0, items: {}, undecoded: 0 }
}

/**
 * One meter for every node of a process: each node's `metrics` component reports into it, so
 * the tally is the whole network's.
 */
export class WireMeter {
  private readonly classify: Classifier
  private recording = false
  private tally = emptyTally()

  constructor (classify: Classifier) {
    this.classify = classify
  }

  /** Starts counting from zero. */
  open (): void {
    this.tally = emptyTally()
    this.recording = true
  }

  /** Stops counting and returns what was counted. */
  close (): WireTally {
    this.recording = false
    return structuredClone(this.tally)
  }

  /** The libp2p `metrics` component of one node: `createLibp2p({ metrics: meter.component() })`. */
  component (): () => Metrics {
    return () => createMetrics(this)
  }

  /** @internal */
  onConnectionSend (bytes: number): void {
    if (this.recording) this.tally.tcpBytes += bytes
  }

  /** @internal */
  onFrame (protocol: string, direction: 'inbound' | 'outbound', frame: Uint8Array, wireBytes: number): void {
    if (!this.recording) return
    let decoded: FrameClass | undefined
    try {
      decoded = this.classify(protocol, direction, frame)
    } catch {
      this.tally.undecoded++
      return
    }
    if (decoded === undefined) return
    const t = this.tally
    t.frames++
    t.bytes += wireBytes
    if (decoded.payload) {
      t.payloadFrames++
      t.payloadBytes += wireBytes
    } else {
      t.controlFrames++
      t.controlBytes += wireBytes
    }
    for (const [item, count] of Object.entries(decoded.items)) t.items[item] = (t.items[item] ?? 0) + count
  }
}

/**
 * Splits a byte stream into unsigned-varint length-prefixed frames across `send` calls (a
 * frame may be split over several sends, or several frames share one).
 */
export class FrameSplitter {
  private readonly buffer = new Uint8ArrayList()

  push (chunk: Uint8Array | Uint8ArrayList, onFrame: (frame: Uint8Array, wireBytes: number) => void): void {
    this.buffer.append(chunk)
    // Bounded: each pass consumes one whole frame, or stops.
    for (;;) {
      let length = 0
      let shift = 1
      let prefix = 0
      let complete = false
      while (prefix < this.buffer.length && prefix < 10) {
        const byte = this.buffer.get(prefix++)
        length += (byte & 0x7f) * shift
        shift *= 128
        if (byte < 0x80) {
          complete = true
          break
        }
      }
      if (!complete || this.buffer.length < prefix + length) return
      const frame = this.buffer.slice(prefix, prefix + length)
      this.buffer.consume(prefix + length)
      onFrame(frame, prefix + length)
    }
  }
}

/** Every libp2p metric the node registers goes nowhere; only the two `track*` hooks count. */
const NOOP_METRIC = {
  update (): void {},
  increment (): void {},
  decrement (): void {},
  reset (): void {},
  observe (): void {},
  timer: () => () => {}
}

function createMetrics (meter: WireMeter): Metrics {
  return {
    trackMultiaddrConnection (maConn: MultiaddrConnection): void {
      const send = maConn.send.bind(maConn)
      maConn.send = (data) => {
        const accepted = send(data)
        meter.onConnectionSend(data.byteLength)
        return accepted
      }
    },
    trackProtocolStream (stream: Stream): void {
      const protocol = stream.protocol
      const direction = stream.direction
      const splitter = new FrameSplitter()
      const send = stream.send.bind(stream)
      stream.send = (data) => {
        // Counted after `send` returns: a send that throws (buffer full, stream closed) put nothing on the wire.
        const accepted = send(data)
        splitter.push(data, (frame, wireBytes) => { meter.onFrame(protocol, direction, frame, wireBytes) })
        return accepted
      }
    },
    registerMetric: () => NOOP_METRIC,
    registerMetricGroup: () => NOOP_METRIC,
    registerCounter: () => NOOP_METRIC,
    registerCounterGroup: () => NOOP_METRIC,
    registerHistogram: () => NOOP_METRIC,
    registerHistogramGroup: () => NOOP_METRIC,
    registerSummary: () => NOOP_METRIC,
    registerSummaryGroup: () => NOOP_METRIC,
    traceFunction: <F>(_name: string, fn: F): F => fn,
    createTrace: () => undefined
  }
}
