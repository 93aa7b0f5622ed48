-- Vigil schema 3 (PostgreSQL): a position report is kept once, in positions.
--
-- Until schema 2 every event was a row of events (with its JSON body, its
-- UNIQUE (device_id, msg_id) and its (device_id, seq) index) and a
-- position report was also a row of positions. Position reports are
-- nearly all of the traffic, so from schema 3 a report of type "position"
-- is a row of positions only, which now carries everything the event had
-- (received_at and source were missing; the organisation is the
-- device's). Its key (device_id, device_time, msg_id) is its idempotency
-- key: a redelivery or a device's resend repeats all three. Other events
-- (alarms, buttons, battery, heartbeats, motion, falls) stay in events;
-- those with a position add a row to positions as before.

ALTER TABLE positions ADD COLUMN received_at timestamptz, ADD COLUMN source text;
UPDATE positions p SET received_at = e.received_at, source = e.source
    FROM events e WHERE e.device_id = p.device_id AND e.msg_id = p.msg_id;
ALTER TABLE positions ALTER COLUMN received_at SET NOT NULL, ALTER COLUMN source SET NOT NULL;
DELETE FROM events WHERE type = 'position';

-- Device state moves with every batch (one new row version per device per
-- batch). At fillfactor 100 the devices pages are full, so each new
-- version lands on another page and every index of devices gets an entry
-- too. Half-empty pages let PostgreSQL keep the version on the same page
-- (a HOT update: the state columns are in no index), which made
-- ApplyEvents 2.5x faster at batch 100 with one event per device. Pages
-- written from now on keep the room; VACUUM FULL devices (outside a
-- migration: it cannot run in a transaction) rewrites existing ones.
ALTER TABLE devices SET (fillfactor = 50);
