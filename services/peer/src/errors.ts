/**
 * The peer SDK's error catalogue (STYLE.md rule 5). Every failure a caller can meet is one
 * of these named classes (or an `AbortError` / `TimeoutError` from the caller's own signal),
 * so an app branches on `err.name` or `instanceof`, never on message text.
 */

/** A key file that is missing, unreadable, malformed, or holds a non-ed25519 key. */
export class KeyFileError extends Error {
  override readonly name = 'KeyFileError'
  readonly file: string
  constructor (file: string, detail: string, options?: ErrorOptions) {
    super(`key file ${file}: ${detail}`, options)
    this.file = file
  }
}

/**
 * A file write refused because its target (or a folder it would go into) is a symbolic link:
 * the CLI never writes through one, since a link planted in an output folder would send the
 * bytes anywhere its owner may write (`~/.ssh/authorized_keys`, a key file).
 */
export class SymlinkTargetError extends Error {
  override readonly name = 'SymlinkTargetError'
  readonly path: string
  constructor (path: string) {
    super(`${path} is a symbolic link; refusing to write through it (remove it, or choose another path)`)
    this.path = path
  }
}

/** A bootstrap multiaddr that cannot be used: unparsable, or without `/p2p/<peer id>`. */
export class InvalidBootstrapAddressError extends Error {
  override readonly name = 'InvalidBootstrapAddressError'
  readonly address: string
  constructor (address: string, detail: string) {
    super(`bootstrap address ${address}: ${detail}`)
    this.address = address
  }
}

/** A call that needs a started peer was made before `start()` or after `stop()`. */
export class PeerNotStartedError extends Error {
  override readonly name = 'PeerNotStartedError'
  constructor (what: string) {
    super(`${what} needs a started peer (call start() first)`)
  }
}

/** No bootstrap beacon could be reached, or none is connected for a request. */
export class NoBeaconError extends Error {
  override readonly name = 'NoBeaconError'
  constructor (detail: string, options?: ErrorOptions) {
    super(`no beacon reachable: ${detail}`, options)
  }
}

/** The content topic got no active neighbour within the join timeout. */
export class JoinTimeoutError extends Error {
  override readonly name = 'JoinTimeoutError'
  readonly timeoutMs: number
  constructor (timeoutMs: number) {
    super(`the overlay's content topic had no active neighbour after ${timeoutMs} ms`)
    this.timeoutMs = timeoutMs
  }
}

// Raised by the request/response helper the SDK shares with the beacon (services/net).
export { KeyDeniedError, MalformedResponseError, RegistryVerificationError, RemoteError, RequestTimeoutError } from '@pharos/net/errors.ts'
export type { KeyDeniedCode } from '@pharos/net/errors.ts'

/** Why an entry of a fetched log was refused. */
export type LogVerificationReason =
  /** The block does not decode as an entry (decodeEntry's code is in the detail). */
  | 'malformed'
  /** The author's signature does not hold (verifyEntry's code is in the detail). */
  | 'bad-signature'
  /** The entry is signed by someone other than the log's author. */
  | 'wrong-author'
  /** The block is not the entry asked for: its CID is not the `prev` of the entry above it. */
  | 'broken-chain'
  /** Its seq is not one less than the entry above it (or the head's seq is not the one announced). */
  | 'bad-seq'

/** A fetched log failed verification; `cid` and `seq` name the entry, `reason` says why. */
export class LogVerificationError extends Error {
  override readonly name = 'LogVerificationError'
  readonly author: string
  readonly cid: string
  readonly seq: number | undefined
  readonly reason: LogVerificationReason
  constructor (author: string, cid: string, seq: number | undefined, reason: LogVerificationReason, detail: string) {
    super(`log of ${author}: entry ${cid}${seq === undefined ? '' : ` (seq ${seq})`}: ${reason}: ${detail}`)
    this.author = author
    this.cid = cid
    this.seq = seq
    this.reason = reason
  }
}

/** No reachable source held an entry the log needs (the chain stops short of genesis). */
export class MissingEntryError extends Error {
  override readonly name = 'MissingEntryError'
  readonly author: string
  readonly cid: string
  constructor (author: string, cid: string, detail: string) {
    super(`log of ${author}: entry ${cid} is missing: ${detail}`)
    this.author = author
    this.cid = cid
  }
}

/** Nobody knows a head for an author (no entry was ever published, or no beacon holds it). */
export class UnknownAuthorError extends Error {
  override readonly name = 'UnknownAuthorError'
  readonly author: string
  constructor (author: string) {
    super(`no head is known for ${author}`)
    this.author = author
  }
}

/**
 * Publishing needs the peer's own head, so a new entry continues its log instead of forking
 * it; no beacon answered a heads request for it.
 */
export class OwnHeadUnknownError extends Error {
  override readonly name = 'OwnHeadUnknownError'
  constructor (options?: ErrorOptions) {
    super('own head unknown: no beacon answered a heads request for this peer, so a new entry could fork its log', options)
  }
}

/** A post body or attachment that is not what the entry says: bad shape, or wrong size. */
export class PostFormatError extends Error {
  override readonly name = 'PostFormatError'
  readonly cid: string
  constructor (cid: string, detail: string) {
    super(`post ${cid}: ${detail}`)
    this.cid = cid
  }
}

/**
 * A receipt that does not verify: `code` says why (receipt.ts `ReceiptErrorCode`): a bad
 * signature (`bad-statement-signature`), another signer than the beacon asked (`bad-signer`),
 * another kind (`wrong-kind`), or a valid receipt about something other than what was asked
 * (`wrong-subject`), or less of a DAG than was required (`wrong-scope`: an entry's pin where the
 * whole DAG was asked for). A beacon that hands one out is not to be trusted for it.
 */
export class ReceiptVerificationError extends Error {
  override readonly name = 'ReceiptVerificationError'
  /** The beacon that answered with it, when it came over the sync protocol. */
  readonly peer: string | undefined
  readonly code: string
  constructor (code: string, detail: string, peer?: string) {
    super(`receipt${peer === undefined ? '' : ` from ${peer}`} refused: ${code}: ${detail}`)
    this.peer = peer
    this.code = code
  }
}

/**
 * No beacon gave a receipt: none holds the subject in full. `reason` is the last beacon's:
 * `unknown` (nothing stored), `incomplete` (a gap below the head, or blocks missing),
 * `not-pinned` (the DAG is not, or not yet, pinned).
 */
export class NotHeldError extends Error {
  override readonly name = 'NotHeldError'
  readonly subject: string
  readonly reason: string
  constructor (subject: string, reason: string, detail: string) {
    super(`no receipt for ${subject}: ${reason}: ${detail}`)
    this.subject = subject
    this.reason = reason
  }
}

/**
 * A private post's content that does not decrypt under the key its entry names (the key's
 * hash matched, so the ciphertext was altered or made with another key), or whose sealed
 * object is not in the format docs/private-posts.md describes.
 */
export class ContentDecryptionError extends Error {
  override readonly name = 'ContentDecryptionError'
  constructor (what: string, detail: string, options?: ErrorOptions) {
    super(`${what}: ${detail}`, options)
  }
}
