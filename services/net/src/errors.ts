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

/**
 * Why a content key could not be had:
 * - `not-entitled`: a holder's entitlement check refused this peer (e.g. not on the allow-list);
 * - `unregistered`: a holder refused this peer as not a registered account;
 * - `unknown-key`: the holder asked has no key with that hash;
 * - `no-holder-online`: no holder that would answer was reachable (asked beacons, the author,
 *   and the keyexchange topic; none gave the key, none refused by rule);
 * - `key-hash-mismatch`: what a holder sent does not hash to the key hash asked for.
 */
export type KeyDeniedCode = 'not-entitled' | 'unregistered' | 'unknown-key' | 'no-holder-online' | 'key-hash-mismatch'

/** A content key was refused, or could not be had; `code` says why, `reason` in words. */
export class KeyDeniedError extends Error {
  override readonly name = 'KeyDeniedError'
  /** The holder that refused, or a description of who was asked (`no-holder-online`). */
  readonly peer: string
  readonly reason: string
  readonly code: KeyDeniedCode
  constructor (peer: string, reason: string, code: KeyDeniedCode = 'not-entitled') {
    super(`key denied (${code}) by ${peer}: ${reason}`)
    this.peer = peer
    this.reason = reason
    this.code = code
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
