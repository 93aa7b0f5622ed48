-- Vigil schema 7 (SQLite): a covering index of the active sessions with
-- what the safety engine times them by, so that its start-up reads one
-- index in order instead of a table row per session (EachSessionTimer).
-- state is in it only so that SQLite sees the index covers the query.
CREATE INDEX sessions_active_timer ON sessions
    (person_id, id, org_id, device_id, started_at, expected_end, checkin_interval, grace, last_checkin, state)
    WHERE state = 'active';
