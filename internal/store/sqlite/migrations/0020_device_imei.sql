-- Vigil schema 20 (SQLite): the IMEI a third-party tracker (GT06) logs in
-- with, registered to one device. Trackers of this kind prove no secret,
-- so an IMEI is accepted only if an admin registered it.
CREATE TABLE device_imeis (
    imei      TEXT PRIMARY KEY,
    device_id TEXT NOT NULL UNIQUE REFERENCES devices (id) ON DELETE CASCADE
) STRICT;
