-- Vigil schema 10 (PostgreSQL): break-glass grants. A user who needs a
-- person's details in an emergency, beyond what their role shows, gives a
-- reason and gets read access to that one person for a short time; admins
-- are told and the audit log has it. Times are Unix nanoseconds.
CREATE TABLE break_glass (
    id         text PRIMARY KEY,
    org_id     text NOT NULL REFERENCES orgs (id),
    user_id    text NOT NULL REFERENCES users (id),
    person_id  text NOT NULL REFERENCES people (id),
    reason     text NOT NULL, -- free text: personal data
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX break_glass_user ON break_glass (user_id, expires_at);
CREATE INDEX break_glass_org ON break_glass (org_id, created_at);
