-- Vigil schema 12 (SQLite): the gateways poll for devices disabled since
-- their last look (the revocation denylist); this index keeps that poll a
-- range scan over disabled devices only.
CREATE INDEX devices_disabled_at ON devices (disabled_at) WHERE disabled_at IS NOT NULL;
