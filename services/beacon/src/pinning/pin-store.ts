import { randomUUID } from 'node:crypto'
import type { CID } from 'multiformats/cid'
import type { PinStatusName } from './storage-metrics.ts'
import type { SqlClient, SqlQueryable } from '../storage/sql.ts'
import { LOG_ENTRY_KIND, PIN_KIND_KEY } from './log-entry-pins.ts'

export type PinStatus = PinStatusName

/**
 * What a pin is, as the worker decided it (the `kind` column, never the client's `meta`):
 * `log-entry` for a profile-log entry's pin (log-entry-pins.ts). Other pins have none.
 */
export type PinKind = typeof LOG_ENTRY_KIND

/**
 * Meta keys under this prefix are the worker's own: a Pinning API client may not set them
 * (POST /pins answers 400), so no client-written value can ever pass for one the worker wrote.
 */
export const RESERVED_META_PREFIX = 'pharos:'

/** The meta keys a client may not set, in `meta`'s order. */
export function reservedMetaKeys (meta: Readonly<Record<string, string>> | undefined): string[] {
  return Object.keys(meta ?? {}).filter((key) => key.startsWith(RESERVED_META_PREFIX))
}

/** A pin from a client carried a meta key under RESERVED_META_PREFIX (the HTTP route refuses it first). */
export class ReservedMetaKeyError extends Error {
  override readonly name = 'ReservedMetaKeyError'
  readonly keys: string[]

  constructor (keys: string[]) {
    super(`meta keys starting with "${RESERVED_META_PREFIX}" are reserved for the worker: ${keys.join(', ')}`)
    this.keys = keys
  }
}

/** A pin as the Pinning Service API shows it. */
export interface PinRecord {
  id: string
  owner: string
  cid: string
  name: string | null
  meta: Record<string, string>
  origins: string[]
  status: PinStatus
  /** Why the pin failed, or why the last attempt did (while it waits to be retried). */
  failureReason: string | null
  /** RFC 3339 with microseconds: unique, so clients can page with `before`. */
  created: string
  attempts: number
  dagBlocks: number | null
  dagBytes: number | null
  /** What the latest attempt has walked so far (PinStore.reportProgress); zero before the first. */
  progress: PinProgress
}

/** How far a pin's latest attempt got: blocks and bytes walked, and when it started (null before the first). */
export interface PinProgress {
  blocks: number
  bytes: number
  /** RFC 3339; null while the pin waits for its first attempt. */
  startedAt: string | null
}

export interface NewPin {
  owner: string
  cid: CID
  /** The CID as the client wrote it; shown back unchanged. */
  cidText: string
  name?: string
  meta?: Record<string, string>
  origins?: string[]
}

/** A pin the worker makes itself (the log ingest): it may say what kind of pin it is. */
export interface NewInternalPin extends NewPin {
  kind?: PinKind
}

export type TextMatch = 'exact' | 'iexact' | 'partial' | 'ipartial'

export interface PinFilter {
  cids?: CID[]
  name?: string
  match?: TextMatch
  statuses: PinStatus[]
  before?: string
  after?: string
  meta?: Record<string, string>
  limit: number
}

/** A claimed job: the lease token fences every write the holder makes. */
export interface PinJob {
  id: string
  owner: string
  cid: string
  origins: string[]
  /** This attempt's number, 1 for the first. */
  attempt: number
  leaseToken: string
  /** Why the previous attempt ended, if it did not succeed. */
  lastFailure: string | null
  /** `log-entry` for a profile-log entry's pin (see log-entry-pins.ts), else null: from the `kind` column, never from meta. */
  kind: PinKind | null
}

export interface StorageUsage {
  blocks: number
  bytes: number
}

const PIN_COLUMNS = `id::text AS id, owner, cid, name, meta, origins, status, failure_reason AS "failureReason",
  to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created,
  attempts, dag_blocks AS "dagBlocks", dag_bytes AS "dagBytes",
  json_build_object('blocks', progress_blocks, 'bytes', progress_bytes,
    'startedAt', to_char(progress_started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) AS progress`

/** The root as one canonical string, so `?cid=` matches whichever way a client wrote it. */
export function canonicalCid (cid: CID): string {
  return cid.toV1().toString()
}

function escapeLike (text: string): string {
  return text.replace(/[\\%_]/g, (char) => '\\' + char)
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

/** The class half of the per-owner quota lock key ("QUOT"); the other half is hashtext(owner). */
const OWNER_QUOTA_LOCK_CLASS = 0x51554f54

/**
 * The job the next claim takes (PinStore.claim), locked: the due job of the owner with the
 * fewest jobs running, then the oldest. Exported for its query plan's test.
 *
 * - `owners`: the owners with jobs in the queue, by a skip scan of `pins_queue_by_owner`;
 * - `due`: each one's oldest due queued job (a probe of the same index: rows of the owner
 *   not yet due sort after it), and every job whose lease lapsed (few: `pins_running_by_owner`);
 * - `ranked`: each candidate with its owner's running jobs (`pins_running_by_owner`).
 */
export const CLAIM_NEXT_SQL = `
  WITH RECURSIVE owners (owner) AS (
    (SELECT owner FROM pins WHERE status IN ('queued', 'pinning') ORDER BY owner LIMIT 1)
    UNION ALL
    SELECT (SELECT p.owner FROM pins p WHERE p.status IN ('queued', 'pinning') AND p.owner > o.owner ORDER BY p.owner LIMIT 1)
    FROM owners o WHERE o.owner IS NOT NULL
  ),
  due AS (
    SELECT q.id, q.owner, q.not_before, q.created FROM owners o
    CROSS JOIN LATERAL (
      SELECT p.id, p.owner, p.not_before, p.created FROM pins p
      WHERE p.owner = o.owner AND p.status IN ('queued', 'pinning') AND p.not_before <= now() AND p.status = 'queued'
      ORDER BY p.not_before, p.created LIMIT 1) q
    UNION ALL
    SELECT id, owner, not_before, created FROM pins WHERE status = 'pinning' AND lease_expires_at < now()
  ),
  ranked AS (
    SELECT d.id, d.not_before, d.created,
      (SELECT count(*) FROM pins r WHERE r.owner = d.owner AND r.status = 'pinning' AND r.lease_expires_at >= now()) AS running
    FROM due d
  )
  SELECT p.id FROM ranked c JOIN pins p ON p.id = c.id
  WHERE (p.status = 'queued' AND p.not_before <= now()) OR (p.status = 'pinning' AND p.lease_expires_at < now())
  ORDER BY c.running, c.not_before, c.created
  LIMIT 1
  FOR UPDATE OF p SKIP LOCKED`

/** What became of a batch of blocks a job tried to record (PinStore.recordBlocks). */
export type RecordOutcome = 'recorded' | 'lease-lost' | 'over-quota'

/**
 * Every SQL statement about pins: the API's reads and writes, the durable job queue
 * (claim, lease renewal, settle), and per-owner storage accounting. The same SQL runs on
 * Postgres and PGlite.
 */
export class PinStore {
  private readonly db: SqlClient

  constructor (db: SqlClient) {
    this.db = db
  }

  /** A client's pin (Pinning API): never of a kind, and refused with a reserved meta key. */
  async create (pin: NewPin): Promise<PinRecord> {
    refuseReservedMeta(pin)
    return await this.insert(this.db, pin, null)
  }

  /**
   * The worker's own pin, inside the caller's transaction (so it commits with what refers to
   * it): the log ingest's entry pins. Its kind is `pin.kind`; the ingest that marks its pins
   * with meta `pharos:kind: log-entry` instead gets the same kind. Only the worker reaches
   * this, and clients can never write a `pharos:` meta key, so the marker is always the
   * worker's own.
   */
  async createIn (tx: SqlQueryable, pin: NewInternalPin): Promise<PinRecord> {
    return await this.insert(tx, pin, kindOf(pin))
  }

  /**
   * `createIn` for many pins in one statement (the log ingest pins a batch of entries
   * this way): their IDs, in order. A row whose `created` clashed with another's (two in the
   * same microsecond) is inserted again with a later clock, as `insert` does.
   */
  async createManyIn (tx: SqlQueryable, pins: readonly NewInternalPin[]): Promise<string[]> {
    const ids = pins.map(() => randomUUID())
    let pending = pins.map((_, index) => index)
    while (pending.length > 0) {
      const { rows } = await tx.query<{ id: string }>(
        `INSERT INTO pins (id, owner, cid, root_cid, name, meta, origins, kind, created)
         SELECT p.id::uuid, p.owner, p.cid, p.root_cid, p.name, p.meta::jsonb,
           ARRAY(SELECT jsonb_array_elements_text(p.origins::jsonb)), p.kind, clock_timestamp()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
           WITH ORDINALITY AS p (id, owner, cid, root_cid, name, meta, origins, kind, n)
         ORDER BY p.n
         ON CONFLICT (created) DO NOTHING
         RETURNING id::text AS id`,
        [pending.map((i) => ids[i]), pending.map((i) => pins[i]?.owner), pending.map((i) => pins[i]?.cidText),
          pending.map((i) => { const pin = pins[i] as NewInternalPin; return canonicalCid(pin.cid) }),
          pending.map((i) => pins[i]?.name ?? null), pending.map((i) => JSON.stringify(pins[i]?.meta ?? {})),
          pending.map((i) => JSON.stringify(pins[i]?.origins ?? [])), pending.map((i) => { const pin = pins[i] as NewInternalPin; return kindOf(pin) })]
      )
      const inserted = new Set(rows.map((row) => row.id))
      pending = pending.filter((i) => !inserted.has(ids[i] as string))
    }
    return ids
  }

  /**
   * Replaces a pin in one transaction: the new pin is queued, and the old one is hidden but
   * keeps holding its blocks until the new one settles, so blocks common to both are never
   * collected in between. `undefined` if the owner has no such pin.
   */
  async replace (owner: string, id: string, pin: NewPin): Promise<PinRecord | undefined> {
    refuseReservedMeta(pin)
    return await this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string }>(
        'SELECT id::text AS id FROM pins WHERE id = $1 AND owner = $2 AND replaced_by IS NULL FOR UPDATE',
        [id, owner]
      )
      if (rows.length === 0) return undefined
      const created = await this.insert(tx, pin, null)
      // Whatever the old pin itself replaced moves along with it.
      await tx.query('UPDATE pins SET replaced_by = $1 WHERE id = $2 OR replaced_by = $2', [created.id, id])
      return created
    })
  }

  async get (owner: string, id: string): Promise<PinRecord | undefined> {
    const { rows } = await this.db.query<PinRecord>(
      `SELECT ${PIN_COLUMNS} FROM pins WHERE id = $1 AND owner = $2 AND replaced_by IS NULL`,
      [id, owner]
    )
    return rows[0]
  }

  /** Removes a pin (and what it replaced); its blocks become collectable. */
  async remove (owner: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM pins WHERE id = $1 AND owner = $2 AND replaced_by IS NULL', [id, owner])
    return rowCount > 0
  }

  /** The owner's pins matching `filter`, newest first, and how many match in all. */
  async list (owner: string, filter: PinFilter): Promise<{ count: number, results: PinRecord[] }> {
    const params: unknown[] = [owner, filter.statuses]
    const where = ['owner = $1', 'replaced_by IS NULL', 'status = ANY($2::text[])']
    const param = (value: unknown): string => {
      params.push(value)
      return `$${params.length}`
    }
    if (filter.cids !== undefined) where.push(`root_cid = ANY(${param(filter.cids.map(canonicalCid))}::text[])`)
    if (filter.name !== undefined) {
      switch (filter.match ?? 'exact') {
        case 'exact': where.push(`name = ${param(filter.name)}`); break
        case 'iexact': where.push(`lower(name) = lower(${param(filter.name)})`); break
        case 'partial': where.push(`name LIKE ${param(`%${escapeLike(filter.name)}%`)}`); break
        case 'ipartial': where.push(`name ILIKE ${param(`%${escapeLike(filter.name)}%`)}`); break
      }
    }
    if (filter.before !== undefined) where.push(`created < ${param(filter.before)}::timestamptz`)
    if (filter.after !== undefined) where.push(`created > ${param(filter.after)}::timestamptz`)
    if (filter.meta !== undefined) where.push(`meta @> ${param(JSON.stringify(filter.meta))}::jsonb`)
    const clause = where.join(' AND ')
    const counted = await this.db.query<{ count: number }>(`SELECT count(*)::int8 AS count FROM pins WHERE ${clause}`, params)
    const { rows } = await this.db.query<PinRecord>(
      `SELECT ${PIN_COLUMNS} FROM pins WHERE ${clause} ORDER BY created DESC LIMIT ${param(filter.limit)}`,
      params
    )
    return { count: counted.rows[0]?.count ?? 0, results: rows }
  }

  /**
   * Distinct blocks (and their bytes) held by the owner's pins, other than `exceptPin`: a
   * block held by several of them counts once.
   */
  async usage (owner: string, exceptPin?: string): Promise<StorageUsage> {
    const { rows } = await this.db.query<StorageUsage>(
      `SELECT count(*)::int8 AS blocks, coalesce(sum(b.size), 0)::int8 AS bytes FROM blocks b
       WHERE b.multihash IN (
         SELECT pb.multihash FROM pin_blocks pb JOIN pins p ON p.id = pb.pin_id
         WHERE p.owner = $1 AND ($2::uuid IS NULL OR p.id <> $2::uuid))`,
      [owner, exceptPin ?? null]
    )
    return rows[0] ?? { blocks: 0, bytes: 0 }
  }

  /**
   * What a pin receipt may claim about the DAG under `cid`: the blocks a `pinned` pin of that
   * root (any owner's) has recorded, counted once each, their bytes, and the pin's kind (an
   * entry pin holds the entry and its content, not `prev`: its receipt must say so). By CID, a
   * whole-DAG pin is preferred to an entry pin of the same root. With `pinId`, that pin only
   * (it must still be pinned). Undefined when no such pin is pinned.
   */
  async heldDag (target: { cid: CID } | { pinId: string }): Promise<{ pinId: string, root: string, blocks: number, bytes: number, kind: PinKind | null } | undefined> {
    const byPin = 'pinId' in target
    // One statement, so the pin's status and its blocks are read from one snapshot.
    const { rows } = await this.db.query<{ id: string, root_cid: string, blocks: number, bytes: number, kind: PinKind | null }>(
      `WITH pin AS (
         SELECT id, root_cid, kind FROM pins WHERE status = 'pinned' AND ${byPin ? 'id = $1::uuid' : 'root_cid = $1'}
         ORDER BY kind IS NOT NULL, created LIMIT 1)
       SELECT pin.id::text AS id, pin.root_cid, pin.kind,
         (SELECT count(*) FROM pin_blocks pb WHERE pb.pin_id = pin.id)::int8 AS blocks,
         (SELECT coalesce(sum(b.size), 0) FROM pin_blocks pb JOIN blocks b ON b.multihash = pb.multihash WHERE pb.pin_id = pin.id)::int8 AS bytes
       FROM pin`,
      [byPin ? target.pinId : canonicalCid(target.cid)]
    )
    const pin = rows[0]
    return pin === undefined ? undefined : { pinId: pin.id, root: pin.root_cid, blocks: pin.blocks, bytes: pin.bytes, kind: pin.kind }
  }

  /** Usage of every owner that holds blocks, largest first. */
  async usageByOwner (): Promise<Array<StorageUsage & { owner: string, pins: number }>> {
    const { rows } = await this.db.query<StorageUsage & { owner: string, pins: number }>(
      `WITH held AS (SELECT DISTINCT p.owner, pb.multihash FROM pin_blocks pb JOIN pins p ON p.id = pb.pin_id)
       SELECT o.owner, o.pins, coalesce(u.blocks, 0)::int8 AS blocks, coalesce(u.bytes, 0)::int8 AS bytes
       FROM (SELECT owner, count(*)::int8 AS pins FROM pins WHERE replaced_by IS NULL GROUP BY owner) o
       LEFT JOIN (SELECT h.owner, count(*) AS blocks, sum(b.size) AS bytes FROM held h JOIN blocks b ON b.multihash = h.multihash GROUP BY h.owner) u
         ON u.owner = o.owner
       ORDER BY bytes DESC, o.owner`
    )
    return rows
  }

  /** Whether another pin of `owner` already holds the block (so it adds nothing to the owner's usage). */
  async ownerHolds (owner: string, multihash: Uint8Array, exceptPin: string): Promise<boolean> {
    const { rows } = await this.db.query(
      `SELECT 1 FROM pin_blocks pb JOIN pins p ON p.id = pb.pin_id
       WHERE pb.multihash = $1 AND p.owner = $2 AND p.id <> $3 LIMIT 1`,
      [multihash, owner, exceptPin]
    )
    return rows.length > 0
  }

  async countsByStatus (): Promise<Record<PinStatus, number>> {
    const { rows } = await this.db.query<{ status: PinStatus, count: number }>('SELECT status, count(*)::int8 AS count FROM pins GROUP BY status')
    const counts: Record<PinStatus, number> = { queued: 0, pinning: 0, pinned: 0, failed: 0 }
    for (const row of rows) counts[row.status] = row.count
    return counts
  }

  /**
   * Claims a due job: queued and past its backoff, or pinning under a lease that expired (its
   * worker died). Fair across owners: the due job of the owner with the fewest jobs running
   * fleet-wide, then the oldest, so one owner's backlog (an author's burst of entries) takes
   * one slot's turn at a time and never holds every slot while another owner waits.
   *
   * The owners with jobs in the queue are found by a skip scan of `pins_queue_by_owner` (one
   * index probe per owner, not one row per job), each owner's oldest due job by a probe of
   * the same index, and its running jobs from `pins_running_by_owner`: the cost grows with
   * the owners waiting, not with the jobs queued. `FOR UPDATE SKIP LOCKED` lets every worker
   * claim at once: a candidate another claim holds is skipped for the next one.
   */
  async claim (worker: string, leaseMs: number): Promise<PinJob | undefined> {
    const { rows } = await this.db.query<PinJob>(
      `UPDATE pins SET status = 'pinning', attempts = attempts + 1, lease_owner = $1, lease_token = $2,
         lease_expires_at = now() + $3::float8 * interval '1 millisecond', updated_at = now(),
         progress_blocks = 0, progress_bytes = 0, progress_started_at = now()
       WHERE id = (${CLAIM_NEXT_SQL})
       RETURNING id::text AS id, owner, cid, origins, attempts AS attempt, lease_token::text AS "leaseToken", failure_reason AS "lastFailure", kind`,
      [worker, randomUUID(), leaseMs]
    )
    return rows[0]
  }

  /** Extends the lease; false if the job is no longer this holder's (lease lapsed and taken, or pin removed). */
  async renew (job: PinJob, leaseMs: number): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE pins SET lease_expires_at = now() + $3::float8 * interval '1 millisecond'
       WHERE id = $1 AND lease_token = $2 AND status = 'pinning'`,
      [job.id, job.leaseToken, leaseMs]
    )
    return rowCount > 0
  }

  /**
   * Writes how far the job's attempt has got, for `GET /pins/{requestid}` on any worker.
   * Fenced by the lease: a holder that lost its job writes nothing.
   */
  async reportProgress (job: PinJob, progress: { blocks: number, bytes: number }): Promise<void> {
    await this.db.query(
      `UPDATE pins SET progress_blocks = $3, progress_bytes = $4
       WHERE id = $1 AND lease_token = $2 AND status = 'pinning'`,
      [job.id, job.leaseToken, progress.blocks, progress.bytes]
    )
  }

  /**
   * Records blocks the pin now holds, within its owner's quota: `lease-lost` if the job is no
   * longer this holder's, `over-quota` (nothing recorded) if the blocks new to the owner would
   * take its usage past `quotaBytes`.
   *
   * Atomic per owner: the check and the rows it counts are written under one transaction-scoped
   * advisory lock on the owner, so pins of one owner recording at once (on any worker) are
   * checked one after the other against usage that includes each other's blocks, and cannot
   * each spend the same remaining quota. Usage is read from `owner_usage`, which only ever
   * over-counts (see 008_pin_kind_fair_claims_quota.sql); a batch it would refuse is checked
   * again against the exact count before it is refused.
   */
  async recordBlocks (job: PinJob, multihashes: readonly Uint8Array[], quotaBytes: number): Promise<RecordOutcome> {
    if (multihashes.length === 0) return await this.stillHeld(job) ? 'recorded' : 'lease-lost'
    const batch = [...new Set(multihashes.map(hex))]
    return await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1::int4, hashtext($2))', [OWNER_QUOTA_LOCK_CLASS, job.owner])
      const { rows: held } = await tx.query(
        'SELECT 1 FROM pins WHERE id = $1 AND lease_token = $2 AND status = \'pinning\' FOR SHARE', [job.id, job.leaseToken])
      if (held.length === 0) return 'lease-lost'
      // What the batch adds to the owner: blocks no pin of the owner (this one included) holds yet.
      const { rows: added } = await tx.query<{ bytes: number }>(
        `SELECT coalesce(sum(b.size), 0)::int8 AS bytes FROM blocks b
         WHERE b.multihash IN (SELECT decode(h, 'hex') FROM unnest($1::text[]) AS h)
           AND NOT EXISTS (SELECT 1 FROM pin_blocks pb JOIN pins p ON p.id = pb.pin_id WHERE pb.multihash = b.multihash AND p.owner = $2)`,
        [batch, job.owner])
      const addedBytes = Number(added[0]?.bytes ?? 0)
      if (addedBytes > 0) {
        let usage = await this.countedUsage(tx, job.owner)
        if (usage + addedBytes > quotaBytes) usage = await this.recountUsage(tx, job.owner)
        if (usage + addedBytes > quotaBytes) return 'over-quota'
        await tx.query('UPDATE owner_usage SET bytes = bytes + $2 WHERE owner = $1', [job.owner, addedBytes])
      }
      await tx.query(
        `INSERT INTO pin_blocks (pin_id, multihash)
         SELECT $1::uuid, decode(h, 'hex') FROM unnest($2::text[]) AS h
         ON CONFLICT DO NOTHING`,
        [job.id, batch])
      return 'recorded'
    })
  }

  /** The owner's usage as `owner_usage` counts it (counted exactly when it has no row yet). Under the owner's lock. */
  private async countedUsage (tx: SqlQueryable, owner: string): Promise<number> {
    const { rows } = await tx.query<{ bytes: number }>('SELECT bytes::int8 AS bytes FROM owner_usage WHERE owner = $1', [owner])
    const counted = rows[0]
    return counted === undefined ? await this.recountUsage(tx, owner) : Number(counted.bytes)
  }

  /** Counts the owner's usage exactly and writes it to `owner_usage`. Under the owner's lock. */
  private async recountUsage (tx: SqlQueryable, owner: string): Promise<number> {
    const { rows } = await tx.query<{ bytes: number }>(
      `INSERT INTO owner_usage (owner, bytes, counted_at)
       SELECT $1, coalesce(sum(b.size), 0), now() FROM blocks b
       WHERE b.multihash IN (SELECT pb.multihash FROM pin_blocks pb JOIN pins p ON p.id = pb.pin_id WHERE p.owner = $1)
       ON CONFLICT (owner) DO UPDATE SET bytes = EXCLUDED.bytes, counted_at = EXCLUDED.counted_at
       RETURNING bytes::int8 AS bytes`,
      [owner])
    return Number(rows[0]?.bytes ?? 0)
  }

  /** The job settled as pinned; whatever it replaced is removed. */
  async complete (job: PinJob, dag: StorageUsage): Promise<boolean> {
    return await this.settle(job, `status = 'pinned', failure_reason = NULL, dag_blocks = $3, dag_bytes = $4`, [dag.blocks, dag.bytes])
  }

  /** The job settled as failed: it holds no blocks, and whatever it replaced is removed. */
  async fail (job: PinJob, reason: string): Promise<boolean> {
    return await this.db.transaction(async (tx) => {
      const settled = await this.settle(job, `status = 'failed', failure_reason = $3`, [reason], tx)
      if (settled) await tx.query('DELETE FROM pin_blocks WHERE pin_id = $1', [job.id])
      return settled
    })
  }

  /** Back to the queue, due after `delayMs`; the reason stays visible until the next attempt settles. */
  async retry (job: PinJob, reason: string, delayMs: number): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE pins SET status = 'queued', failure_reason = $3, not_before = now() + $4::float8 * interval '1 millisecond',
         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = now()
       WHERE id = $1 AND lease_token = $2 AND status = 'pinning'`,
      [job.id, job.leaseToken, reason, delayMs]
    )
    return rowCount > 0
  }

  /** Hands a job back at once without counting the attempt (this worker is shutting down). */
  async release (job: PinJob): Promise<void> {
    await this.db.query(
      `UPDATE pins SET status = 'queued', attempts = attempts - 1, not_before = now(),
         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = now()
       WHERE id = $1 AND lease_token = $2 AND status = 'pinning'`,
      [job.id, job.leaseToken]
    )
  }

  private async stillHeld (job: PinJob): Promise<boolean> {
    const { rows } = await this.db.query('SELECT 1 FROM pins WHERE id = $1 AND lease_token = $2 AND status = \'pinning\'', [job.id, job.leaseToken])
    return rows.length > 0
  }

  private async settle (job: PinJob, set: string, params: unknown[], db: SqlQueryable = this.db): Promise<boolean> {
    const { rowCount } = await db.query(
      `UPDATE pins SET ${set}, lease_token = NULL, lease_expires_at = NULL, updated_at = now()
       WHERE id = $1 AND lease_token = $2 AND status = 'pinning'`,
      [job.id, job.leaseToken, ...params]
    )
    if (rowCount > 0) await db.query('DELETE FROM pins WHERE replaced_by = $1', [job.id])
    return rowCount > 0
  }

  private async insert (db: SqlQueryable, pin: NewPin, kind: PinKind | null): Promise<PinRecord> {
    // `created` must be unique; two inserts in the same microsecond retry with a later clock.
    for (;;) {
      const { rows } = await db.query<PinRecord>(
        `INSERT INTO pins (id, owner, cid, root_cid, name, meta, origins, kind, created)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::text[], $8, clock_timestamp())
         ON CONFLICT (created) DO NOTHING
         RETURNING ${PIN_COLUMNS}`,
        [randomUUID(), pin.owner, pin.cidText, canonicalCid(pin.cid), pin.name ?? null, JSON.stringify(pin.meta ?? {}), pin.origins ?? [], kind]
      )
      if (rows[0] !== undefined) return rows[0]
    }
  }
}

/** An internal pin's kind: as given, else a log entry's if its meta marks it so. */
function kindOf (pin: NewInternalPin): PinKind | null {
  return pin.kind ?? (pin.meta?.[PIN_KIND_KEY] === LOG_ENTRY_KIND ? LOG_ENTRY_KIND : null)
}

function refuseReservedMeta (pin: NewPin): void {
  const reserved = reservedMetaKeys(pin.meta)
  if (reserved.length > 0) throw new ReservedMetaKeyError(reserved)
}
