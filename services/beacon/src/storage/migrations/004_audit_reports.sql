-- Storage audit reports (DESIGN.md §5, docs/audits.md): one row per audit round of a worker.
-- `statement` is the signed report exactly as the worker signed it (a canonical dag-cbor
-- signed statement of kind "audit"); the other columns are read from it, for filters and
-- listings. Anyone can check `statement` with the worker's peer ID alone.
CREATE TABLE audit_reports (
  id bigserial PRIMARY KEY,
  -- CID (dag-cbor, sha2-256) of the statement bytes: one report, one row.
  report_cid text NOT NULL UNIQUE,
  worker text NOT NULL,
  -- When the round started, by the worker's clock (the signed `at`).
  round_at timestamptz NOT NULL,
  sample_size integer NOT NULL,
  checked integer NOT NULL,
  failures integer NOT NULL,
  repaired integer NOT NULL,
  repair_failures integer NOT NULL,
  statement bytea NOT NULL,
  stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_reports_worker ON audit_reports (worker, id DESC);
CREATE INDEX audit_reports_round_at ON audit_reports (round_at);
