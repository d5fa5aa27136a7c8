-- A `bad-signature` ban keeps the publish envelope the banned peer signed around the forged
-- entry (issue 17): with it anyone can check the ban again — the envelope's signature holds
-- for the banned peer, the entry inside it (`evidence`) fails its author's signature. NULL
-- for admin bans and for bans made before this column existed.
ALTER TABLE bans ADD COLUMN envelope bytea;
