-- User names of any script (`accounts/names.rs`): each account's UTS #39 confusable skeleton
-- of its case-folded NFKC name, unique, so that two names that look alike (`bob1` and `bobl`,
-- a Cyrillic `ѕсоре` and a Latin `scope`) cannot both be registered, even at the same moment.
-- NULL for the accounts of before: `Users::open` fills them in (the skeleton needs Unicode's
-- tables, which SQL has not); NULLs do not collide in a unique index. `name_key` keeps its
-- meaning: for the ASCII names of before, their case-folded NFKC form is their lower case.
-- Portable SQL: the same statements work on PostgreSQL.
ALTER TABLE users ADD COLUMN name_skeleton TEXT;
CREATE UNIQUE INDEX users_name_skeleton ON users (name_skeleton);
