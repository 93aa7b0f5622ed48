-- Vigil schema 19 (PostgreSQL): envelope encryption of personal data and
-- the erasure ledger (issue 9). A data key is stored only wrapped by the
-- key-encryption key, which is not in the database (internal/datakey).
-- Erasing a person deletes their wrapped key (crypto-shredding) and keeps
-- a tombstone row (wrapped NULL), so no new key is ever made for them.
CREATE TABLE data_keys (
    id           text PRIMARY KEY,      -- 16 hex characters, named by every value sealed under it
    owner        text NOT NULL UNIQUE,  -- 'person:<id>' or 'org:<id>'
    kek_id       text NOT NULL DEFAULT '', -- the key-encryption key that wraps it
    wrapped      bytea,                 -- NULL once destroyed
    created_at   timestamptz NOT NULL,
    destroyed_at timestamptz            -- NULL while live
);
CREATE INDEX data_keys_kek ON data_keys (kek_id) WHERE wrapped IS NOT NULL;

-- One row per erased person: their id, organisation and time, and the
-- receipt (counts per class and what was kept and why; no personal data).
-- A restore re-applies it to the restored database.
CREATE TABLE erasures (
    person_id  text PRIMARY KEY,
    org_id     text NOT NULL,
    erased_at  timestamptz NOT NULL,
    receipt_id text NOT NULL UNIQUE,
    receipt    text NOT NULL -- JSON
);
