-- The ingest pipeline counts an author's entry pins that are still queued or pinning before
-- it takes a new entry (PHAROS_AUTHOR_MAX_PENDING_PINS, issue 17). This index keeps that
-- count to the pending pins alone, however many pinned ones the author has.
CREATE INDEX pins_owner_pending ON pins (owner) WHERE status IN ('queued', 'pinning');
