-- Signed profile logs, bans and content keys (DESIGN.md §4, docs/logs.md). Entry blocks
-- themselves live in `blocks` like any other block; these tables index them.

-- Every valid entry of every author, forks and orphans included (kept like an SPV header
-- database). `cid` and `prev` are CID bytes: fork choice compares CIDs byte by byte, and
-- bytea orders exactly that way. No foreign key from `prev`: an orphan's parent is, by
-- definition, not stored yet.
CREATE TABLE log_entries (
  cid bytea PRIMARY KEY,
  author text NOT NULL,
  seq bigint NOT NULL CHECK (seq >= 0),
  prev bytea,
  action text NOT NULL,
  -- The author's clock (ms); informational, never used to order.
  entry_timestamp bigint NOT NULL,
  size integer NOT NULL CHECK (size >= 0),
  received_at timestamptz NOT NULL DEFAULT now(),
  -- True when the entry's ancestry reaches a genesis entry (seq 0, prev NULL) through
  -- stored entries whose seqs count up by one; false for an orphan. Only connected entries
  -- compete for the head.
  connected boolean NOT NULL,
  -- The pin that holds the entry and the content it links to; NULL until the ingest
  -- pipeline queues one. `pinned_at` is set when that pin settles as pinned.
  pin_id uuid REFERENCES pins (id) ON DELETE SET NULL,
  pinned_at timestamptz,
  -- The genesis rule: seq 0 exactly when there is no prev.
  CHECK ((seq = 0) = (prev IS NULL))
);
-- Paging an author's entries (seq DESC, cid ASC) and counting at one (author, seq).
CREATE INDEX log_entries_author_seq ON log_entries (author, seq DESC, cid);
-- Fork choice reads only connected entries: highest seq, then lowest cid.
CREATE INDEX log_entries_author_head ON log_entries (author, seq DESC, cid) WHERE connected;
-- Children of an entry: connecting orphans when their parent arrives, and tip counting.
CREATE INDEX log_entries_prev ON log_entries (prev) WHERE prev IS NOT NULL;
CREATE INDEX log_entries_pin_id ON log_entries (pin_id) WHERE pin_id IS NOT NULL;

-- Bumped on every change to an author's row; a version number of the row.
CREATE SEQUENCE log_changes;

-- One row per author: the best head and counters, maintained by the insert that changed
-- them (under a per-author advisory lock), so HEAD requests and the admin API read one row.
CREATE TABLE log_authors (
  author text PRIMARY KEY,
  -- NULL while the author has no connected entry (only orphans).
  head_cid bytea,
  head_seq bigint,
  entries integer NOT NULL DEFAULT 0,
  connected_entries integer NOT NULL DEFAULT 0,
  -- Connected entries with no connected child; more than one means the log forked.
  tips integer NOT NULL DEFAULT 0,
  -- Entries not connected (entries - connected_entries).
  orphans integer NOT NULL DEFAULT 0,
  -- Heights (seq) at which the author signed more than one entry.
  equivocations integer NOT NULL DEFAULT 0,
  change bigint NOT NULL DEFAULT nextval('log_changes'),
  -- The transaction that last wrote the row. The "changed since" feed orders by
  -- (change_xid, change) and only returns rows whose transaction ended before every
  -- transaction still running began: sequence values are handed out before commit, so
  -- ordering by `change` alone would let a reader step past a value that commits later.
  change_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX log_authors_changes ON log_authors (change_xid, change);

-- Every entry at an (author, seq) that holds more than one entry: proof the author signed
-- two different entries at one height.
CREATE TABLE log_equivocations (
  author text NOT NULL,
  seq bigint NOT NULL,
  cid bytea NOT NULL REFERENCES log_entries (cid) ON DELETE CASCADE,
  detected_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (author, seq, cid)
);

-- Banned peers (fleet-wide, persisted). Workers hold the set in memory and reload it. The
-- reason is a closed set in code (BanReason), not a CHECK here, so adding a reason needs
-- no migration.
CREATE TABLE bans (
  peer text PRIMARY KEY,
  reason text NOT NULL,
  detail text NOT NULL DEFAULT '',
  -- What proves the ban, e.g. the entry whose signature failed.
  evidence bytea,
  -- Who banned: a worker's peer ID for automatic bans, or "admin".
  banned_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Symmetric keys of private content an author handed the beacon (GETKEY, DESIGN.md §4),
-- with the signed allow-list that decides who may receive each. `rule_version` lets an
-- author replace the rule; an older version never overwrites a newer one.
CREATE TABLE content_keys (
  key_hash bytea PRIMARY KEY,
  author text NOT NULL,
  key bytea NOT NULL,
  rule bytea NOT NULL,
  rule_version bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX content_keys_author ON content_keys (author);
