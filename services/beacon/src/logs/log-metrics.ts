import { Counter, Gauge, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'
import { scrapeSnapshot } from '../metrics/scrape-snapshot.ts'
import { BAN_REASONS } from '../bans/ban-list.ts'
import type { BanReason } from '../bans/ban-list.ts'

/**
 * Why an incoming log entry was turned away. A closed set: the `reason` label of
 * `pharos_log_entries_total{result="rejected"}`.
 * - `malformed`: not a decodable entry (dropped, never stored; DESIGN.md §4);
 * - `bad-envelope`: the message carrying it was not well formed;
 * - `bad-signature`: the signature does not hold (its sender is banned);
 * - `unregistered-author`: the author is not a registered account;
 * - `bad-seq`: seq does not follow prev's (LogStore's `bad-seq`);
 * - `bad-prev`: prev is another author's entry (LogStore's `bad-prev`);
 * - `duplicate`: already stored;
 * - `too-large`: the block is over the entry size limit;
 * - `overloaded`: this worker's ingest queue was full, so the entry was dropped unread;
 * - `rate-limited`: the author pushed more than PHAROS_AUTHOR_ENTRIES_PER_MINUTE allows;
 * - `too-many-entries`: the author has PHAROS_AUTHOR_MAX_ENTRIES entries stored;
 * - `too-many-orphans`: the entry is an orphan and the author has PHAROS_AUTHOR_MAX_ORPHANS;
 * - `too-many-pending-pins`: PHAROS_AUTHOR_MAX_PENDING_PINS of the author's entry pins are
 *   still queued or pinning;
 * - `storage-error`: storing it failed for a reason other than Postgres being away (a bug,
 *   or a database error about this entry); logged, nothing acknowledged, and the message is
 *   left unsettled so it can be tried again (its batch's other entries are stored one by one).
 * The four before `storage-error` are per-author limits (docs/logs.md "Per-author limits"): nothing of the
 * entry is stored, and each is also counted on `pharos_limit_blocked_total`.
 */
export type LogEntryRejection =
  | 'malformed'
  | 'bad-envelope'
  | 'bad-signature'
  | 'unregistered-author'
  | 'bad-seq'
  | 'bad-prev'
  | 'duplicate'
  | 'too-large'
  | 'overloaded'
  | 'rate-limited'
  | 'too-many-entries'
  | 'too-many-orphans'
  | 'too-many-pending-pins'
  | 'storage-error'

export const LOG_ENTRY_REJECTIONS: readonly LogEntryRejection[] = [
  'malformed', 'bad-envelope', 'bad-signature', 'unregistered-author', 'bad-seq', 'bad-prev', 'duplicate', 'too-large', 'overloaded',
  'rate-limited', 'too-many-entries', 'too-many-orphans', 'too-many-pending-pins', 'storage-error'
]

/**
 * Why an ancestor fetch was not started, when no configured limit refused it (those count
 * on `pharos_limit_blocked_total`): the `reason` of `pharos_log_orphan_fetches_refused_total`.
 * - `unregistered-peer`: none of the peers that could be asked is a registered account
 *   (a connected peer that is not one causes no fetch and no dial);
 * - `author-busy`: a fetch for the same author is already under way (one per author, so a
 *   chain's fetches never multiply).
 */
export type OrphanFetchRefusal = 'unregistered-peer' | 'author-busy'
export const ORPHAN_FETCH_REFUSALS: readonly OrphanFetchRefusal[] = ['unregistered-peer', 'author-busy']

/**
 * What became of a sync `receipt` request: the `outcome` of
 * `pharos_sync_receipt_requests_total`.
 * - `unregistered`: the asker is not a registered account; refused before any query;
 * - `rate-limited`: over PHAROS_SYNC_RECEIPTS_PER_MINUTE; refused before any query;
 * - `busy`: PHAROS_SYNC_RECEIPT_CHECKS_MAX checks were running; refused before any query;
 * - `checked`: Postgres was checked (and a receipt signed, if held).
 */
export type ReceiptRequestOutcome = 'unregistered' | 'rate-limited' | 'busy' | 'checked'
export const RECEIPT_REQUEST_OUTCOMES: readonly ReceiptRequestOutcome[] = ['unregistered', 'rate-limited', 'busy', 'checked']

/**
 * What became of a HEAD request on the `sync` topic: the `outcome` of
 * `pharos_sync_head_requests_total`.
 * - `malformed`: not a well-formed, correctly signed, fresh request (head-request.ts);
 * - `unregistered`: the asker is not a registered account; nothing is queried;
 * - `not-connected`: this worker holds no direct connection to the asker; answers go only over
 *   one (a broadcast never makes a worker dial), so another worker or peer answers;
 * - `rate-limited` / `busy`: over PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE or
 *   PHAROS_SYNC_HEAD_ANSWERS_MAX (also on `pharos_limit_blocked_total`); nothing is queried;
 * - `up-to-date`: no registered author asked about has a better head here;
 * - `answered`: the better heads were pushed to the asker; `push-failed`: that push failed.
 */
export type HeadRequestOutcome = 'malformed' | 'unregistered' | 'not-connected' | 'rate-limited' | 'busy' | 'up-to-date' | 'answered' | 'push-failed'
export const HEAD_REQUEST_OUTCOMES: readonly HeadRequestOutcome[] = ['malformed', 'unregistered', 'not-connected', 'rate-limited', 'busy', 'up-to-date', 'answered', 'push-failed']

/** The reasons of `pharos_log_entries_total`: `ok` for a stored entry, else why not. */
export type LogEntryReason = 'ok' | LogEntryRejection

/** The labels of one count of `pharos_log_entries_total`: an accepted entry is always `ok`. */
export type LogEntryOutcome =
  | { result: 'accepted', reason: 'ok' }
  | { result: 'rejected', reason: LogEntryRejection }

/** Fleet-wide figures read from Postgres on scrape. */
export interface LogSnapshot {
  authors: number
  entries: number
  orphans: number
  /** Authors that signed two entries at one height. */
  equivocatingAuthors: number
  bans: number
}

/** Same reasoning as the storage snapshot: well under a scrape interval (guess). */
const SNAPSHOT_TTL_MS = 10_000

/** A counter whose labels are checked against their closed set at compile time. */
export interface ClosedCounter<Labels> {
  inc (labels: Labels, value?: number): void
}

/**
 * Metrics of the signed-log area: entries in, bans, orphan fetches and how long an entry
 * takes from arrival to pinned. Labels are closed sets (result, reason), never authors,
 * peers or CIDs. The gauges read `log_authors` (one row per author, not the entries) on
 * scrape through `readSnapshotFrom`.
 */
export function createLogMetrics (registry: Registry) {
  const registers = [registry]
  const scraped = scrapeSnapshot<LogSnapshot>(SNAPSHOT_TTL_MS)
  const snapshot = scraped.get

  const entries = new Counter({
    name: 'pharos_log_entries_total',
    help: 'Log entries received by this worker, accepted (stored) or rejected, by reason',
    labelNames: ['result', 'reason'] as const,
    registers
  })
  // Every series exists from the start, so rate() and alerts see 0 rather than nothing.
  entries.inc({ result: 'accepted', reason: 'ok' }, 0)
  for (const reason of LOG_ENTRY_REJECTIONS) entries.inc({ result: 'rejected', reason }, 0)

  const bans = new Counter({
    name: 'pharos_bans_total',
    help: 'Peers banned by this worker, by reason',
    labelNames: ['reason'] as const,
    registers
  })
  for (const reason of BAN_REASONS) bans.inc({ reason }, 0)

  const orphanFetchesRefused = new Counter({
    name: 'pharos_log_orphan_fetches_refused_total',
    help: 'Ancestor fetches not started, by reason (fetches over a configured cap count on pharos_limit_blocked_total)',
    labelNames: ['reason'] as const,
    registers
  })
  for (const reason of ORPHAN_FETCH_REFUSALS) orphanFetchesRefused.inc({ reason }, 0)

  const receiptRequests = new Counter({
    name: 'pharos_sync_receipt_requests_total',
    help: 'Receipt requests on the sync protocol, by outcome: refused before any query (unregistered, rate-limited, busy) or checked in Postgres',
    labelNames: ['outcome'] as const,
    registers
  })
  for (const outcome of RECEIPT_REQUEST_OUTCOMES) receiptRequests.inc({ outcome }, 0)

  const headRequests = new Counter({
    name: 'pharos_sync_head_requests_total',
    help: 'HEAD requests on the sync topic, by outcome: refused before any query (malformed, unregistered, not-connected, rate-limited, busy), or queried (up-to-date, answered, push-failed)',
    labelNames: ['outcome'] as const,
    registers
  })
  for (const outcome of HEAD_REQUEST_OUTCOMES) headRequests.inc({ outcome }, 0)

  return {
    /** Where the fleet-wide gauges come from (LogStore.totals and BanList.count, in worker.ts). */
    readSnapshotFrom (source: () => Promise<LogSnapshot>): void {
      scraped.readFrom(source)
    },
    entries: entries as ClosedCounter<LogEntryOutcome>,
    bans: bans as ClosedCounter<{ reason: BanReason }>,
    deferred: new Counter({
      name: 'pharos_log_messages_deferred_total',
      help: 'Gossip messages (content and key requests) another worker had already claimed, so this one did not verify or store them',
      registers
    }),
    takenOver: new Counter({
      name: 'pharos_log_messages_taken_over_total',
      help: 'Messages another worker claimed but did not finish within PHAROS_SEEN_CLAIM_TTL_MS (it died, or lost Postgres), handled by this worker instead',
      registers
    }),
    orphansFetched: new Counter({
      name: 'pharos_log_orphans_fetched_total',
      help: 'Missing ancestors of orphan entries that this worker fetched from peers',
      registers
    }),
    orphanFetchFailures: new Counter({
      name: 'pharos_log_orphan_fetch_failures_total',
      help: 'Fetches of an orphan entry\'s missing ancestor that failed (peer gone, timeout, bad answer)',
      registers
    }),
    orphanFetchesRefused: orphanFetchesRefused as ClosedCounter<{ reason: OrphanFetchRefusal }>,
    receiptRequests: receiptRequests as ClosedCounter<{ outcome: ReceiptRequestOutcome }>,
    headRequests: headRequests as ClosedCounter<{ outcome: HeadRequestOutcome }>,
    entryPinSeconds: new Histogram({
      name: 'pharos_log_entry_pin_seconds',
      help: 'Time from an entry\'s arrival to its pin (the entry and the content it links to) being pinned',
      // From a small post pinned at once on a LAN to a large DAG fetched over minutes.
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers
    }),
    authors: new Gauge({
      name: 'pharos_log_authors',
      help: 'Authors with at least one stored log entry (fleet-wide, read from Postgres on scrape)',
      registers,
      async collect () {
        const figures = await snapshot()
        if (figures !== undefined) this.set(figures.authors)
      }
    }),
    entriesStored: new Gauge({
      name: 'pharos_log_entries_stored',
      help: 'Stored log entries, connected or orphan (fleet-wide)',
      labelNames: ['state'] as const,
      registers,
      async collect () {
        const figures = await snapshot()
        if (figures === undefined) return
        this.set({ state: 'connected' }, figures.entries - figures.orphans)
        this.set({ state: 'orphan' }, figures.orphans)
      }
    }),
    equivocatingAuthors: new Gauge({
      name: 'pharos_log_equivocating_authors',
      help: 'Authors that signed two different entries at one height (fleet-wide)',
      registers,
      async collect () {
        const figures = await snapshot()
        if (figures !== undefined) this.set(figures.equivocatingAuthors)
      }
    }),
    bannedPeers: new Gauge({
      name: 'pharos_banned_peers',
      help: 'Peers banned (fleet-wide, read from Postgres on scrape)',
      registers,
      async collect () {
        const figures = await snapshot()
        if (figures !== undefined) this.set(figures.bans)
      }
    })
  }
}

export type LogMetrics = ReturnType<typeof createLogMetrics>
