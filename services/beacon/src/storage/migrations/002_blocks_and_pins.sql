-- The Postgres-indexed blockstore and the durable pin queue (DESIGN.md §5, docs/storage.md).

-- One row per block, keyed by its multihash (not the CID: the same bytes under dag-pb and
-- raw CIDs are one block). `touched_at` is refreshed whenever the block is written or a pin
-- job relies on it; GC never removes a block touched within its grace period.
CREATE TABLE blocks (
  multihash bytea PRIMARY KEY,
  size integer NOT NULL CHECK (size >= 0),
  data bytea NOT NULL,
  touched_at timestamptz NOT NULL DEFAULT now()
);
-- Block bytes are mostly compressed media or already-dense encodings: skip TOAST's pglz
-- attempt (CPU for nothing) and keep them out of line so the heap GC scans stays small.
ALTER TABLE blocks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX blocks_touched_at ON blocks (touched_at);

-- A pin is a recursive pin of a root CID, and a durable job:
-- queued → pinning → pinned | failed. A worker claims a job with FOR UPDATE SKIP LOCKED and
-- holds it under a lease; a job whose lease expired is claimed again by any worker.
CREATE TABLE pins (
  id uuid PRIMARY KEY,
  owner text NOT NULL,
  cid text NOT NULL,
  -- The root as a canonical CIDv1 string, for the API's cid filter.
  root_cid text NOT NULL,
  name text,
  meta jsonb NOT NULL DEFAULT '{}',
  origins text[] NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'pinning', 'pinned', 'failed')),
  failure_reason text,
  -- Pagination by `created` needs it unique (Pinning Service API, "Pagination and filtering").
  created timestamptz NOT NULL UNIQUE,
  updated_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  not_before timestamptz NOT NULL DEFAULT now(),
  lease_owner text,
  lease_token uuid,
  lease_expires_at timestamptz,
  dag_blocks integer,
  dag_bytes bigint,
  -- A pin replaced through POST /pins/{id} keeps holding its blocks until its successor
  -- settles, so blocks common to both are never collected in between.
  replaced_by uuid REFERENCES pins (id) ON DELETE CASCADE
);
CREATE INDEX pins_owner_created ON pins (owner, created DESC);
CREATE INDEX pins_claimable ON pins (not_before) WHERE status IN ('queued', 'pinning');
CREATE INDEX pins_replaced_by ON pins (replaced_by) WHERE replaced_by IS NOT NULL;

-- The blocks each pin holds. The foreign key makes it impossible for GC (or anything else)
-- to delete a block a pin still holds.
CREATE TABLE pin_blocks (
  pin_id uuid NOT NULL REFERENCES pins (id) ON DELETE CASCADE,
  multihash bytea NOT NULL REFERENCES blocks (multihash),
  PRIMARY KEY (pin_id, multihash)
);
CREATE INDEX pin_blocks_multihash ON pin_blocks (multihash);
