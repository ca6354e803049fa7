-- Disabled accounts and "end everyone's sessions" (`portcullis users disable`, `portcullis
-- sessions end --everyone`). The same SQL as
-- `migrations/sqlite/0002_disabled_accounts_and_sessions_epoch.sql`: it is portable.

-- When an administrator disabled the account (Unix seconds); NULL while it is enabled. A
-- disabled account cannot log in and none of its sessions is served.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- One row: sessions created before `not_before` (Unix milliseconds) are logged out on their
-- next request, whatever store holds them.
CREATE TABLE sessions_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    not_before BIGINT NOT NULL
);
