-- GETKEY answers from an index of each key's readers (issue 17, item 8; docs/logs.md "Key
-- exchange"). The author-signed allow-list is verified once, when it is deposited, and the
-- peers it names are written here in the same transaction; a request is then one primary-key
-- probe instead of a signature check, a decode and a scan of up to 10,000 peers.
CREATE TABLE content_key_readers (
  key_hash bytea NOT NULL REFERENCES content_keys (key_hash) ON DELETE CASCADE,
  reader text NOT NULL,
  PRIMARY KEY (key_hash, reader)
);
-- Keys deposited before this migration have no readers written yet: the first GETKEY for
-- one verifies its rule once and writes them (KeyExchangeService).
ALTER TABLE content_keys ADD COLUMN readers_indexed boolean NOT NULL DEFAULT false;
