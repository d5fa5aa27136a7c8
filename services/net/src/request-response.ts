/**
 * One request and one response per stream, each a single length-prefixed frame: the shape of
 * the sync, key-exchange and audit-challenge protocols (services/protocol). libp2p 3 streams
 * are message based, so frames are read with `lpStream`, bounded on read, and the stream is
 * closed (our writable end, gracefully) once the answer is in. A peer that sends more than
 * the bound, or nothing in time, gets its stream aborted: never an exception in the node.
 * Beacon and peer both ask and answer through these two functions.
 */
import { lpStream } from '@libp2p/utils'
import type { AbortOptions, Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { MalformedRequestError, MalformedResponseError, RequestTimeoutError } from './errors.ts'

/** lpStream buffers at most this much past the frame bound: a length prefix and a little slack. */
const PREFIX_SLACK_BYTES = 16

export interface RequestOptions extends AbortOptions {
  /** Largest response frame accepted; a longer one is a MalformedResponseError. */
  maxResponseBytes: number
  /** Our own bound on the whole exchange: past it, RequestTimeoutError. @default only `signal` bounds it */
  timeoutMs?: number
  /** Names the exchange in a timeout's message (`sync heads`). @default the protocol ID */
  what?: string
}

/** Turns the read errors of a length-prefixed stream into what they mean for a response. */
function readFailure (err: unknown, peer: string, protocol: string, maxBytes: number): unknown {
  const name = (err as Error | undefined)?.name
  if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError') return new MalformedResponseError(peer, protocol, `frame larger than ${maxBytes} bytes`)
  if (name === 'InvalidMessageLengthError') return new MalformedResponseError(peer, protocol, 'bad length prefix')
  if (name === 'UnexpectedEOFError') return new MalformedResponseError(peer, protocol, 'stream closed without an answer')
  return err
}

/**
 * Opens `protocol` to `peer` (dialling it if needed), writes `frame`, and returns the one
 * frame that comes back.
 */
export async function request (node: Pick<Libp2p, 'dialProtocol'>, peer: PeerId, protocol: string, frame: Uint8Array, options: RequestOptions): Promise<Uint8Array> {
  const timeout = options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs)
  const signal = timeout === undefined ? options.signal : options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
  let stream: Stream | undefined
  try {
    stream = await node.dialProtocol(peer, protocol, { signal })
    const lp = lpStream(stream, { maxDataLength: options.maxResponseBytes, maxBufferSize: options.maxResponseBytes + PREFIX_SLACK_BYTES })
    await lp.write(frame, { signal })
    let response: Uint8Array
    try {
      response = (await lp.read({ signal })).subarray()
    } catch (err) {
      throw readFailure(err, peer.toString(), protocol, options.maxResponseBytes)
    }
    await stream.close({ signal }).catch(() => {})
    return response
  } catch (err) {
    stream?.abort(err instanceof Error ? err : new Error(String(err)))
    if (timeout?.aborted === true && options.signal?.aborted !== true) throw new RequestTimeoutError(`${options.what ?? protocol} with ${peer.toString()}`, options.timeoutMs ?? 0)
    throw err
  }
}

/** What a handler answers: a response frame, or `undefined` to abort the stream (a malformed request). */
export type RequestHandler = (frame: Uint8Array, connection: Connection, signal: AbortSignal) => Promise<Uint8Array | undefined>

export interface ServeOptions {
  maxRequestBytes: number
  /** The whole exchange must finish within this. */
  timeoutMs: number
  maxInboundStreams: number
  /** A request that was malformed, oversized or too slow; its stream has been aborted. */
  onRejected?: (connection: Connection, err: unknown) => void
}

/** Answers every `protocol` stream on `node` with `handler`, one request each. */
export async function serveRequests (node: Pick<Libp2p, 'handle'>, protocol: string, handler: RequestHandler, options: ServeOptions): Promise<void> {
  const answer = async (stream: Stream, connection: Connection): Promise<void> => {
    const signal = AbortSignal.timeout(options.timeoutMs)
    try {
      const lp = lpStream(stream, { maxDataLength: options.maxRequestBytes, maxBufferSize: options.maxRequestBytes + PREFIX_SLACK_BYTES })
      const frame = (await lp.read({ signal })).subarray()
      const response = await handler(frame, connection, signal)
      if (response === undefined) {
        const malformed = new MalformedRequestError(protocol)
        stream.abort(malformed)
        options.onRejected?.(connection, malformed)
        return
      }
      await lp.write(response, { signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      options.onRejected?.(connection, err)
    }
  }
  await node.handle(protocol, (stream, connection) => { void answer(stream, connection) }, { maxInboundStreams: options.maxInboundStreams })
}
