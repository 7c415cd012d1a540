-- The extension's log table, created first (pgrx: `bootstrap`), with the guard that keeps it out
-- of a database that has the pure-SQL edition. Included by extension/src/lib.rs
-- (extension_sql_file!); sql/README.md says which other files restate it and which test keeps
-- them in step.
DO $guard$
DECLARE
    pure_schema name;
BEGIN
    SELECT n.nspname INTO pure_schema
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE p.proname = '_bytebase_signal_send';
    IF FOUND THEN
        RAISE EXCEPTION 'bytebase_signal: the pure-SQL edition is installed in this database (schema %); not installing the extension beside it', pure_schema
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Move from the pure-SQL edition as the README describes (Moving between editions).';
    END IF;
END
$guard$;
CREATE TABLE bytebase_signal_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type text NOT NULL CHECK (type IN ('cancel_task_run', 'cancel_plan_check_run')),
    uid bigint NOT NULL CHECK (uid > 0),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    sent_by name NOT NULL,
    project text CHECK (project <> ''),
    approval_input_version bigint CHECK (approval_input_version >= 0),
    xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
);
CREATE INDEX bytebase_signal_log_created_at_idx ON bytebase_signal_log (created_at);
CREATE INDEX bytebase_signal_log_xid_idx ON bytebase_signal_log (xid);
REVOKE ALL ON TABLE bytebase_signal_log FROM PUBLIC;
COMMENT ON TABLE bytebase_signal_log IS
    'Signals sent by bytebase_cancel_* (one row per signal, written in the sender''s transaction), kept for bytebase_signal.retention so that listeners can replay what they missed.';
