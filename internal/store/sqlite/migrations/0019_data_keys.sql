-- Vigil schema 19 (SQLite): envelope encryption of personal data and the
-- erasure ledger (issue 9). A data key is stored only wrapped by the
-- key-encryption key, which is not in the database (internal/datakey).
-- Erasing a person deletes their wrapped key (crypto-shredding) and keeps
-- a tombstone row (wrapped NULL), so no new key is ever made for them.
CREATE TABLE data_keys (
    id           TEXT PRIMARY KEY,      -- 16 hex characters, named by every value sealed under it
    owner        TEXT NOT NULL UNIQUE,  -- "person:<id>" or "org:<id>"
    kek_id       TEXT NOT NULL DEFAULT '', -- the key-encryption key that wraps it
    wrapped      BLOB,                  -- NULL once destroyed
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER                -- NULL while live
) STRICT;
CREATE INDEX data_keys_kek ON data_keys (kek_id) WHERE wrapped IS NOT NULL;

-- One row per erased person: their id, organisation and time, and the
-- receipt (counts per class and what was kept and why; no personal data).
-- A restore re-applies it to the restored database.
CREATE TABLE erasures (
    person_id  TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    erased_at  INTEGER NOT NULL,
    receipt_id TEXT NOT NULL UNIQUE,
    receipt    TEXT NOT NULL -- JSON
) STRICT;
