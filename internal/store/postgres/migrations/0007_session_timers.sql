-- Vigil schema 7 (PostgreSQL): a covering index of the active sessions
-- with what the safety engine times them by, so that its start-up can read
-- them with an index-only scan (EachSessionTimer).
CREATE INDEX sessions_active_timer ON sessions (person_id)
    INCLUDE (id, org_id, device_id, started_at, expected_end, checkin_interval, grace, last_checkin)
    WHERE state = 'active';
