/**
 * Account IDs become canonical (issue 17): an ID stored as a CID of the key (`k51…`,
 * `bafz…`) never matched the peer IDs libp2p hands out (`12D3KooW…`) and counted the key
 * twice in N. Each such row is rewritten to the canonical form; rows of one key merge into
 * one, keeping the earliest `created_at` and the canonical row's label (else the first one
 * found). Rows that are not an ed25519 peer ID are left as they are: the registry skips
 * them, and the worker logs them at start.
 */
import { canonicalAccountId } from '../../accounts/account-registry.ts'
import type { SqlQueryable } from '../sql.ts'

export async function up (tx: SqlQueryable): Promise<void> {
  const { rows } = await tx.query<{ peer_id: string, label: string | null, created_at: Date }>('SELECT peer_id, label, created_at FROM accounts ORDER BY created_at, peer_id')
  const moved = new Map<string, Array<{ peer_id: string, label: string | null, created_at: Date }>>()
  for (const row of rows) {
    let canonical: string
    try {
      canonical = canonicalAccountId(row.peer_id)
    } catch {
      continue
    }
    if (canonical === row.peer_id) continue
    moved.set(canonical, [...moved.get(canonical) ?? [], row])
  }
  for (const [canonical, aliases] of moved) {
    const label = aliases.find((alias) => alias.label !== null)?.label ?? null
    const createdAt = aliases[0]?.created_at ?? new Date()
    await tx.query(
      `INSERT INTO accounts AS a (peer_id, label, created_at) VALUES ($1, $2, $3)
       ON CONFLICT (peer_id) DO UPDATE SET label = coalesce(a.label, EXCLUDED.label), created_at = least(a.created_at, EXCLUDED.created_at)`,
      [canonical, label, createdAt])
    await tx.query('DELETE FROM accounts WHERE peer_id = ANY($1::text[])', [aliases.map((alias) => alias.peer_id)])
  }
}
