-- Part of the move scripts (sql/pure/move-*.sql): remembers, for this transaction, the schema the
-- current edition lives in, its logged signals and the EXECUTE grants on its functions.
SELECT n.nspname AS bytebase_signal_schema
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.proname = 'bytebase_signal_replay' AND p.proargtypes = '1184'::oidvector
\gset
-- The new edition goes into the same schema; names below resolve there.
SET LOCAL search_path TO :"bytebase_signal_schema";
-- Sends wait from here until the move commits, so that no row is logged after the copy and lost
-- with the old table. (A send already inside its transaction then fails and rolls back, NOTIFY
-- included: the sender sees an error, nothing is lost silently.)
LOCK TABLE bytebase_signal_log IN EXCLUSIVE MODE;
CREATE TEMP TABLE bytebase_signal_moving_rows ON COMMIT DROP AS
    SELECT id, type, uid, created_at, sent_by, project, approval_input_version, xid FROM bytebase_signal_log;
CREATE TEMP TABLE bytebase_signal_moving_grants ON COMMIT DROP AS
    SELECT p.oid::regprocedure::text AS function, a.grantee, a.is_grantable
      FROM pg_catalog.pg_proc p CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) AS a
     WHERE p.pronamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = :'bytebase_signal_schema')
       AND p.proname LIKE 'bytebase\_%' AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner;
