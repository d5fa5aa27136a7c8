/**
 * Errors of the shared libp2p side (STYLE.md rule 5): named classes, so callers branch on
 * `err.name` or `instanceof`, never on message text. The peer SDK re-exports them as its own.
 */

/** One of our own bounded timeouts (not the caller's signal) ran out. */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError'
  readonly timeoutMs: number
  constructor (what: string, timeoutMs: number) {
    super(`${what} did not finish within ${timeoutMs} ms`)
    this.timeoutMs = timeoutMs
  }
}

/** A remote answered with something that is not a well-formed answer to what was asked. */
export class MalformedResponseError extends Error {
  override readonly name = 'MalformedResponseError'
  readonly peer: string
  readonly protocol: string
  constructor (peer: string, protocol: string, detail: string) {
    super(`malformed ${protocol} response from ${peer}: ${detail}`)
    this.peer = peer
    this.protocol = protocol
  }
}

/** A request our handler found malformed: its stream is aborted with this. */
export class MalformedRequestError extends Error {
  override readonly name = 'MalformedRequestError'
  constructor (protocol: string) {
    super(`malformed ${protocol} request`)
  }
}

/** A remote answered with an `error` frame (`bad-request` or `unavailable`). */
export class RemoteError extends Error {
  override readonly name = 'RemoteError'
  readonly peer: string
  readonly protocol: string
  readonly code: string
  constructor (peer: string, protocol: string, code: string, message: string) {
    super(`${protocol} error from ${peer}: ${code}: ${message}`)
    this.peer = peer
    this.protocol = protocol
    this.code = code
  }
}

/** The beacon refused to hand out a key: the requester is not entitled to it. */
export class KeyDeniedError extends Error {
  override readonly name = 'KeyDeniedError'
  readonly peer: string
  readonly reason: string
  constructor (peer: string, reason: string) {
    super(`key denied by ${peer}: ${reason}`)
    this.peer = peer
    this.reason = reason
  }
}

/**
 * A registry page failed verification: a bad or foreign signature, another network's
 * registry, a malformed body. `code` is services/protocol's RegistryErrorCode.
 */
export class RegistryVerificationError extends Error {
  override readonly name = 'RegistryVerificationError'
  readonly peer: string
  readonly code: string
  constructor (peer: string, code: string, detail: string) {
    super(`registry page from ${peer} refused: ${code}: ${detail}`)
    this.peer = peer
    this.code = code
  }
}
