-- bytebase_signal, pure-SQL edition: removes everything sql/pure/install.sql created (the
-- functions, the log table with its rows) from the schema it was installed in.
--
--     psql -v ON_ERROR_STOP=1 -d <database> -f sql/pure/uninstall.sql
--
-- Refuses where the extension is installed (use DROP EXTENSION bytebase_signal there). Objects of
-- yours that depend on the log table (a view, say) make it fail rather than be dropped with it.
-- One statement, so it is atomic on its own and can also run inside a caller's transaction.

DO $uninstall$
DECLARE
    ext_schema name;
    schema name;
    f regprocedure;
BEGIN
    SELECT n.nspname INTO ext_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'bytebase_signal';
    IF FOUND THEN
        RAISE EXCEPTION 'bytebase_signal: this database has the extension (schema %), not the pure-SQL edition', ext_schema
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Remove the extension with DROP EXTENSION bytebase_signal.';
    END IF;
    -- The edition is where its internal send function is.
    SELECT n.nspname INTO schema
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE p.proname = '_bytebase_signal_send';
    IF NOT FOUND THEN
        RAISE NOTICE 'bytebase_signal: the pure-SQL edition is not installed in this database; nothing to do';
        RETURN;
    END IF;
    -- Every function of the edition, whichever version installed it.
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = schema
                AND p.proname IN ('bytebase_cancel_task_run', 'bytebase_cancel_plan_check_run',
                                  'bytebase_cancel_task_runs', 'bytebase_cancel_plan_check_runs',
                                  'bytebase_signal_prune', 'bytebase_signal_replay', 'bytebase_signal_replay_after',
                                  '_bytebase_signal_send', '_bytebase_signal_prune',
                                  '_bytebase_signal_retention_secs', '_bytebase_signal_wire_format',
                                  '_bytebase_signal_notify_queue_limit') LOOP
        EXECUTE pg_catalog.format('DROP FUNCTION %s', f);
    END LOOP;
    EXECUTE pg_catalog.format('DROP TABLE %I.bytebase_signal_log', schema);
    RAISE NOTICE 'bytebase_signal: removed the pure-SQL edition from schema %', schema;
END
$uninstall$;
