import { rowBytes } from '../storage/sql.ts'
import type { SqlClient, SqlQueryable } from '../storage/sql.ts'

/**
 * An entry as it is stored: already decoded and its signature verified by the caller (the
 * ingest pipeline). The block's bytes go to the blockstore; this is its index.
 */
export interface NewLogEntry {
  /** The entry's CID, as bytes. */
  cid: Uint8Array
  /** The author's peer ID string. */
  author: string
  seq: number
  /** The previous entry's CID bytes; null for a genesis entry (seq 0). */
  prev: Uint8Array | null
  action: string
  /** The author's clock (ms since the epoch); informational. */
  timestamp: number
  /** Bytes of the entry block. */
  size: number
}

/** An author's best head (DESIGN.md §4): highest seq, then lowest CID, among connected entries. */
export interface Head {
  author: string
  cid: Uint8Array
  seq: number
  /** Tips beyond the first: 0 for a linear log. */
  forks: number
  /** Entries stored for the author, orphans included. */
  entries: number
  /** The author row's version (a bigint as a string): it grows whenever the row changes. */
  change: string
}

/** Why an entry was refused; nothing was stored. */
export type InsertRejection =
  /** seq is not prev's seq + 1, or seq 0 with a prev, or a prev-less entry above seq 0. */
  | 'bad-seq'
  /** prev is an entry of another author. */
  | 'bad-prev'
  /** The author has `AuthorCaps.maxEntries` entries stored. */
  | 'too-many-entries'
  /** The entry would be an orphan and the author has `AuthorCaps.maxOrphans` of them. */
  | 'too-many-orphans'

/**
 * Per-author caps `insert` enforces under the author's lock, so they hold across the fleet
 * (docs/logs.md "Per-author limits").
 */
export interface AuthorCaps {
  /** Entries stored for one author, orphans and forks included (PHAROS_AUTHOR_MAX_ENTRIES). */
  maxEntries: number
  /** Orphans stored for one author (PHAROS_AUTHOR_MAX_ORPHANS). */
  maxOrphans: number
}

/** What the ingest pipeline reads before it stores anything of a new entry (`LogStore.admission`). */
export interface Admission {
  /** The entry is stored already. */
  known: boolean
  /** Whether the entry would be an orphan: its prev is not stored, or is an orphan itself. */
  orphan: boolean
  /** Entries and orphans stored for the author. */
  entries: number
  orphans: number
  /** The author's entry pins queued or pinning, counted up to the limit asked for. */
  pendingPins: number
}

export interface StoredOutcome {
  status: 'stored'
  /** The entry's ancestry does not (yet) reach a genesis entry. */
  orphan: boolean
  /** Orphans that descended from this entry and are connected now because it arrived. */
  connectedOrphans: number
  /** The author's best head after the insert; null while the author has only orphans. */
  head: Head | null
  headChanged: boolean
  /** Another entry of the author holds the same seq (recorded in `log_equivocations`). */
  equivocation: boolean
  /**
   * Set when `prev` is not stored: the entry to fetch from the peer that sent this one. An
   * orphan whose prev is stored (itself an orphan) has none: the fetch for that chain's
   * missing ancestor was asked for when the chain's lowest entry arrived; `missingAncestor`
   * finds it again.
   */
  missingPrev?: Uint8Array
}

export type InsertOutcome =
  | { status: 'duplicate' }
  | { status: 'rejected', reason: InsertRejection }
  | StoredOutcome

/** A stored entry: what was inserted, and what the store has learnt about it since. */
export interface StoredEntry extends NewLogEntry {
  receivedAt: Date
  connected: boolean
  pinId: string | null
  /** When the entry's pin settled as pinned; null before. */
  pinnedAt: Date | null
}

export interface AuthorSummary {
  author: string
  head: { cid: Uint8Array, seq: number } | null
  entries: number
  connected: number
  orphans: number
  tips: number
  /** tips - 1, at least 0. */
  forks: number
  /** Heights at which the author signed more than one entry. */
  equivocations: number
  /** Sum of the DAG sizes of the author's entry pins that are pinned (a block shared by two pins counts twice). */
  bytesPinned: number
  change: string
}

/** A cursor that this store did not hand out. */
export class InvalidCursorError extends Error {
  override readonly name = 'InvalidCursorError'
}

/** The class half of the per-author advisory lock key ("LOGS"); the other half is hashtext(author). */
const AUTHOR_LOCK_CLASS = 0x4c4f4753

/** How `has` keys its answer: the CID bytes in hex. */
export const cidKey = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
const forksOf = (tips: number): number => Math.max(tips - 1, 0)

interface AuthorRow {
  author: string
  head_cid: Uint8Array | null
  head_seq: number | null
  entries: number
  connected_entries: number
  tips: number
  orphans: number
  equivocations: number
  change: string
}

interface EntryRow {
  cid: Uint8Array
  author: string
  seq: number
  prev: Uint8Array | null
  action: string
  entry_timestamp: number
  size: number
  received_at: Date
  connected: boolean
  pin_id: string | null
  pinned_at: Date | null
}

const AUTHOR_COLUMNS = 'author, head_cid, head_seq, entries, connected_entries, tips, orphans, equivocations, change::text AS change'
const ENTRY_COLUMNS = 'cid, author, seq, prev, action, entry_timestamp, size, received_at, connected, pin_id::text AS pin_id, pinned_at'

function headOf (row: AuthorRow): Head | null {
  if (row.head_cid === null || row.head_seq === null) return null
  return { author: row.author, cid: rowBytes(row.head_cid), seq: row.head_seq, forks: forksOf(row.tips), entries: row.entries, change: row.change }
}

function entryOf (row: EntryRow): StoredEntry {
  return {
    cid: rowBytes(row.cid),
    author: row.author,
    seq: row.seq,
    prev: row.prev === null ? null : rowBytes(row.prev),
    action: row.action,
    timestamp: row.entry_timestamp,
    size: row.size,
    receivedAt: row.received_at,
    connected: row.connected,
    pinId: row.pin_id,
    pinnedAt: row.pinned_at
  }
}

/**
 * The durable index of signed profile logs (DESIGN.md §4, docs/logs.md): every valid entry,
 * forks and orphans included, and per author the best head and counters. Entries arrive
 * already verified; this class decides only where they fit in their author's log. Every
 * SQL statement about logs is here; the same SQL runs on Postgres and PGlite.
 */
export class LogStore {
  private readonly db: SqlClient

  constructor (db: SqlClient) {
    this.db = db
  }

  /**
   * Stores one entry and updates its author's head and counters, in one statement (and so
   * one transaction): `insertMany` of one entry.
   */
  async insert (entry: NewLogEntry, caps?: AuthorCaps): Promise<InsertOutcome> {
    const [outcome] = await this.insertMany([entry], caps)
    if (outcome === undefined) throw new Error(`insert of ${entry.author} #${entry.seq} answered no outcome`)
    return outcome
  }

  /**
   * Stores a batch of entries in one statement (so one transaction), each exactly as
   * `insert` would in the order given (an entry may be the prev of a later one), and answers
   * one outcome per entry, in the same order. A refused entry (duplicate, bad seq or prev,
   * over a cap) refuses only itself; nothing is stored unless the whole statement commits,
   * so an outcome is never seen before its entry is durable. The work is the server-side
   * function `log_insert_batch` (migration 011): it takes the authors' advisory locks first,
   * in lock-key order, so inserts for one author are serialised across the fleet (and two
   * batches sharing authors cannot deadlock), then decides each entry under them.
   */
  async insertMany (entries: readonly NewLogEntry[], caps?: AuthorCaps): Promise<InsertOutcome[]> {
    if (entries.length === 0) return []
    return (await insertBatch(this.db, entries, caps)).map((row) => row.outcome)
  }

  /**
   * `insertMany`, also saying of each entry whether it is without a pin: true for a stored
   * entry, and for a duplicate whose worker died (or lost Postgres) between storing and
   * pinning it. Read without a lock: `pinMany` decides under one.
   */
  async insertManyForPins (entries: readonly NewLogEntry[], caps?: AuthorCaps): Promise<Array<{ outcome: InsertOutcome, unpinned: boolean }>> {
    if (entries.length === 0) return []
    return await insertBatch(this.db, entries, caps)
  }

  /**
   * `pinOnce` for a batch of stored entries, in one transaction of a few statements
   * whatever its size: `create` makes one pin per distinct CID (one statement), then, under
   * the entries' authors' locks, the pins are recorded on the entries that still have none
   * (one statement), and a pin that lost to another worker's (or the sweep's) is deleted
   * again, so an entry keeps exactly one. The authors' locks come first in that statement,
   * before any entry row: an insert connecting orphans holds those locks while it updates
   * the orphans' rows, and an entry of this batch may be such an orphan (its prev was in a
   * batch still being stored); without them the two updated the same rows in opposite
   * orders (measured: "deadlock detected" in the ingest bench). Answers per entry, in
   * order: the new pin's ID, or undefined (it had one, or is unknown).
   */
  async pinMany (entries: ReadonlyArray<{ cid: Uint8Array, author: string }>, create: (tx: SqlQueryable, indexes: number[]) => Promise<string[]>): Promise<Array<string | undefined>> {
    const first = new Map<string, number>()
    for (const [index, { cid }] of entries.entries()) if (!first.has(cidKey(cid))) first.set(cidKey(cid), index)
    const indexes = [...first.values()]
    const answers: Array<string | undefined> = entries.map(() => undefined)
    if (indexes.length === 0) return answers
    return await this.db.transaction(async (tx) => {
      const created = await create(tx, indexes)
      if (created.length !== indexes.length) throw new Error(`create made ${created.length} pins for ${indexes.length} entries`)
      const keys = indexes.map((index) => cidKey((entries[index] as { cid: Uint8Array }).cid))
      const { rows } = await tx.query<{ pin: string }>(
        `WITH locked AS MATERIALIZED (
           SELECT count(pg_advisory_xact_lock($3::int4, keys.k)) AS n
           FROM (SELECT DISTINCT hashtext(a) AS k FROM unnest($4::text[]) AS a ORDER BY 1) AS keys)
         UPDATE log_entries e SET pin_id = p.pin::uuid
         FROM locked, unnest($1::text[], $2::text[]) AS p (cid, pin)
         WHERE e.cid = decode(p.cid, 'hex') AND e.pin_id IS NULL AND locked.n >= 0
         RETURNING p.pin`,
        [keys, created, AUTHOR_LOCK_CLASS, [...new Set(entries.map((entry) => entry.author))]])
      const attached = new Set(rows.map((row) => row.pin))
      const lost = created.filter((pin) => !attached.has(pin))
      if (lost.length > 0) await tx.query('DELETE FROM pins WHERE id = ANY($1::uuid[])', [lost])
      indexes.forEach((index, i) => { if (attached.has(created[i] as string)) answers[index] = created[i] })
      return answers
    })
  }

  /**
   * What the ingest pipeline checks before it stores a new entry of `author`, in one round
   * trip: whether the entry is stored already, whether it would be an orphan, the author's
   * counts, and how many of its pins (owner `pinOwner`) are queued or pinning, counted up to
   * `pendingUpTo` so the count costs no more than the cap it is checked against. Read
   * without the author's lock: `insert` checks the entry caps again under it.
   */
  async admission (entry: { cid: Uint8Array, prev: Uint8Array | null, author: string }, pinOwner: string, pendingUpTo: number): Promise<Admission> {
    const { rows } = await this.db.query<{ known: boolean, prev_connected: boolean | null, entries: number | null, orphans: number | null, pending: number }>(
      `SELECT EXISTS (SELECT 1 FROM log_entries WHERE cid = $1) AS known,
         (SELECT connected FROM log_entries WHERE cid = $2) AS prev_connected,
         (SELECT entries FROM log_authors WHERE author = $3) AS entries,
         (SELECT orphans FROM log_authors WHERE author = $3) AS orphans,
         (SELECT count(*) FROM (SELECT 1 FROM pins WHERE owner = $4 AND status IN ('queued', 'pinning') LIMIT $5) AS pending)::int8 AS pending`,
      [entry.cid, entry.prev, entry.author, pinOwner, pendingUpTo])
    const row = rows[0]
    return {
      known: row?.known ?? false,
      orphan: entry.prev !== null && row?.prev_connected !== true,
      entries: row?.entries ?? 0,
      orphans: row?.orphans ?? 0,
      pendingPins: row?.pending ?? 0
    }
  }

  /**
   * `admission` for a batch, in one round trip, one answer per entry in the same order. An
   * entry whose prev is earlier in the batch is not counted an orphan here: the batch stores
   * its prev first (`insertMany` checks the caps exactly, under the author's lock).
   */
  async admissionMany (entries: ReadonlyArray<{ cid: Uint8Array, prev: Uint8Array | null, author: string, pinOwner: string }>, pendingUpTo: number): Promise<Admission[]> {
    if (entries.length === 0) return []
    const { rows } = await this.db.query<{ known: boolean, prev_connected: boolean | null, entries: number | null, orphans: number | null, pending: number }>(
      `WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS i (cid, prev, author, owner, ord)),
       -- Once per owner, not per entry: a batch holds many entries of one author, and each
       -- count reads up to $5 rows.
       owners AS (
         SELECT o.owner, (SELECT count(*) FROM (SELECT 1 FROM pins WHERE owner = o.owner AND status IN ('queued', 'pinning') LIMIT $5) AS pending)::int8 AS pending
         FROM (SELECT DISTINCT owner FROM i) AS o)
       SELECT EXISTS (SELECT 1 FROM log_entries WHERE cid = decode(i.cid, 'hex')) AS known,
         (SELECT connected FROM log_entries WHERE cid = decode(i.prev, 'hex')) AS prev_connected,
         a.entries, a.orphans, w.pending
       FROM i
       LEFT JOIN log_authors a ON a.author = i.author
       LEFT JOIN owners w ON w.owner = i.owner
       ORDER BY i.ord`,
      [entries.map((entry) => cidKey(entry.cid)), entries.map((entry) => entry.prev === null ? null : cidKey(entry.prev)),
        entries.map((entry) => entry.author), entries.map((entry) => entry.pinOwner), pendingUpTo])
    const inBatch = new Set(entries.map((entry) => cidKey(entry.cid)))
    return entries.map((entry, i) => {
      const row = rows[i]
      return {
        known: row?.known ?? false,
        orphan: entry.prev !== null && row?.prev_connected !== true && !inBatch.has(cidKey(entry.prev)),
        entries: row?.entries ?? 0,
        orphans: row?.orphans ?? 0,
        pendingPins: row?.pending ?? 0
      }
    })
  }

  /** The best heads of `authors`; authors with no connected entry are left out. */
  async heads (authors: readonly string[]): Promise<Head[]> {
    if (authors.length === 0) return []
    const { rows } = await this.db.query<AuthorRow>(
      `SELECT ${AUTHOR_COLUMNS} FROM log_authors WHERE author = ANY($1::text[]) AND head_cid IS NOT NULL ORDER BY author`,
      [authors])
    return rows.flatMap((row) => headOf(row) ?? [])
  }

  /**
   * Heads of authors whose row changed after `cursor` ('0' = from the start), in the order
   * they changed, and the cursor to pass next time (the same one when nothing changed).
   *
   * A row is returned only once the transaction that wrote it, and every transaction that
   * began before it, has ended (`change_xid` below the snapshot's xmin). Transactions commit
   * in any order, so without that horizon a reader could step past a change that commits a
   * moment later and never see it. The price: a long-running write transaction anywhere on
   * the database holds the feed back until it ends.
   */
  async changesSince (cursor: string, limit: number): Promise<{ heads: Head[], cursor: string }> {
    const [xid, change] = parseChangeCursor(cursor)
    const { rows } = await this.db.query<AuthorRow & { change_xid: string }>(
      `SELECT ${AUTHOR_COLUMNS}, change_xid::text AS change_xid FROM log_authors
       WHERE (change_xid, change) > ($1::xid8, $2::int8)
         AND change_xid < pg_snapshot_xmin(pg_current_snapshot())
       ORDER BY change_xid, change
       LIMIT $3`,
      [xid, change, limit])
    const last = rows.at(-1)
    return {
      heads: rows.flatMap((row) => headOf(row) ?? []),
      cursor: last === undefined ? cursor : `${last.change_xid}.${last.change}`
    }
  }

  /** Everything the admin API shows about one author; undefined if none of its entries is stored. */
  async author (author: string): Promise<AuthorSummary | undefined> {
    const { rows } = await this.db.query<AuthorRow & { bytes_pinned: number }>(
      `SELECT ${AUTHOR_COLUMNS},
         (SELECT coalesce(sum(p.dag_bytes), 0)::int8 FROM pins p
          WHERE p.status = 'pinned' AND p.id IN (SELECT pin_id FROM log_entries WHERE author = $1 AND pin_id IS NOT NULL)) AS bytes_pinned
       FROM log_authors WHERE author = $1`,
      [author])
    const row = rows[0]
    if (row === undefined) return undefined
    return {
      author: row.author,
      head: row.head_cid === null || row.head_seq === null ? null : { cid: rowBytes(row.head_cid), seq: row.head_seq },
      entries: row.entries,
      connected: row.connected_entries,
      orphans: row.orphans,
      tips: row.tips,
      forks: forksOf(row.tips),
      equivocations: row.equivocations,
      bytesPinned: row.bytes_pinned,
      change: row.change
    }
  }

  /**
   * An author's entries, highest seq first (and lowest CID first within a seq), `limit` at
   * a time. `next` is the cursor of the following page; absent on the last page.
   */
  async entries (author: string, page: { limit: number, before?: string }): Promise<{ entries: StoredEntry[], next?: string }> {
    const [seq, cid] = page.before === undefined ? [null, null] : parseEntryCursor(page.before)
    const { rows } = await this.db.query<EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM log_entries
       WHERE author = $1 AND ($2::int8 IS NULL OR seq < $2 OR (seq = $2 AND cid > decode($3, 'hex')))
       ORDER BY seq DESC, cid ASC
       LIMIT $4`,
      [author, seq, cid, page.limit + 1])
    const entries = rows.slice(0, page.limit).map(entryOf)
    const last = entries.at(-1)
    if (rows.length <= page.limit || last === undefined) return { entries }
    return { entries, next: `${last.seq}.${cidKey(last.cid)}` }
  }

  /** One stored entry, or undefined. */
  async get (cid: Uint8Array): Promise<StoredEntry | undefined> {
    const { rows } = await this.db.query<EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM log_entries WHERE cid = $1`, [cid])
    const row = rows[0]
    return row === undefined ? undefined : entryOf(row)
  }

  /** Which of `cids` are stored, keyed by the CID bytes in hex; absent ones are left out. */
  async has (cids: readonly Uint8Array[]): Promise<Map<string, { connected: boolean, pinned: boolean }>> {
    const found = new Map<string, { connected: boolean, pinned: boolean }>()
    if (cids.length === 0) return found
    const { rows } = await this.db.query<{ cid: string, connected: boolean, pinned: boolean }>(
      `SELECT encode(cid, 'hex') AS cid, connected, pinned_at IS NOT NULL AS pinned FROM log_entries
       WHERE cid IN (SELECT decode(h, 'hex') FROM unnest($1::text[]) AS h)`,
      [cids.map(cidKey)])
    for (const row of rows) found.set(row.cid, { connected: row.connected, pinned: row.pinned })
    return found
  }

  /**
   * CIDs walking back along `prev` from `from` (inclusive) through stored entries, at most
   * `limit`; empty if `from` is not stored. What a peer asking for a log's history is sent.
   */
  async ancestry (from: Uint8Array, limit: number): Promise<Uint8Array[]> {
    if (limit <= 0) return []
    const { rows } = await this.db.query<{ cid: Uint8Array }>(
      `WITH RECURSIVE walk (cid, prev, depth) AS (
         SELECT cid, prev, 1 FROM log_entries WHERE cid = $1
         UNION ALL
         SELECT e.cid, e.prev, w.depth + 1 FROM log_entries e JOIN walk w ON e.cid = w.prev WHERE w.depth < $2)
       SELECT cid FROM walk ORDER BY depth`,
      [from, limit])
    return rows.map((row) => rowBytes(row.cid))
  }

  /**
   * What a log receipt may claim about `head`: walking back along `prev` from it, how many
   * entries are stored, how many of their blocks are in the blockstore, and whether the walk
   * ends at a genesis entry. The author's log is held up to `head` exactly when the walk
   * reaches genesis through `seq + 1` entries and every block is there (an entry's row
   * outlives its block if its pin failed and GC collected it). Undefined if `head` is not
   * stored. One recursive query; its cost grows with the log's length.
   */
  async chainHeld (head: Uint8Array): Promise<{ author: string, seq: number, connected: boolean, entries: number, blocks: number, reachesGenesis: boolean } | undefined> {
    const { rows } = await this.db.query<{ author: string, seq: number, connected: boolean, entries: number, blocks: number, reaches_genesis: boolean }>(
      `WITH RECURSIVE walk (cid, prev, depth) AS (
         SELECT cid, prev, 1 FROM log_entries WHERE cid = $1
         UNION ALL
         SELECT e.cid, e.prev, w.depth + 1 FROM log_entries e JOIN walk w ON e.cid = w.prev)
       SELECT h.author, h.seq, h.connected,
         (SELECT count(*) FROM walk)::int8 AS entries,
         -- An entry's CID is always CIDv1 dag-cbor (0x01 0x71) then the multihash the
         -- blockstore is keyed by (the protocol refuses any other prev), so the key is the
         -- CID from its third byte on.
         (SELECT count(*) FROM walk w JOIN blocks b ON b.multihash = substring(w.cid FROM 3))::int8 AS blocks,
         coalesce((SELECT prev IS NULL FROM walk ORDER BY depth DESC LIMIT 1), false) AS reaches_genesis
       FROM log_entries h WHERE h.cid = $1`,
      [head])
    const row = rows[0]
    if (row === undefined) return undefined
    return { author: row.author, seq: row.seq, connected: row.connected, entries: row.entries, blocks: row.blocks, reachesGenesis: row.reaches_genesis }
  }

  /**
   * The first missing link below `cid`: walking back along `prev` through stored entries,
   * the prev of the last one reached when it is not stored (`cid` itself when it is not
   * stored). Undefined when the walk reaches a genesis entry, or goes deeper than
   * `maxDepth` without finding a gap.
   */
  async missingAncestor (cid: Uint8Array, maxDepth = 10_000): Promise<Uint8Array | undefined> {
    const { rows } = await this.db.query<{ prev: Uint8Array | null, depth: number, found: boolean }>(
      `WITH RECURSIVE walk (cid, prev, depth) AS (
         SELECT cid, prev, 1 FROM log_entries WHERE cid = $1
         UNION ALL
         SELECT e.cid, e.prev, w.depth + 1 FROM log_entries e JOIN walk w ON e.cid = w.prev WHERE w.depth < $2)
       SELECT w.prev, w.depth, EXISTS (SELECT 1 FROM log_entries e WHERE e.cid = w.prev) AS found
       FROM walk w ORDER BY depth DESC LIMIT 1`,
      [cid, maxDepth])
    const deepest = rows[0]
    if (deepest === undefined) return rowBytes(cid)
    if (deepest.prev === null || deepest.found) return undefined
    return rowBytes(deepest.prev)
  }

  /** Records the pin that holds the entry and its content; false if the entry is not stored. */
  async setPin (cid: Uint8Array, pinId: string): Promise<boolean> {
    const { rowCount } = await this.db.query('UPDATE log_entries SET pin_id = $2 WHERE cid = $1', [cid, pinId])
    return rowCount > 0
  }

  /**
   * Gives a stored entry its pin exactly once, however many workers (or retries) ask: the
   * entry's row is locked, and `create` runs (in the same transaction) only if the entry has
   * no pin yet. Returns the new pin's ID, or undefined if it already had one (or is unknown).
   */
  async pinOnce (cid: Uint8Array, create: (tx: SqlQueryable) => Promise<string>): Promise<string | undefined> {
    return await this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ has_pin: boolean }>('SELECT pin_id IS NOT NULL AS has_pin FROM log_entries WHERE cid = $1 FOR UPDATE', [cid])
      if (rows[0] === undefined || rows[0].has_pin) return undefined
      const pinId = await create(tx)
      await tx.query('UPDATE log_entries SET pin_id = $2 WHERE cid = $1', [cid, pinId])
      return pinId
    })
  }

  /**
   * Stored entries without a pin that arrived more than `olderThanMs` ago: a worker died
   * (or Postgres went away) between storing an entry and pinning it. Oldest first.
   */
  async unpinned (olderThanMs: number, limit: number): Promise<Array<{ cid: Uint8Array, author: string, seq: number }>> {
    const { rows } = await this.db.query<{ cid: Uint8Array, author: string, seq: number }>(
      `SELECT cid, author, seq FROM log_entries
       WHERE pin_id IS NULL AND received_at < now() - make_interval(secs => $1::float8 / 1000)
       ORDER BY received_at LIMIT $2`,
      [olderThanMs, limit]
    )
    return rows.map((row) => ({ ...row, cid: rowBytes(row.cid) }))
  }

  /**
   * Marks the entries held by `pinId` as pinned (once) and returns them, with how long each
   * took from arrival to pinned by the database's clock (for pharos_log_entry_pin_seconds).
   */
  async markPinned (pinId: string): Promise<Array<{ cid: Uint8Array, receivedAt: Date, seconds: number }>> {
    const { rows } = await this.db.query<{ cid: Uint8Array, received_at: Date, seconds: number }>(
      `UPDATE log_entries SET pinned_at = now() WHERE pin_id = $1 AND pinned_at IS NULL
       RETURNING cid, received_at, extract(epoch FROM pinned_at - received_at)::float8 AS seconds`,
      [pinId])
    return rows.map((row) => ({ cid: rowBytes(row.cid), receivedAt: row.received_at, seconds: row.seconds }))
  }

  /** Fleet-wide figures for the log gauges: one pass over the authors table, not the entries. */
  async totals (): Promise<{ authors: number, entries: number, orphans: number, equivocatingAuthors: number }> {
    const { rows } = await this.db.query<{ authors: number, entries: number, orphans: number, equivocating: number }>(
      `SELECT count(*)::int8 AS authors, coalesce(sum(entries), 0)::int8 AS entries, coalesce(sum(orphans), 0)::int8 AS orphans,
         count(*) FILTER (WHERE equivocations > 0)::int8 AS equivocating
       FROM log_authors`)
    const row = rows[0]
    return { authors: row?.authors ?? 0, entries: row?.entries ?? 0, orphans: row?.orphans ?? 0, equivocatingAuthors: row?.equivocating ?? 0 }
  }

  /**
   * Recomputes an author's row from its entries (head, counts, equivocations), for repair
   * and as the reference the incremental counts of `insert` are tested against. Returns the
   * summary it wrote, or undefined if the author has no entries.
   */
  async recount (author: string): Promise<AuthorSummary | undefined> {
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1::int4, hashtext($2))', [AUTHOR_LOCK_CLASS, author])
      await recountAuthor(tx, author)
    })
    return await this.author(author)
  }
}

interface BatchRow {
  o_status: 'stored' | 'duplicate' | 'rejected'
  o_reason: InsertRejection | null
  o_orphan: boolean | null
  o_connected_orphans: number | null
  o_missing_prev: boolean | null
  o_equivocation: boolean | null
  o_head_changed: boolean | null
  o_unpinned: boolean | null
  o_head_cid: Uint8Array | null
  o_head_seq: number | null
  o_tips: number | null
  o_entries: number | null
  o_change: string | null
}

/**
 * `log_insert_batch` (migration 011) over `entries`: one round trip, one outcome per entry
 * in order, and whether each stored entry is without a pin (its row is locked until the
 * transaction ends).
 */
async function insertBatch (db: SqlQueryable, entries: readonly NewLogEntry[], caps: AuthorCaps | undefined): Promise<Array<{ outcome: InsertOutcome, unpinned: boolean }>> {
  // bytea arrays travel as hex text: the one array encoding both engines' drivers share.
  const { rows } = await db.query<BatchRow>(
    `SELECT o_status, o_reason, o_orphan, o_connected_orphans, o_missing_prev, o_equivocation, o_head_changed, o_unpinned,
       o_head_cid, o_head_seq, o_tips, o_entries, o_change
     FROM log_insert_batch($1::int4,
       ARRAY(SELECT decode(h, 'hex') FROM unnest($2::text[]) WITH ORDINALITY AS c (h, n) ORDER BY n),
       $3::text[], $4::int8[],
       ARRAY(SELECT decode(h, 'hex') FROM unnest($5::text[]) WITH ORDINALITY AS c (h, n) ORDER BY n),
       $6::text[], $7::int8[], $8::int4[], $9::int4, $10::int4)
     ORDER BY o_ord`,
    [AUTHOR_LOCK_CLASS, entries.map((entry) => cidKey(entry.cid)), entries.map((entry) => entry.author), entries.map((entry) => entry.seq),
      entries.map((entry) => entry.prev === null ? null : cidKey(entry.prev)), entries.map((entry) => entry.action),
      entries.map((entry) => entry.timestamp), entries.map((entry) => entry.size), caps?.maxEntries ?? null, caps?.maxOrphans ?? null],
    { prepareAs: 'pharos_log_insert_batch' })
  if (rows.length !== entries.length) throw new Error(`log_insert_batch answered ${rows.length} rows for ${entries.length} entries`)
  return rows.map((row, index) => ({ outcome: outcomeOf(row, entries[index] as NewLogEntry), unpinned: row.o_unpinned === true }))
}

function outcomeOf (row: BatchRow, entry: NewLogEntry): InsertOutcome {
  if (row.o_status === 'duplicate') return { status: 'duplicate' }
  if (row.o_status === 'rejected') {
    if (row.o_reason === null) throw new Error(`log_insert_batch rejected ${entry.author} #${entry.seq} without a reason`)
    return { status: 'rejected', reason: row.o_reason }
  }
  const head = row.o_head_cid === null || row.o_head_seq === null || row.o_entries === null || row.o_tips === null || row.o_change === null
    ? null
    : { author: entry.author, cid: rowBytes(row.o_head_cid), seq: Number(row.o_head_seq), forks: forksOf(row.o_tips), entries: row.o_entries, change: row.o_change }
  const outcome: StoredOutcome = {
    status: 'stored',
    orphan: row.o_orphan === true,
    connectedOrphans: row.o_connected_orphans ?? 0,
    head,
    headChanged: row.o_head_changed === true,
    equivocation: row.o_equivocation === true
  }
  if (row.o_missing_prev === true && entry.prev !== null) outcome.missingPrev = rowBytes(entry.prev)
  return outcome
}

async function recountAuthor (tx: SqlQueryable, author: string): Promise<void> {
  await tx.query(
    `WITH mine AS (SELECT cid, seq, connected FROM log_entries WHERE author = $1),
     best AS (SELECT cid, seq FROM mine WHERE connected ORDER BY seq DESC, cid ASC LIMIT 1)
     UPDATE log_authors SET
       head_cid = (SELECT cid FROM best),
       head_seq = (SELECT seq FROM best),
       entries = (SELECT count(*) FROM mine),
       connected_entries = (SELECT count(*) FROM mine WHERE connected),
       orphans = (SELECT count(*) FROM mine WHERE NOT connected),
       tips = (SELECT count(*) FROM mine m WHERE m.connected
               AND NOT EXISTS (SELECT 1 FROM log_entries c WHERE c.prev = m.cid AND c.connected)),
       equivocations = (SELECT count(*) FROM (SELECT seq FROM mine GROUP BY seq HAVING count(*) > 1) AS heights),
       change = nextval('log_changes'),
       change_xid = pg_current_xact_id(),
       updated_at = now()
     WHERE author = $1`,
    [author])
}

function parseChangeCursor (cursor: string): [string, string] {
  if (cursor === '0') return ['0', '0']
  const match = /^(\d{1,20})\.(\d{1,19})$/.exec(cursor)
  if (match?.[1] === undefined || match[2] === undefined) throw new InvalidCursorError(`not a changes cursor: ${cursor}`)
  return [match[1], match[2]]
}

function parseEntryCursor (cursor: string): [number, string] {
  const match = /^(\d{1,16})\.((?:[0-9a-f]{2}){1,128})$/.exec(cursor)
  if (match?.[1] === undefined || match[2] === undefined) throw new InvalidCursorError(`not an entries cursor: ${cursor}`)
  return [Number(match[1]), match[2]]
}
