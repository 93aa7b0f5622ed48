-- Vigil schema 8 (SQLite): a person's own fall cancel window, in
-- nanoseconds; 0 uses the server's default (safety.pre_alert).
ALTER TABLE people ADD COLUMN fall_cancel_window_ns INTEGER NOT NULL DEFAULT 0;
