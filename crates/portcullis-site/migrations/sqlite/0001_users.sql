-- Accounts of the reference site. Portable SQL: the same table works on PostgreSQL with
-- `id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY`.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    -- The name as the person typed it, shown back to them.
    name TEXT NOT NULL,
    -- The name in lower case: names are unique regardless of case.
    name_key TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    -- An Argon2id PHC string ($argon2id$v=19$m=19456,t=2,p=1$...).
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
