import { rowBytes } from '../storage/sql.ts'
import type { SqlClient, SqlQueryable } from '../storage/sql.ts'
import { SealedKeyCorruptError } from './key-sealing.ts'
import type { ContentKeySealer } from './key-sealing.ts'

/** The columns that hold a content key, in one of its two forms (migration 012). */
interface StoredKeyRow {
  key_hash: Uint8Array
  author: string
  /** Plaintext: only rows from before migration 012 not yet sealed. */
  key: Uint8Array | null
  sealed_key: Uint8Array | null
  key_version: string | null
}

/** A deposited content key and the version of the rule that decides who may have it. */
export interface ContentKeyRecord {
  keyHash: Uint8Array
  author: string
  key: Uint8Array
  ruleVersion: number
}

/** A deposited content key with the rule that decides who may have it. */
export interface ContentKey extends ContentKeyRecord {
  /** The encoded, author-signed rule (an allow-list by default). */
  rule: Uint8Array
}

/** A key as GETKEY reads it: without the rule's bytes (up to ~560 KB), with the requester's place on it. */
export interface ContentKeyLookup {
  record: ContentKeyRecord
  /**
   * Whether the readers written when the rule was verified at deposit name the requester.
   * Meaningless while `readersIndexed` is false.
   */
  listed: boolean
  /** False for a key deposited before readers were indexed (migration 009): its rule must be read once. */
  readersIndexed: boolean
}

/** What one re-sealing pass did (`reseal`). */
export interface ResealReport {
  /** Plaintext keys from before migration 012, now sealed under the current version. */
  sealedPlaintext: number
  /** Keys sealed under an older version, now sealed under the current one. */
  resealed: number
  /** Keys sealed under a version this worker does not hold: left as they are, unreadable here. */
  versionMissing: number
  /** Those versions, for the operator to add back. */
  missingVersions: string[]
  /** Keys whose seal does not verify (the row was altered, or its blob moved from another row): left as they are. */
  corrupt: number
}

/** Keys re-sealed per transaction (guess: short row locks, few round trips for ~100k keys). */
const RESEAL_BATCH = 200

/**
 * Every SQL statement about deposited content keys (tables `content_keys`, `content_key_readers`).
 * Keys are written sealed (key-sealing.ts) and opened on read: the database never holds a
 * key in the clear but in rows from before migration 012, which `reseal` seals.
 */
export class ContentKeyStore {
  private readonly db: SqlClient
  private readonly sealer: ContentKeySealer

  constructor (db: SqlClient, sealer: ContentKeySealer) {
    this.db = db
    this.sealer = sealer
  }

  /**
   * Stores a key and the readers its verified rule names, or replaces both when `ruleVersion`
   * is at least the stored one (the same version again is an idempotent retry). Returns false
   * when a newer rule is stored or the key hash belongs to another author. The readers are
   * written in the same transaction, so a GETKEY never sees a rule without its readers.
   */
  async deposit (key: ContentKey, readers: readonly string[]): Promise<boolean> {
    const { sealed, version } = this.sealer.seal(key.key, key)
    return await this.db.transaction(async (tx) => {
      // A replaced rule re-seals the key too (the same key: it hashes to the same key hash), so
      // a row under a lost or old version is mended by its author's next deposit.
      const { rowCount } = await tx.query(
        `INSERT INTO content_keys (key_hash, author, key, sealed_key, key_version, rule, rule_version, readers_indexed) VALUES ($1, $2, NULL, $3, $4, $5, $6, true)
         ON CONFLICT (key_hash) DO UPDATE SET key = NULL, sealed_key = EXCLUDED.sealed_key, key_version = EXCLUDED.key_version,
           rule = EXCLUDED.rule, rule_version = EXCLUDED.rule_version, readers_indexed = true, updated_at = now()
         WHERE content_keys.author = EXCLUDED.author AND content_keys.rule_version <= EXCLUDED.rule_version`,
        [key.keyHash, key.author, sealed, version, key.rule, key.ruleVersion])
      if (rowCount !== 1) return false
      await this.writeReaders(tx, key.keyHash, readers)
      return true
    })
  }

  /**
   * The key under `keyHash`, opened, and whether its readers name `requester`: one statement,
   * one index probe. Throws SealingKeyMissingError when it was sealed under a version this
   * worker was not given (SealedKeyCorruptError when its seal does not verify).
   */
  async lookup (keyHash: Uint8Array, requester: string): Promise<ContentKeyLookup | undefined> {
    const { rows } = await this.db.query<StoredKeyRow & { rule_version: string, readers_indexed: boolean, listed: boolean }>(
      `SELECT k.key_hash, k.author, k.key, k.sealed_key, k.key_version, k.rule_version::text AS rule_version, k.readers_indexed,
         EXISTS (SELECT 1 FROM content_key_readers r WHERE r.key_hash = k.key_hash AND r.reader = $2) AS listed
       FROM content_keys k WHERE k.key_hash = $1`, [keyHash, requester])
    const row = rows[0]
    if (row === undefined) return undefined
    return {
      record: { keyHash: rowBytes(row.key_hash), author: row.author, key: this.open(row), ruleVersion: Number(row.rule_version) },
      listed: row.listed,
      readersIndexed: row.readers_indexed
    }
  }

  /** The stored rule's bytes, or undefined if the key is gone. */
  async rule (keyHash: Uint8Array): Promise<{ rule: Uint8Array, ruleVersion: number } | undefined> {
    const { rows } = await this.db.query<{ rule: Uint8Array, rule_version: string }>(
      'SELECT rule, rule_version::text AS rule_version FROM content_keys WHERE key_hash = $1', [keyHash])
    const row = rows[0]
    return row === undefined ? undefined : { rule: rowBytes(row.rule), ruleVersion: Number(row.rule_version) }
  }

  /**
   * Writes the readers of a key deposited before readers were indexed, once its rule (of
   * `ruleVersion`) was verified; a rule replaced in between keeps the readers its own deposit wrote.
   */
  async indexReaders (keyHash: Uint8Array, ruleVersion: number, readers: readonly string[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        'UPDATE content_keys SET readers_indexed = true WHERE key_hash = $1 AND rule_version = $2 AND NOT readers_indexed', [keyHash, ruleVersion])
      if (rowCount === 1) await this.writeReaders(tx, keyHash, readers)
    })
  }

  /**
   * Seals every plaintext key (rows from before migration 012) and re-seals every key sealed
   * under an older version, under the current one. Batches walk the key hashes in order, each
   * in its own transaction with its rows locked (`SKIP LOCKED`: rows another worker is
   * re-sealing are its to do), so a fleet starting at once shares the work and a row
   * whose version is missing here is passed over, not tried again.
   */
  async reseal (signal?: AbortSignal): Promise<ResealReport> {
    const report: ResealReport = { sealedPlaintext: 0, resealed: 0, versionMissing: 0, missingVersions: [], corrupt: 0 }
    let after: Uint8Array = new Uint8Array(0)
    for (;;) {
      signal?.throwIfAborted()
      const last = await this.db.transaction(async (tx) => {
        const { rows } = await tx.query<StoredKeyRow>(
          `SELECT key_hash, author, key, sealed_key, key_version FROM content_keys
           WHERE key_hash > $1 AND (key IS NOT NULL OR key_version <> $2)
           ORDER BY key_hash LIMIT ${RESEAL_BATCH} FOR UPDATE SKIP LOCKED`, [after, this.sealer.currentVersion])
        for (const row of rows) {
          if (row.key_version !== null && !this.sealer.canOpen(row.key_version)) {
            report.versionMissing++
            if (!report.missingVersions.includes(row.key_version)) report.missingVersions.push(row.key_version)
            continue
          }
          let plain: Uint8Array
          try {
            plain = this.open(row)
          } catch (err) {
            if (!(err instanceof SealedKeyCorruptError)) throw err
            report.corrupt++
            continue
          }
          const context = { keyHash: rowBytes(row.key_hash), author: row.author }
          const { sealed, version } = this.sealer.seal(plain, context)
          await tx.query('UPDATE content_keys SET key = NULL, sealed_key = $2, key_version = $3 WHERE key_hash = $1', [row.key_hash, sealed, version])
          if (row.key_version === null) report.sealedPlaintext++
          else report.resealed++
        }
        return rows.at(-1)?.key_hash
      })
      if (last === undefined) return report
      after = rowBytes(last)
    }
  }

  /** A row's plain key: the legacy plaintext column, or its sealed blob opened. */
  private open (row: StoredKeyRow): Uint8Array {
    if (row.sealed_key === null || row.key_version === null) {
      if (row.key === null) throw new TypeError('a content_keys row holds neither a key nor a sealed key')
      return rowBytes(row.key)
    }
    return this.sealer.open({ sealed: rowBytes(row.sealed_key), version: row.key_version }, { keyHash: rowBytes(row.key_hash), author: row.author })
  }

  private async writeReaders (tx: SqlQueryable, keyHash: Uint8Array, readers: readonly string[]): Promise<void> {
    await tx.query('DELETE FROM content_key_readers WHERE key_hash = $1', [keyHash])
    if (readers.length === 0) return
    await tx.query(
      'INSERT INTO content_key_readers (key_hash, reader) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING',
      [keyHash, [...new Set(readers)]])
  }
}
