-- Moves a database from the extension to the pure-SQL edition, in one transaction: the edition
-- goes into the extension's schema, with the logged signals and the EXECUTE grants it had. As a
-- superuser (DROP EXTENSION needs one; the functions will belong to that role, so consider
-- ALTER FUNCTION ... OWNER TO and ALTER TABLE ... OWNER TO afterwards):
--
--     psql -v ON_ERROR_STOP=1 -d <database> -f sql/pure/move-from-extension.sql
--
-- Senders and listeners keep running: sends during the move wait for it, and listeners stay
-- connected (the channel and the payloads are the same).
\set ON_ERROR_STOP 1
BEGIN;
\ir move/save.sql
DROP EXTENSION bytebase_signal;
\ir install.sql
\ir move/restore.sql
COMMIT;
