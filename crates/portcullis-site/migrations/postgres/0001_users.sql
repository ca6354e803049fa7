-- Accounts of the reference site: `migrations/sqlite/0001_users.sql` in PostgreSQL's
-- dialect (an identity column for SQLite's `INTEGER PRIMARY KEY`). The two folders keep the
-- same numbers and the same columns: the site reads both with the same queries.
CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The name as the person typed it, shown back to them.
    name TEXT NOT NULL,
    -- The name in lower case: names are unique regardless of case.
    name_key TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    -- An Argon2id PHC string ($argon2id$v=19$m=19456,t=2,p=1$...).
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
