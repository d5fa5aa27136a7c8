/**
 * One request, one response per stream: the shape of the sync and key-exchange protocols
 * (services/protocol/src/log). Each side writes one length-prefixed frame; libp2p 3 streams
 * are message based, so frames are read with `lpStream` and the stream is closed (our
 * writable end, gracefully) once the answer is in.
 */
import { lpStream } from '@libp2p/utils'
import { MalformedResponseError, RequestTimeoutError } from './errors.ts'
import type { AbortOptions, Libp2p, PeerId, Stream } from '@libp2p/interface'

export interface RequestOptions extends AbortOptions {
  /** The SDK's own bound on the whole exchange. */
  timeoutMs: number
}

/** A signal that fires on the caller's signal or after `timeoutMs`, and which of the two fired. */
export function bounded (options: RequestOptions): { signal: AbortSignal, timedOut: () => boolean } {
  const timeout = AbortSignal.timeout(options.timeoutMs)
  return {
    signal: options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]),
    timedOut: () => timeout.aborted && options.signal?.aborted !== true
  }
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
 * Opens a stream to `peer` on `protocol`, writes `request` as one frame and returns the one
 * frame that comes back (at most `maxResponseBytes`). `what` names the exchange in a timeout.
 */
export async function requestFrame (
  node: Pick<Libp2p, 'dialProtocol'>,
  peer: PeerId,
  protocol: string,
  request: Uint8Array,
  maxResponseBytes: number,
  what: string,
  options: RequestOptions
): Promise<Uint8Array> {
  const { signal, timedOut } = bounded(options)
  let stream: Stream | undefined
  try {
    stream = await node.dialProtocol(peer, protocol, { signal })
    const lp = lpStream(stream, { maxDataLength: maxResponseBytes, maxBufferSize: maxResponseBytes + 16 })
    await lp.write(request, { signal })
    let response: Uint8Array
    try {
      response = (await lp.read({ signal })).subarray()
    } catch (err) {
      throw readFailure(err, peer.toString(), protocol, maxResponseBytes)
    }
    await stream.close({ signal }).catch(() => {})
    return response
  } catch (err) {
    stream?.abort(err instanceof Error ? err : new Error(String(err)))
    if (timedOut()) throw new RequestTimeoutError(`${what} with ${peer.toString()}`, options.timeoutMs)
    throw err
  }
}

/**
 * Serves one exchange on an inbound stream: reads one request frame (at most
 * `maxRequestBytes`, within `timeoutMs`), writes `answer(request)`, closes. A stream that
 * fails is aborted; nothing escapes to the caller, which is a libp2p stream handler.
 */
export async function serveFrame (
  stream: Stream,
  maxRequestBytes: number,
  timeoutMs: number,
  answer: (request: Uint8Array) => Promise<Uint8Array>,
  onError: (err: unknown) => void
): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs)
  try {
    const lp = lpStream(stream, { maxDataLength: maxRequestBytes, maxBufferSize: maxRequestBytes + 16 })
    const request = (await lp.read({ signal })).subarray()
    await lp.write(await answer(request), { signal })
    await stream.close({ signal })
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    onError(err)
  }
}
