/**
 * Defaults of the peer SDK, each with where its value came from (STYLE.md, after Lodestar).
 * Every one can be changed per peer through `PharosPeerInit`.
 */

/** Network id: prefixes protocol IDs and topics, as the beacon's PHAROS_NETWORK does. */
export const DEFAULT_NETWORK = 'pharos'

/**
 * N, the overlay's size estimate, which sizes the active view (log2(N)+1), until the peer
 * has its first copy of the registry (whose count then sizes the views), or for good when no
 * beacon serves one (guess: 1,000 accounts gives 10 active neighbours, enough for
 * Plumtree's tree and cheap for an app).
 */
export const DEFAULT_NETWORK_SIZE = 1000

/**
 * How often the peer asks a beacon for the registry's changes (besides at start and on each
 * beacon (re)connect). Guess: the beacon reloads its own source every 30 s
 * (PHAROS_ACCOUNTS_REFRESH_MS); a minute keeps a peer's gate at most a minute or two behind,
 * and a changes request that finds nothing is one small signed page.
 */
export const DEFAULT_REGISTRY_REFRESH_MS = 60_000

export const DEFAULT_TIMEOUTS = {
  /** Dialling one bootstrap beacon (guess: a TCP + Noise + Yamux handshake over the internet is well under 1 s). */
  dialMs: 10_000,
  /** Joining: until the content topic has an active neighbour (guess: JOIN → NEIGHBOR is one round trip; allows a slow beacon). */
  joinMs: 15_000,
  /** One sync or key-exchange request and its answer (guess: an entries answer is at most ~4 MiB). */
  requestMs: 15_000,
  /** Fetching one post: the body and every attachment over Bitswap (guess: 100 MiB at ~2 MB/s). */
  fetchPostMs: 60_000
} as const

export type PeerTimeouts = { -readonly [K in keyof typeof DEFAULT_TIMEOUTS]: number }

/**
 * While waiting for a beacon to hold entries, how often its status is asked (guess: pinning
 * a small post takes a fraction of a second; twice a second is cheap for one row lookup).
 */
export const STATUS_POLL_INTERVAL_MS = 500

/**
 * While waiting, how often the peer re-announces its head with a `heads` request carrying
 * `known`, so a beacon that missed the gossip fetches the entry (guess: a few seconds, longer
 * than one Plumtree IHAVE/GRAFT round of 500 ms + graft timeout).
 */
export const REANNOUNCE_INTERVAL_MS = 3000

/**
 * A Bitswap want not answered in this long is withdrawn and made again. Helia 7's Bitswap
 * never sends cancels and ignores a repeated want within its 5 s do-not-resend window, so
 * this must be longer than that window (the beacon's pin runner uses the same value).
 */
export const REWANT_AFTER_MS = 6000

/** Largest attachment `fetchPost` accepts, by the size the post body declares (guess: a phone video). */
export const DEFAULT_MAX_ATTACHMENT_BYTES = 256 * 1024 * 1024

/** Largest post body block (guess: text and a list of attachment links; files are linked, not inlined). */
export const MAX_POST_BODY_BYTES = 1024 * 1024

/** Most attachments one post may carry (guess). */
export const MAX_ATTACHMENTS = 256

/** Longest attachment name, in UTF-16 code units (a common file-system limit is 255 bytes). */
export const MAX_ATTACHMENT_NAME_LENGTH = 255

/** Bitswap block fetches in flight for one attachment (guess: a Helia session's width). */
export const FETCH_CONCURRENCY = 16

/** Concurrent inbound sync streams per connection (guess: a beacon fetches an orphan's ancestors one request at a time). */
export const SYNC_MAX_INBOUND_STREAMS = 8

/**
 * The peer asks the `sync` topic for heads (a signed HEAD request, docs/logs.md) at most this
 * often, 32 authors at a time; authors to ask about meanwhile wait for the next ask (guess:
 * beacons answer an asker 12 times a minute, PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE).
 */
export const HEAD_REQUEST_INTERVAL_MS = 10_000

/** A HEAD request waiting for the sync topic to have a neighbour looks again this often (guess: a join's round trip). */
export const HEAD_REQUEST_RETRY_MS = 500

/**
 * As a seeder, the peer answers one asker at most this often, and only over a connection it
 * already holds to it (guess: an honest asker asks every 10 s at most; a broadcast never makes
 * a peer dial anyone).
 */
export const HEAD_ANSWER_INTERVAL_MS = 10_000

/** Askers remembered for that interval; the oldest are forgotten first (guess). */
export const HEAD_ANSWER_ASKERS_MAX = 1024

/**
 * Gossiped entries the overlay's validator checked, kept for the delivery that follows its
 * verdict, so ingest does not verify the same two signatures again (guess: a delivery comes
 * right after its verdict; only one lost to a stop leaves anything here).
 */
export const ACCEPTED_ENTRIES_MAX = 1024

/** Key-exchange streams (pushed keys, GETKEY) a peer answers at once (guess: as for sync). */
export const KEY_EXCHANGE_MAX_INBOUND_STREAMS = 8

/**
 * How many of the online allowed readers an author pushes a private post's key to (the
 * seed's "random subset of entitled peers"; guess: enough that one is likely online when
 * another reader asks, few enough that a post to 10,000 readers costs a handful of streams).
 */
export const KEY_PUSH_FANOUT = 8

/** Keys pushed by other authors a peer holds at most (guess: 32 + ~600 bytes of rule each for a typical list). */
export const MAX_PUSHED_KEYS = 10_000

/**
 * How long `fetchPost` waits for a holder to answer a GETKEY it broadcast on the keyexchange
 * topic (guess: a few overlay hops and a dial back, on a slow link).
 */
export const KEY_TOPIC_WAIT_MS = 5000

/**
 * Connected peers (not beacons, not the author) `fetchPost` asks directly and at once for a
 * key before it asks the topic (guess: an active view of log2(N)+1 at N = 10,000, plus a few
 * the app dialled).
 */
export const KEY_ASK_NEIGHBOURS = 16

/** Keys of posts this peer read (as a reader, not a holder) it remembers, newest kept (guess: 32 bytes each). */
export const FETCHED_KEYS_MAX = 4096
