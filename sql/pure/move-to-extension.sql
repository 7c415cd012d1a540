-- Moves a database from the pure-SQL edition to the extension, in one transaction: the extension
-- goes into the same schema, with the logged signals and the EXECUTE grants the edition had.
-- Install the extension's files on the server first (README, Install), then, as a superuser:
--
--     psql -v ON_ERROR_STOP=1 -d <database> -f sql/pure/move-to-extension.sql
--
-- Senders and listeners keep running: sends during the move wait for it, and listeners stay
-- connected (the channel and the payloads are the same).
\set ON_ERROR_STOP 1
BEGIN;
\ir move/save.sql
\ir uninstall.sql
CREATE EXTENSION bytebase_signal;
\ir move/restore.sql
COMMIT;
