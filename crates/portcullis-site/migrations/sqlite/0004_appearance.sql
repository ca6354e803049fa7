-- The appearance belongs to the account (`accounts/appearance.rs`): the same theme and density
-- on every device the user logs in on, kept across log-outs and expiry. Existing accounts take
-- the defaults the site showed before (`system` follows the device's light or dark setting).
-- Portable SQL: the same statements work on PostgreSQL (`migrations/postgres/`).
ALTER TABLE users ADD COLUMN theme TEXT NOT NULL DEFAULT 'system';
ALTER TABLE users ADD COLUMN density TEXT NOT NULL DEFAULT 'comfortable';
