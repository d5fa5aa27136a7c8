/**
 * Defaults for the overlay. Each says where its value came from:
 *
 * - **paper**: HyParView (Leitão, Pereira, Rodrigues, DSN 2007) or Plumtree / Epidemic
 *   Broadcast Trees (same authors, SRDS 2007);
 * - **seed**: the Solcial protocol notes this design was drawn from
 *   (/work/shared/seeds/003_*.txt, DESIGN.md §3);
 * - **measurement**: chosen from simulator runs (`npm run sim`), see docs/overlay.md;
 * - **guess**: a reasoned starting value nobody has measured yet.
 */

// ---- HyParView -----------------------------------------------------------------------------

/**
 * The passive view holds this many times the active view's size.
 * Seed: "pasivních peerů o velikosti 6⋅(log2(N)+1)" (paper §5 uses 30 passive for 5 active, also 6×).
 */
export const PASSIVE_VIEW_FACTOR = 6

/**
 * Active random walk length (ARWL): hops a FORWARDJOIN travels before a node takes the joiner
 * into its active view. Seed: "aktivní náhodnou procházkou nastavenou na 3". The paper (§5) uses 6.
 */
export const ACTIVE_RANDOM_WALK_LENGTH = 3

/**
 * Passive random walk length (PRWL): the FORWARDJOIN hop whose TTL equals this adds the joiner to
 * the passive view. Paper §5: 3. With the seed's ARWL of 3 that is the walk's first hop.
 */
export const PASSIVE_RANDOM_WALK_LENGTH = 3

/** Period of the passive-view SHUFFLE. Seed: "Pravidelně každých 15 sekund". */
export const SHUFFLE_INTERVAL_MS = 15_000

/** Random-walk TTL of a SHUFFLE. Seed: "nastaví délku náhodné procházky této zprávy na 4". */
export const SHUFFLE_TTL = 4

/** Active-view peers sampled into a SHUFFLE (ka). Paper §5: ka = 3. */
export const SHUFFLE_ACTIVE_COUNT = 3

/** Passive-view peers sampled into a SHUFFLE (kp). Paper §5: kp = 4. */
export const SHUFFLE_PASSIVE_COUNT = 4

/**
 * Repair asks with high priority while the active view is below this fraction of its capacity.
 * The paper (§4.3) asks with high priority only when the active view is empty (fraction 0).
 * Measurement (1,000 nodes, seeds 1 and 2, docs/overlay.md): with the paper's rule 6 and 3 nodes
 * settle with fewer than 5 of 10 active neighbours (the fewest: 2), and under 5% loss one of 200
 * broadcasts missed two nodes; at 0.5 none settles below 5 and none missed.
 */
export const HIGH_PRIORITY_FRACTION = 0.5

/**
 * Most of the passive view one neighbour may have filled: entries a neighbour named to us (in a
 * SHUFFLE, a SHUFFLEREPLY or a FORWARDJOIN) are capped at ceil(share × passive capacity); past
 * it, what it names replaces its own earlier entries, never other peers'. Not in the paper
 * (§4.4 trusts the sample). Issue 18: one registered peer filled all 30 passive slots of a
 * beacon with made-up IDs in one SHUFFLE. Guess: a quarter keeps three quarters of the view
 * from others while an honest sample (1 + ka + kp = 8) still fits at N ≥ 16 (passive 30 → 8).
 */
export const MAX_PASSIVE_SHARE = 0.25

/**
 * How long a NEIGHBOR (or JOIN) request may go unanswered before the peer counts as failed.
 * Guess: a dial plus a round trip on a slow mobile link. The driver's own dial failure usually
 * ends the request sooner (`linkDown`).
 */
export const NEIGHBOR_REQUEST_TIMEOUT_MS = 5_000

/**
 * How long a node keeps trying to re-establish an active link that failed (not one closed by
 * DISCONNECT). Extension, not in the paper: after a partition every node has refilled its active
 * view inside its own half, and without the retry the halves only meet where two nodes with a
 * free slot know each other (measured: merged 1–59 s after the heal without it, within 1 s with
 * it). Guess for the value: twenty shuffle rounds, long enough for a minutes-long partition,
 * short enough that dead peers are forgotten.
 */
export const RECONNECT_WINDOW_MS = 300_000

// ---- Plumtree ------------------------------------------------------------------------------

/** Period of the lazy-push IHAVE batches. Seed: "každých 500 ms, dávku ID zpráv". */
export const IHAVE_INTERVAL_MS = 500

/**
 * Wait after the first IHAVE for a missing message before sending GRAFT. Paper §3.6 leaves it to
 * the deployment ("considering the diameter of the overlay and a target maximum recovery
 * latency"). Guess: above the eager path's delay across the overlay's diameter (≈ 6 hops × 100 ms).
 */
export const GRAFT_TIMEOUT_MS = 1_000

/**
 * The first GRAFT waits longer than GRAFT_TIMEOUT_MS when eager copies have recently come later
 * than that after their first IHAVE (a quarter more than the latest), up to this. Issue 18:
 * "IHAVE and GRAFT timers longer than the measured queueing delay, or adaptive to it". Guess:
 * a lost copy is still fetched within seconds after a load spike.
 */
export const MAX_GRAFT_TIMEOUT_MS = 10_000

/** Lateness of eager copies is remembered per bucket of this many ms… */
export const LATENESS_BUCKET_MS = 5_000

/** …over this many buckets (30 s): guess, long enough to span a burst, short enough to forget it soon after. */
export const LATENESS_BUCKETS = 6

/**
 * Wait after a GRAFT before asking the next announcer. Paper §3.6: "smaller than the first, in
 * the order of an average round trip time". Guess: a few round trips on a slow link.
 */
export const GRAFT_RETRY_TIMEOUT_MS = 500

/**
 * A lazy path this many hops shorter than the eager one swaps them (GRAFT the lazy peer, PRUNE
 * the eager one). Seed: "menší než 4 hopy". Plumtree paper §5 evaluates with 7.
 */
export const OPTIMIZATION_THRESHOLD = 4

/**
 * A tree swap needs the same lazy neighbour to announce a path at least OPTIMIZATION_THRESHOLD
 * hops shorter for this many of an origin's messages in a row, not once (issue 18: single swaps
 * made for concurrent broadcasts cut each other's tree links). Guess: three is more than chance
 * under jitter and still adapts within seconds for an origin that broadcasts once a second.
 */
export const OPTIMIZATION_CONSISTENCY = 3

/**
 * An origin's messages that must come by GRAFT (asked for after an IHAVE) in a row before the
 * tree joins the neighbour that served them. One loss says nothing about where the tree runs:
 * the paper makes the link eager at once, which closes a cycle the next message prunes again
 * (measured in the concurrent scenario, 200 nodes: RMR 0.057 that way, 0.023 with this at 2).
 * Guess for the value: the smallest that is not "once".
 */
export const REPAIRS_BEFORE_JOIN = 2

/**
 * Duplicates of first messages (of origins new here) in a row over one link of the shared tree
 * before the link leaves it, for a link that has brought a first message first; a new link, or
 * one that never did, goes at its first duplicate, as in the paper. A neighbour that fetched a
 * late or lost copy by GRAFT sends it back over the link to its old parent, and pruning that
 * cut the shared tree. Measurement (simulator, 200 nodes, seeds 1–3): loss scenario RMR
 * 0.27/0.23/0.20 against 0.35 (seed 1) pruning at once, and 0.30/0.32/0.29 for the old single
 * tree; churn 0.13–0.14 (0.22 if new links get the grace too; the old tree 0.08–0.09).
 */
export const SHARED_PRUNE_DUPLICATES = 2

/**
 * Origins whose broadcast trees are kept (the most recently used). A tree is one entry per
 * active neighbour. Guess: the active publishers of a busy network over a few minutes; an origin
 * whose tree was dropped starts again from the shared tree (its first broadcast then
 * costs a few duplicates). The origin is a field of the message, so this also bounds what a
 * liar inventing origins can make a node hold.
 */
export const MAX_ORIGIN_TREES = 1_024

/**
 * An origin's broadcast tree unused this long is replaced by a fresh copy of the shared tree at
 * the origin's next message. Measurement (simulator, 200 nodes): with trees kept until evicted,
 * the churn scenario's RMR went from 0.08 to 0.50 (an idle tree takes every new link and loses
 * its departed parents). Guess for the value: long enough that an origin broadcasting every
 * second or few (the concurrent scenario, a busy author) keeps its tree, short enough that the
 * links that joined meanwhile are few.
 */
export const ORIGIN_TREE_IDLE_MS = 10_000

/**
 * First receipts held while the application validates them. Past it a new message is dropped
 * unjudged (as `ignore`). Guess: the driver bounds validations in flight far below it; this
 * bounds the state machine by itself.
 */
export const MAX_PENDING_MESSAGES = 4_096

/** Payloads kept to answer GRAFTs, by count. Guess: ten minutes of one message a second, rounded. */
export const MESSAGE_CACHE_MAX_ENTRIES = 1_024

/**
 * Payloads kept to answer GRAFTs, by total bytes (the oldest go first past it). Guess: 512
 * content-topic envelopes of the 16.5 KiB maximum, or eight payloads of the 1 MiB maximum.
 * Without it the count bound alone let one topic hold 1,024 × 1 MiB (issue 17: a flood of
 * 1 MiB frames raised a worker's RSS by 1 GiB).
 */
export const MESSAGE_CACHE_MAX_BYTES = 8 * 1_048_576

/**
 * Payloads kept to answer GRAFTs, by age. Guess: far beyond any graft delay (seconds). A timer
 * enforces it when the topic goes quiet, so a burst is released a minute later at most.
 */
export const MESSAGE_CACHE_TTL_MS = 60_000

/**
 * Rejected payloads remembered, so an identical copy from another neighbour is rejected without
 * being judged again (rejected-copies.ts), by count and by total bytes. Guess: a burst of
 * forgeries forwarded by several neighbours is judged once each; 1 MiB holds one payload of the
 * largest size or 64 content-topic envelopes of the 16.5 KiB maximum.
 */
export const REJECTED_CACHE_MAX_ENTRIES = 1_024
export const REJECTED_CACHE_MAX_BYTES = 1_048_576

/** Message IDs remembered to recognise duplicates, by count. Guess. */
export const SEEN_MAX_ENTRIES = 65_536

/**
 * Message IDs remembered to recognise duplicates, by age. Guess: longer than the payload cache so
 * a late IHAVE for a message we had does not make us GRAFT it again.
 */
export const SEEN_TTL_MS = 300_000

/** Most IDs in one IHAVE message; a longer batch is split. Guess; equals the wire limit. */
export const MAX_IHAVE_BATCH = 1_024

/** Most message IDs tracked as announced-but-missing at once (bounds memory under IHAVE floods). Guess. */
export const MAX_MISSING_MESSAGES = 4_096

/** Most announcers remembered per missing message (each is one GRAFT retry). Guess. */
export const MAX_ANNOUNCERS_PER_MESSAGE = 8

// ---- Wire ----------------------------------------------------------------------------------

/** Largest broadcast payload. Guess, the common libp2p pubsub cap (gossipsub's 1 MiB). */
export const MAX_PAYLOAD_BYTES = 1_048_576

/** Largest frame (after the driver's length prefix is removed): a payload plus headroom. Guess. */
export const MAX_FRAME_BYTES = MAX_PAYLOAD_BYTES + 65_536

/** Longest peer key on the wire. Guess: a base58 Ed25519 peer ID is 52 characters; RSA/CIDv1 forms stay under 128. */
export const MAX_PEER_KEY_BYTES = 128

/** Longest topic name. Guess: `/<network>/<topic>` with room to spare. */
export const MAX_TOPIC_BYTES = 256

/** Longest message ID. Guess: a CIDv1 string of a sha2-256 hash is about 60 characters. */
export const MAX_MESSAGE_ID_BYTES = 128

/** Most origins in one PRUNE. Guess: = the origin trees kept; a node sends one PRUNE per neighbour per IHAVE interval. */
export const MAX_PRUNE_ORIGINS = 1_024

/** Most peers in one SHUFFLE or SHUFFLEREPLY. Guess: the sample is 1 + ka + kp = 8; 4× headroom. */
export const MAX_SHUFFLE_PEERS = 32

/** Random-walk TTLs above this are clamped on decode. Guess: ≥ the paper's ARWL of 6. */
export const MAX_WALK_TTL = 16

/** Hop counts above this are clamped (decode and forward). Guess: no tree is this deep. */
export const MAX_ROUND = 1_024
