-- verify: objects in the order an incremental verify visits them (never verified or verified
-- longest ago first), so `verify --max-age` finds what is due without scanning every row.
CREATE INDEX objects_verify_order ON objects(state, verified_at);
