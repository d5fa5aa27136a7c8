-- Hostile input (issue 17, items 9, 10 and 18): what a pin is, how jobs are claimed, and
-- how an owner's quota is kept under concurrent pins (docs/storage.md).

-- A pin's kind is the worker's own fact, never the client's: `meta` is whatever a Pinning
-- API client wrote, so a client could mark its pin as a log entry's and get an entry pin's
-- patience and link rules. Only the log ingest sets `kind` (PinStore.createIn); NULL is an
-- ordinary pin. An existing pin is an entry pin exactly when a log entry points at it.
ALTER TABLE pins ADD COLUMN kind text CHECK (kind IN ('log-entry'));
UPDATE pins SET kind = 'log-entry' WHERE id IN (SELECT pin_id FROM log_entries WHERE pin_id IS NOT NULL);

-- Claims are fair across owners (PinStore.claim): the due job of the owner with the fewest
-- jobs running, then the oldest. The claim walks the owners that have jobs in the queue
-- (a skip scan of this index), takes each one's oldest due job from it, and counts each
-- one's running jobs from the second.
DROP INDEX pins_claimable;
CREATE INDEX pins_queue_by_owner ON pins (owner, not_before, created) WHERE status IN ('queued', 'pinning');
CREATE INDEX pins_running_by_owner ON pins (owner) WHERE status = 'pinning';

-- Bytes each owner's pins hold, as the quota check reads them (PinStore.recordBlocks): kept
-- under a per-owner advisory lock together with the pin_blocks rows it counts, so pins of
-- one owner running at once cannot each spend the same remaining quota. It only ever
-- over-counts (a removed pin does not lower it); a batch it would refuse is checked again
-- against the exact usage, which is then written back.
CREATE TABLE owner_usage (
  owner text PRIMARY KEY,
  bytes bigint NOT NULL CHECK (bytes >= 0),
  counted_at timestamptz NOT NULL DEFAULT now()
);
