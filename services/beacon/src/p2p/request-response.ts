/**
 * One request and one response per stream, each a single length-prefixed frame: the shape of
 * the sync and key-exchange protocols. Frames are bounded on read; a peer that sends more,
 * or nothing in time, gets its stream aborted — never an exception in the worker.
 */
import { lpStream } from '@libp2p/utils'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'

export interface RequestOptions {
  signal: AbortSignal
  /** Largest response frame accepted. */
  maxResponseBytes: number
}

/** Opens `protocol` to `peer` (dialling it if needed), writes `frame`, and returns the response frame. */
export async function request (node: Pick<Libp2p, 'dialProtocol'>, peer: PeerId, protocol: string, frame: Uint8Array, options: RequestOptions): Promise<Uint8Array> {
  const stream = await node.dialProtocol(peer, protocol, { signal: options.signal })
  try {
    const lp = lpStream(stream, { maxDataLength: options.maxResponseBytes })
    await lp.write(frame, { signal: options.signal })
    const response = (await lp.read({ signal: options.signal })).subarray()
    await stream.close({ signal: options.signal }).catch(() => {})
    return response
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

/** What a handler answers: a response frame, or `undefined` to abort the stream (malformed request). */
export type RequestHandler = (frame: Uint8Array, connection: Connection, signal: AbortSignal) => Promise<Uint8Array | undefined>

export interface ServeOptions {
  maxRequestBytes: number
  /** The whole exchange must finish within this. */
  timeoutMs: number
  maxInboundStreams: number
  /** A request that was malformed, oversized or too slow; the stream has been aborted. */
  onRejected?: (connection: Connection, err: unknown) => void
}

/** Registers `handler` for `protocol` on `node`. */
export async function serveRequests (node: Pick<Libp2p, 'handle'>, protocol: string, handler: RequestHandler, options: ServeOptions): Promise<void> {
  const answer = async (stream: Stream, connection: Connection): Promise<void> => {
    const signal = AbortSignal.timeout(options.timeoutMs)
    try {
      const lp = lpStream(stream, { maxDataLength: options.maxRequestBytes })
      const frame = (await lp.read({ signal })).subarray()
      const response = await handler(frame, connection, signal)
      if (response === undefined) {
        stream.abort(new Error('malformed request'))
        options.onRejected?.(connection, new Error('malformed request'))
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
