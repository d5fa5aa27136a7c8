import { rowBytes } from '../storage/sql.ts'
import type { SqlClient, SqlQueryable } from '../storage/sql.ts'

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

/** Every SQL statement about deposited content keys (tables `content_keys`, `content_key_readers`). */
export class ContentKeyStore {
  private readonly db: SqlClient

  constructor (db: SqlClient) {
    this.db = db
  }

  /**
   * Stores a key and the readers its verified rule names, or replaces both when `ruleVersion`
   * is at least the stored one (the same version again is an idempotent retry). Returns false
   * when a newer rule is stored or the key hash belongs to another author. The readers are
   * written in the same transaction, so a GETKEY never sees a rule without its readers.
   */
  async deposit (key: ContentKey, readers: readonly string[]): Promise<boolean> {
    return await this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        `INSERT INTO content_keys (key_hash, author, key, rule, rule_version, readers_indexed) VALUES ($1, $2, $3, $4, $5, true)
         ON CONFLICT (key_hash) DO UPDATE SET rule = EXCLUDED.rule, rule_version = EXCLUDED.rule_version, readers_indexed = true, updated_at = now()
         WHERE content_keys.author = EXCLUDED.author AND content_keys.rule_version <= EXCLUDED.rule_version`,
        [key.keyHash, key.author, key.key, key.rule, key.ruleVersion])
      if (rowCount !== 1) return false
      await this.writeReaders(tx, key.keyHash, readers)
      return true
    })
  }

  /** The key under `keyHash` and whether its readers name `requester`: one statement, one index probe. */
  async lookup (keyHash: Uint8Array, requester: string): Promise<ContentKeyLookup | undefined> {
    const { rows } = await this.db.query<{ key_hash: Uint8Array, author: string, key: Uint8Array, rule_version: string, readers_indexed: boolean, listed: boolean }>(
      `SELECT k.key_hash, k.author, k.key, k.rule_version::text AS rule_version, k.readers_indexed,
         EXISTS (SELECT 1 FROM content_key_readers r WHERE r.key_hash = k.key_hash AND r.reader = $2) AS listed
       FROM content_keys k WHERE k.key_hash = $1`, [keyHash, requester])
    const row = rows[0]
    if (row === undefined) return undefined
    return {
      record: { keyHash: rowBytes(row.key_hash), author: row.author, key: rowBytes(row.key), ruleVersion: Number(row.rule_version) },
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

  private async writeReaders (tx: SqlQueryable, keyHash: Uint8Array, readers: readonly string[]): Promise<void> {
    await tx.query('DELETE FROM content_key_readers WHERE key_hash = $1', [keyHash])
    if (readers.length === 0) return
    await tx.query(
      'INSERT INTO content_key_readers (key_hash, reader) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING',
      [keyHash, [...new Set(readers)]])
  }
}
