-- Vigil schema 2 (SQLite): cheaper event projection.
--
-- positions is keyed by (device_id, device_time, msg_id), so the key is
-- also the (device_id, device_time) range index Positions() scans and the
-- separate positions_device_time index goes: one B-tree insertion per
-- position instead of two. (device_id, msg_id) stays unique without a
-- constraint of its own: ApplyEvents inserts a position only for an event
-- it has just inserted into events, whose UNIQUE (device_id, msg_id) admits
-- each key once.
--
-- SQLite cannot change a table's key in place: the table is rebuilt (in
-- the migration's transaction).
--
-- The foreign keys to devices stay. Dropping them from events and
-- positions (an events rebuild too) saved about 0.5 us of ~20 us CPU per
-- event at batch=1000 and nothing measurable at batch=100: not worth a
-- copy of every event at upgrade nor the loss of the database's own check.

CREATE TABLE positions_v2 (
    device_id   TEXT NOT NULL REFERENCES devices (id),
    msg_id      TEXT NOT NULL,
    device_time INTEGER NOT NULL,
    late        INTEGER NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL,
    accuracy_m  REAL NOT NULL,
    speed       REAL,
    heading     REAL,
    altitude    REAL,
    fix_time    INTEGER,
    PRIMARY KEY (device_id, device_time, msg_id)
) STRICT, WITHOUT ROWID;
INSERT INTO positions_v2
    (device_id, msg_id, device_time, late, lat, lon, accuracy_m, speed, heading, altitude, fix_time)
    SELECT device_id, msg_id, device_time, late, lat, lon, accuracy_m, speed, heading, altitude, fix_time
    FROM positions ORDER BY device_id, device_time, msg_id;
DROP TABLE positions; -- and its index positions_device_time
ALTER TABLE positions_v2 RENAME TO positions;
