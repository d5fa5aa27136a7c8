import { rowBytes } from '../storage/sql.ts'
import type { SqlQueryable } from '../storage/sql.ts'

/** A deposited content key with the rule that decides who may have it. */
export interface ContentKey {
  keyHash: Uint8Array
  author: string
  key: Uint8Array
  /** The encoded, author-signed rule (an allow-list by default). */
  rule: Uint8Array
  ruleVersion: number
}

/** Every SQL statement about deposited content keys (table `content_keys`). */
export class ContentKeyStore {
  private readonly db: SqlQueryable

  constructor (db: SqlQueryable) {
    this.db = db
  }

  /**
   * Stores a key, or replaces its rule when `ruleVersion` is at least the stored one (the
   * same version again is an idempotent retry). Returns false when a newer rule is stored or
   * the key hash belongs to another author.
   */
  async deposit (key: ContentKey): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `INSERT INTO content_keys (key_hash, author, key, rule, rule_version) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (key_hash) DO UPDATE SET rule = EXCLUDED.rule, rule_version = EXCLUDED.rule_version, updated_at = now()
       WHERE content_keys.author = EXCLUDED.author AND content_keys.rule_version <= EXCLUDED.rule_version`,
      [key.keyHash, key.author, key.key, key.rule, key.ruleVersion])
    return rowCount === 1
  }

  async get (keyHash: Uint8Array): Promise<ContentKey | undefined> {
    const { rows } = await this.db.query<{ key_hash: Uint8Array, author: string, key: Uint8Array, rule: Uint8Array, rule_version: string }>(
      'SELECT key_hash, author, key, rule, rule_version::text AS rule_version FROM content_keys WHERE key_hash = $1', [keyHash])
    const row = rows[0]
    if (row === undefined) return undefined
    return { keyHash: rowBytes(row.key_hash), author: row.author, key: rowBytes(row.key), rule: rowBytes(row.rule), ruleVersion: Number(row.rule_version) }
  }
}
