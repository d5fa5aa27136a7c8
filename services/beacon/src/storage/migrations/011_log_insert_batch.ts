/**
 * `log_insert_batch` (issue 21): a batch of log entries stored in one statement, the same
 * decisions `LogStore.insert` made with one round trip per step, made on the server. An
 * entry used to cost four to eleven round trips one after another under its author's lock;
 * a batch now costs one, so the locks are held for the server's work only.
 *
 * Each entry, in the order given (an entry may be the prev of a later one): duplicate?;
 * the genesis rule; its parent (same author, seq + 1); the author's caps (NULL caps: none);
 * the insert; the orphans below it connected; the equivocation recorded; the author's head
 * (highest seq then lowest CID) and counters. One row out per entry, in order, with the
 * author's head as it stands after that entry. An author's row is read once and written
 * once per batch, so an entry of a linear log costs two statements on the server (what it
 * reads, and its insert). A duplicate's row says whether it has a pin yet. Locks: the
 * authors' advisory locks first, in key order, so two batches sharing authors cannot
 * deadlock; they are held to the end of the caller's transaction (one statement, in the
 * ingest: the locks cover the server's work and no round trip).
 *
 * A `.ts` migration because the body holds semicolons at line ends (migrate.ts splits
 * `.sql` files on those). PGlite ships PL/pgSQL, so the same function runs on both engines.
 */
import type { SqlQueryable } from '../sql.ts'

export async function up (tx: SqlQueryable): Promise<void> {
  await tx.query(`
CREATE FUNCTION log_insert_batch (
  lock_class int4,
  cids bytea[], authors text[], seqs int8[], prevs bytea[], actions text[], stamps int8[], sizes int4[],
  max_entries int4, max_orphans int4
) RETURNS TABLE (
  o_ord int4, o_status text, o_reason text, o_orphan boolean, o_connected_orphans int4, o_missing_prev boolean,
  o_equivocation boolean, o_head_changed boolean, o_unpinned boolean,
  o_head_cid bytea, o_head_seq int8, o_tips int4, o_entries int4, o_change text
) LANGUAGE plpgsql AS $fn$
DECLARE
  i int4;
  k int4;
  v_cid bytea;
  v_author text;
  v_seq int8;
  v_prev bytea;
  v_parent_author text;
  v_parent_seq int8;
  v_parent_connected boolean;
  v_parent_has_child boolean;
  v_rivals int4;
  v_unpinned boolean;
  v_connected boolean;
  v_parent_was_tip boolean;
  v_descendants int4;
  v_descendant_parents int4;
  v_best_cid bytea;
  v_best_seq int8;
  v_newly int4;
  v_old_head bytea;
  -- The batch's authors, and each one's row as it stands after the entries so far (the
  -- row is read once, under the lock, and written once at the end).
  names text[];
  s_entries int4[];
  s_connected int4[];
  s_tips int4[];
  s_orphans int4[];
  s_equivocations int4[];
  s_head_cid bytea[];
  s_head_seq int8[];
  s_change int8[];
BEGIN
  names := ARRAY(SELECT DISTINCT a FROM unnest(authors) AS a);
  PERFORM pg_advisory_xact_lock(lock_class, keys.k)
    FROM (SELECT DISTINCT hashtext(a) AS k FROM unnest(names) AS a ORDER BY 1) AS keys;
  SELECT array_agg(coalesce(la.entries, 0) ORDER BY u.n), array_agg(coalesce(la.connected_entries, 0) ORDER BY u.n),
      array_agg(coalesce(la.tips, 0) ORDER BY u.n), array_agg(coalesce(la.orphans, 0) ORDER BY u.n),
      array_agg(coalesce(la.equivocations, 0) ORDER BY u.n), array_agg(la.head_cid ORDER BY u.n), array_agg(la.head_seq ORDER BY u.n),
      array_agg(NULL::int8 ORDER BY u.n)
    INTO s_entries, s_connected, s_tips, s_orphans, s_equivocations, s_head_cid, s_head_seq, s_change
    FROM unnest(names) WITH ORDINALITY AS u (a, n) LEFT JOIN log_authors la ON la.author = u.a;

  FOR i IN 1 .. coalesce(array_length(cids, 1), 0) LOOP
    v_cid := cids[i];
    v_author := authors[i];
    v_seq := seqs[i];
    v_prev := prevs[i];
    k := array_position(names, v_author);
    o_ord := i - 1;
    o_status := NULL; o_reason := NULL; o_orphan := NULL; o_connected_orphans := NULL; o_missing_prev := NULL;
    o_equivocation := NULL; o_head_changed := NULL; o_unpinned := NULL;
    o_head_cid := NULL; o_head_seq := NULL; o_tips := NULL; o_entries := NULL; o_change := NULL;

    -- Everything the decisions below read, in one statement (all of it under the author's
    -- lock): is the entry stored (and without a pin), its parent, whether the parent has a connected child (it
    -- stops being a tip when this is its first), how many entries already hold this seq.
    SELECT (SELECT e.pin_id IS NULL FROM log_entries e WHERE e.cid = v_cid), p.author, p.seq, p.connected,
        EXISTS (SELECT 1 FROM log_entries c WHERE c.prev = v_prev AND c.connected),
        (SELECT count(*) FROM log_entries r WHERE r.author = v_author AND r.seq = v_seq)
      INTO v_unpinned, v_parent_author, v_parent_seq, v_parent_connected, v_parent_has_child, v_rivals
      FROM (SELECT 1) AS one LEFT JOIN log_entries p ON p.cid = v_prev;
    IF v_unpinned IS NOT NULL THEN
      o_status := 'duplicate'; o_unpinned := v_unpinned;
      RETURN NEXT; CONTINUE;
    END IF;
    IF (v_prev IS NULL) <> (v_seq = 0) THEN
      o_status := 'rejected'; o_reason := 'bad-seq';
      RETURN NEXT; CONTINUE;
    END IF;
    IF v_parent_author IS NOT NULL AND v_parent_author <> v_author THEN
      o_status := 'rejected'; o_reason := 'bad-prev';
      RETURN NEXT; CONTINUE;
    END IF;
    IF v_parent_author IS NOT NULL AND v_parent_seq + 1 <> v_seq THEN
      o_status := 'rejected'; o_reason := 'bad-seq';
      RETURN NEXT; CONTINUE;
    END IF;
    v_connected := v_prev IS NULL OR (v_parent_author IS NOT NULL AND v_parent_connected);
    -- Under the author's lock, so two workers (or two batches) cannot both take the last place.
    IF max_entries IS NOT NULL AND s_entries[k] >= max_entries THEN
      o_status := 'rejected'; o_reason := 'too-many-entries';
      RETURN NEXT; CONTINUE;
    END IF;
    IF max_orphans IS NOT NULL AND NOT v_connected AND s_orphans[k] >= max_orphans THEN
      o_status := 'rejected'; o_reason := 'too-many-orphans';
      RETURN NEXT; CONTINUE;
    END IF;
    v_parent_was_tip := v_connected AND v_prev IS NOT NULL AND NOT v_parent_has_child;

    INSERT INTO log_entries (cid, author, seq, prev, action, entry_timestamp, size, connected)
      VALUES (v_cid, v_author, v_seq, v_prev, actions[i], stamps[i], sizes[i], v_connected);

    -- Orphans waiting below this entry (their prev chain leads here, seqs counting up by
    -- one) are connected now; the prev links form a tree, so each is reached once. A log
    -- with no orphans (the common case) skips the walk. Of the entries connected now, the
    -- tips are those that are no other one's prev.
    v_descendants := 0;
    v_descendant_parents := 0;
    v_best_cid := v_cid;
    v_best_seq := v_seq;
    IF v_connected AND s_orphans[k] > 0 THEN
      WITH RECURSIVE reach (cid, seq) AS (
        SELECT e.cid, e.seq FROM log_entries e WHERE e.prev = v_cid AND e.author = v_author AND e.seq = v_seq + 1 AND NOT e.connected
        UNION ALL
        SELECT e.cid, e.seq FROM log_entries e JOIN reach r ON e.prev = r.cid
        WHERE e.author = v_author AND e.seq = r.seq + 1 AND NOT e.connected),
      joined AS (
        UPDATE log_entries u SET connected = true WHERE u.cid IN (SELECT reach.cid FROM reach)
        RETURNING u.cid, u.seq, u.prev),
      counted AS (SELECT count(*) AS n, count(DISTINCT joined.prev) AS parents FROM joined),
      best AS (SELECT joined.cid, joined.seq FROM joined ORDER BY joined.seq DESC, joined.cid ASC LIMIT 1)
      SELECT counted.n, counted.parents, best.cid, best.seq INTO v_descendants, v_descendant_parents, v_best_cid, v_best_seq
        FROM counted LEFT JOIN best ON true;
      IF v_descendants = 0 THEN v_best_cid := v_cid; v_best_seq := v_seq; END IF;
    END IF;

    IF v_rivals > 0 THEN
      INSERT INTO log_equivocations (author, seq, cid)
        SELECT q.author, q.seq, q.cid FROM log_entries q WHERE q.author = v_author AND q.seq = v_seq
        ON CONFLICT DO NOTHING;
    END IF;

    v_newly := CASE WHEN v_connected THEN 1 + v_descendants ELSE 0 END;
    v_old_head := s_head_cid[k];
    s_entries[k] := s_entries[k] + 1;
    s_connected[k] := s_connected[k] + v_newly;
    s_orphans[k] := s_orphans[k] + 1 - v_newly;
    s_tips[k] := s_tips[k] + v_newly - v_descendant_parents - CASE WHEN v_parent_was_tip THEN 1 ELSE 0 END;
    -- A height counts once, when its second entry arrives.
    IF v_rivals = 1 THEN s_equivocations[k] := s_equivocations[k] + 1; END IF;
    -- Fork choice: highest seq, then lowest CID, among connected entries. The connected set
    -- only grows, so the best is the old head or the best of what was connected now. bytea
    -- compares byte by byte (memcmp, then length), which is the protocol's CID order
    -- (services/protocol log/fork-choice.ts), so every worker and every peer picks the same head.
    IF v_connected AND (s_head_seq[k] IS NULL OR v_best_seq > s_head_seq[k] OR (v_best_seq = s_head_seq[k] AND v_best_cid < s_head_cid[k])) THEN
      s_head_cid[k] := v_best_cid;
      s_head_seq[k] := v_best_seq;
    END IF;
    IF s_change[k] IS NULL THEN s_change[k] := nextval('log_changes'); END IF;

    o_status := 'stored';
    o_orphan := NOT v_connected;
    o_connected_orphans := v_descendants;
    o_missing_prev := v_prev IS NOT NULL AND v_parent_author IS NULL;
    o_equivocation := v_rivals > 0;
    o_head_changed := s_head_cid[k] IS DISTINCT FROM v_old_head;
    o_unpinned := true;
    o_head_cid := s_head_cid[k];
    o_head_seq := s_head_seq[k];
    o_tips := s_tips[k];
    o_entries := s_entries[k];
    o_change := s_change[k]::text;
    RETURN NEXT;
  END LOOP;

  -- Each author that stored an entry: its row, once (a change was drawn for it above).
  INSERT INTO log_authors AS a (author, head_cid, head_seq, entries, connected_entries, tips, orphans, equivocations, change)
    SELECT u.author, u.head_cid, u.head_seq, u.entries, u.connected, u.tips, u.orphans, u.equivocations, u.change
    FROM unnest(names, s_head_cid, s_head_seq, s_entries, s_connected, s_tips, s_orphans, s_equivocations, s_change)
      AS u (author, head_cid, head_seq, entries, connected, tips, orphans, equivocations, change)
    WHERE u.change IS NOT NULL
    ORDER BY u.author
    ON CONFLICT (author) DO UPDATE SET
      head_cid = EXCLUDED.head_cid,
      head_seq = EXCLUDED.head_seq,
      entries = EXCLUDED.entries,
      connected_entries = EXCLUDED.connected_entries,
      tips = EXCLUDED.tips,
      orphans = EXCLUDED.orphans,
      equivocations = EXCLUDED.equivocations,
      change = EXCLUDED.change,
      change_xid = pg_current_xact_id(),
      updated_at = now();
END
$fn$`)
}
