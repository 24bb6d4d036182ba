-- Accounts get a version, incremented by every update: an update judged on
-- an account as read (its permissions, its status) is written only while
-- the account is still that version (KeyStore::update_account).
ALTER TABLE accounts ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
