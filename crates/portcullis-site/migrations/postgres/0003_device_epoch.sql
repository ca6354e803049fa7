-- Device cookies (`accounts/device_cookie.rs`) sign this number with the password hash: every
-- `portcullis users disable` and `enable` bumps it, so that an account enabled again holds
-- none of the device cookies issued before (a password change replaces the hash instead).
-- The same SQL as
-- `migrations/sqlite/0003_device_epoch.sql`: it is portable.
ALTER TABLE users ADD COLUMN device_epoch BIGINT NOT NULL DEFAULT 0;
