import type { Socket } from 'node:net'
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { isStorageUnavailable } from '../storage/sql.ts'

/**
 * Every HTTP error Pharos returns, in one table. The body is the IPFS Pinning Service
 * API's `Failure` shape everywhere, so clients parse one error format.
 */
export const httpErrors = {
  badRequest: { status: 400, reason: 'BAD_REQUEST' },
  unauthorized: { status: 401, reason: 'UNAUTHORIZED' },
  forbidden: { status: 403, reason: 'FORBIDDEN' },
  notFound: { status: 404, reason: 'NOT_FOUND' },
  /** A gateway content path (`/ipfs/{cid}/a/b`) names nothing under a block this service holds. */
  pathNotFound: { status: 404, reason: 'PATH_NOT_FOUND' },
  notAcceptable: { status: 406, reason: 'NOT_ACCEPTABLE' },
  conflict: { status: 409, reason: 'CONFLICT' },
  gcRunning: { status: 409, reason: 'GC_ALREADY_RUNNING' },
  /** Node's HTTP parser read a request it could not parse (answered before Fastify sees it). */
  requestTimeout: { status: 408, reason: 'REQUEST_TIMEOUT' },
  payloadTooLarge: { status: 413, reason: 'PAYLOAD_TOO_LARGE' },
  /** A path segment longer than Fastify's maxParamLength. */
  uriTooLong: { status: 414, reason: 'URI_TOO_LONG' },
  unsupportedMediaType: { status: 415, reason: 'UNSUPPORTED_MEDIA_TYPE' },
  /** The request line and headers together crossed Node's maxHeaderSize (16 KiB). */
  headersTooLarge: { status: 431, reason: 'REQUEST_HEADER_FIELDS_TOO_LARGE' },
  tooManyRequests: { status: 429, reason: 'TOO_MANY_REQUESTS' },
  /** A gateway CAR stream cap is full (PHAROS_GATEWAY_CAR_MAX_STREAMS[_PER_IP]); sent with Retry-After. */
  carStreamsBusy: { status: 429, reason: 'TOO_MANY_CAR_STREAMS' },
  /** A gateway CAR request whose root block alone crosses a CAR limit (the details name the key). */
  carLimit: { status: 403, reason: 'CAR_LIMIT_EXCEEDED' },
  /** A gateway CAR request whose root's links cannot be read: malformed for its codec, or a codec Pharos cannot follow. */
  dagNotTraversable: { status: 422, reason: 'DAG_NOT_TRAVERSABLE' },
  /** An owner's pins hold their storage quota (PHAROS_PIN_OWNER_QUOTA_BYTES). */
  quotaExceeded: { status: 429, reason: 'STORAGE_QUOTA_EXCEEDED' },
  internal: { status: 500, reason: 'INTERNAL_SERVER_ERROR' },
  /** A stored block failed hash verification; it is never served. */
  blockCorrupt: { status: 500, reason: 'BLOCK_HASH_MISMATCH' },
  unavailable: { status: 503, reason: 'SERVICE_UNAVAILABLE' },
  /** The worker is overloaded (a PHAROS_HTTP_PRESSURE_* limit, named in the details); sent with Retry-After. */
  overloaded: { status: 503, reason: 'OVERLOADED' }
} as const

export type HttpErrorName = keyof typeof httpErrors

export const FailureSchema = Type.Object({
  error: Type.Object({
    reason: Type.String({ description: 'Mandatory string identifying the type of error' }),
    details: Type.Optional(Type.String({ description: 'Optional, longer description of the error' }))
  })
}, { $id: 'Failure' })

/** A route's error response schema: a reference to the one registered `Failure` schema. */
export const FailureRef = Type.Unsafe<{ error: { reason: string, details?: string } }>({ $ref: 'Failure#' })

/** A failure a route decided on: thrown, and rendered by the one error handler. */
export class HttpError extends Error {
  override readonly name = 'HttpError'
  readonly status: number
  readonly reason: string

  constructor (kind: HttpErrorName, details: string, reason?: string) {
    super(details)
    this.status = httpErrors[kind].status
    this.reason = reason ?? httpErrors[kind].reason
  }
}

export function sendFailure (reply: FastifyReply, kind: HttpErrorName, details: string, reason?: string): FastifyReply {
  return reply.code(httpErrors[kind].status).send({ error: { reason: reason ?? httpErrors[kind].reason, details } })
}

/** Fastify's error handler: validation → 400 with the reason; our errors as decided; the rest 500. */
export function errorHandler (err: FastifyError | HttpError, request: FastifyRequest, reply: FastifyReply): void {
  if (err instanceof HttpError) {
    void reply.code(err.status).send({ error: { reason: err.reason, details: err.message } })
    return
  }
  if (err.validation !== undefined) {
    void sendFailure(reply, 'badRequest', err.message)
    return
  }
  const status = err.statusCode ?? 500
  if (status >= 400 && status < 500) {
    const kind = (Object.keys(httpErrors) as HttpErrorName[]).find((name) => httpErrors[name].status === status)
    void reply.code(status).send({ error: { reason: kind === undefined ? 'BAD_REQUEST' : httpErrors[kind].reason, details: err.message } })
    return
  }
  if (isStorageUnavailable(err)) {
    // Postgres is down or restarting: the request was fine and can be retried.
    request.log.warn({ err }, 'storage unavailable')
    void reply.header('retry-after', '5')
    void sendFailure(reply, 'unavailable', 'storage unavailable; retry shortly')
    return
  }
  request.log.error({ err }, 'request failed')
  void sendFailure(reply, 'internal', 'internal error; see the worker log')
}

/**
 * Fastify's `frameworkErrors`: the errors its router raises before any hook or route runs
 * (a malformed URL: 400, a path segment over maxParamLength: 414), in the Failure shape
 * rather than Fastify's own `{ statusCode, error, message }`.
 */
export function frameworkErrorHandler (err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const status = err.statusCode ?? 400
  const kind = (Object.keys(httpErrors) as HttpErrorName[]).find((name) => httpErrors[name].status === status)
  if (kind === undefined || status >= 500) {
    void sendFailure(reply, 'internal', 'internal error; see the worker log')
    return
  }
  void sendFailure(reply, kind, err.message)
}

/** What Node's HTTP parser reports for a request it refused, as HTTP errors of the table. */
function clientErrorKind (code: string | undefined): HttpErrorName {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW': return 'headersTooLarge'
    case 'ERR_HTTP_REQUEST_TIMEOUT': return 'requestTimeout'
    default: return 'badRequest'
  }
}

/**
 * The HTTP server's `clientError` hook (Fastify's `clientErrorHandler`). Some requests never
 * reach Fastify: Node's parser refuses them first, a request line plus headers over
 * `maxHeaderSize` (16 KiB by default) with 431, a malformed request with 400, one too slow
 * with 408. Node would answer with an empty body, and Fastify's default with its own JSON;
 * this answers in the Failure shape, then closes the connection (the parser cannot go on),
 * as Node's and Fastify's own handlers do.
 */
export function clientErrorHandler (err: Error & { code?: string }, socket: Socket): void {
  // A reset connection has no one to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  if (socket.writable) {
    const { status, reason } = httpErrors[clientErrorKind(err.code)]
    const details = status === 431
      ? 'the request line and headers exceed the server\'s limit (Node\'s maxHeaderSize, 16 KiB)'
      : status === 408 ? 'the request did not arrive in time' : 'the request could not be parsed as HTTP/1.1'
    const body = JSON.stringify({ error: { reason, details } })
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy(err)
}
