-- How far a pin's latest attempt has got (issue 20): blocks and bytes walked so far, and when
-- the attempt started. The runner writes them every few seconds while it fetches, so
-- GET /pins/{requestid} on any worker shows info.progress for a queued or pinning pin.
ALTER TABLE pins
  ADD COLUMN progress_blocks bigint NOT NULL DEFAULT 0,
  ADD COLUMN progress_bytes bigint NOT NULL DEFAULT 0,
  ADD COLUMN progress_started_at timestamptz;
