-- Vigil schema 10 (SQLite): break-glass grants. A user who needs a
-- person's details in an emergency, beyond what their role shows, gives a
-- reason and gets read access to that one person for a short time; admins
-- are told and the audit log has it. Times are Unix nanoseconds.
CREATE TABLE break_glass (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    person_id  TEXT NOT NULL REFERENCES people (id),
    reason     TEXT NOT NULL, -- free text: personal data
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX break_glass_user ON break_glass (user_id, expires_at);
CREATE INDEX break_glass_org ON break_glass (org_id, created_at);
