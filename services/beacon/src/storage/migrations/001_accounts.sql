-- Registered accounts: the peers whose public key may join the overlay (DESIGN.md §3).
-- The registry is fed by the admin API or an external source.
CREATE TABLE accounts (
  peer_id text PRIMARY KEY,
  label text,
  created_at timestamptz NOT NULL DEFAULT now()
);
