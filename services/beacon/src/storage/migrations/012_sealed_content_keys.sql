-- Content keys sealed at rest (issue 23, item 4; docs/logs.md "Keys sealed at rest"). A key
-- is stored as `sealed_key` (AES-256-GCM: nonce, ciphertext, tag) under the sealing key of
-- `key_version`, which is never in the database; `key` (plaintext) is only for rows written
-- before this migration, and a worker holding a sealing key seals them at start and clears it.
ALTER TABLE content_keys ALTER COLUMN key DROP NOT NULL;
ALTER TABLE content_keys ADD COLUMN sealed_key bytea;
ALTER TABLE content_keys ADD COLUMN key_version text;
-- Exactly one of the two forms, and a sealed key always names its version.
ALTER TABLE content_keys ADD CONSTRAINT content_keys_one_form CHECK ((key IS NULL) <> (sealed_key IS NULL));
ALTER TABLE content_keys ADD CONSTRAINT content_keys_sealed_version CHECK ((sealed_key IS NULL) = (key_version IS NULL));
