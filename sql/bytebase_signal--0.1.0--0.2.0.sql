-- bytebase_signal 0.1.0 -> 0.2.0: the durable signal log, replay, and least privilege.
-- Hand-written; the upgrade test checks that the result equals a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION bytebase_signal UPDATE TO '0.2.0'" to load this file. \quit

CREATE TABLE bytebase_signal_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type text NOT NULL CHECK (type IN ('cancel_task_run', 'cancel_plan_check_run')),
    uid bigint NOT NULL CHECK (uid > 0),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_by name NOT NULL
);
CREATE INDEX bytebase_signal_log_created_at_idx ON bytebase_signal_log (created_at);
REVOKE ALL ON TABLE bytebase_signal_log FROM PUBLIC;
COMMENT ON TABLE bytebase_signal_log IS
    'Signals sent by bytebase_cancel_* (one row per signal, written in the sender''s transaction), kept for bytebase_signal.retention so that listeners can replay what they missed.';

-- The send functions keep their OIDs (callers' plans and dependencies stay valid) but move to
-- 0.2.0's C symbols, which log as well as notify; the old symbols stay NOTIFY-only for databases
-- not yet updated.
CREATE OR REPLACE FUNCTION bytebase_cancel_task_run(uid bigint) RETURNS void
VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'cancel_task_run_wrapper';
CREATE OR REPLACE FUNCTION bytebase_cancel_plan_check_run(uid bigint) RETURNS void
VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'cancel_plan_check_run_wrapper';
CREATE OR REPLACE FUNCTION bytebase_cancel_task_runs(uids bigint[]) RETURNS integer
VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'cancel_task_runs_wrapper';
CREATE OR REPLACE FUNCTION bytebase_cancel_plan_check_runs(uids bigint[]) RETURNS integer
VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'cancel_plan_check_runs_wrapper';

CREATE FUNCTION bytebase_signal_prune() RETURNS bigint
STRICT VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'bytebase_signal_prune_wrapper';

CREATE FUNCTION bytebase_signal_replay(since timestamptz)
RETURNS TABLE (id bigint, type text, uid bigint, created_at timestamptz)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
AS $replay$
BEGIN
    IF since IS NULL THEN
        RAISE EXCEPTION 'bytebase_signal_replay(since): since must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN QUERY
        SELECT l.id, l.type, l.uid, l.created_at
          FROM bytebase_signal_log AS l
         WHERE l.created_at >= since
         ORDER BY l.created_at, l.id;
END
$replay$;

-- Least privilege: callers need an explicit GRANT from now on (README, "Grant").
REVOKE ALL ON FUNCTION bytebase_cancel_task_run(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_plan_check_run(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_task_runs(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_plan_check_runs(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_signal_prune() FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_signal_replay(timestamptz) FROM PUBLIC;

COMMENT ON FUNCTION bytebase_cancel_task_run(bigint) IS
    'Logs and sends {"type":"cancel_task_run","uid":<uid>} on channel bytebase_signal when the transaction commits. uid must be positive.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_run(bigint) IS
    'Logs and sends {"type":"cancel_plan_check_run","uid":<uid>} on channel bytebase_signal when the transaction commits. uid must be positive.';
COMMENT ON FUNCTION bytebase_cancel_task_runs(bigint[]) IS
    'Logs and sends one cancel_task_run signal per distinct uid on channel bytebase_signal when the transaction commits; returns their number. Every element must be positive.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_runs(bigint[]) IS
    'Logs and sends one cancel_plan_check_run signal per distinct uid on channel bytebase_signal when the transaction commits; returns their number. Every element must be positive.';
COMMENT ON FUNCTION bytebase_signal_prune() IS
    'Deletes bytebase_signal logged signals older than bytebase_signal.retention; returns how many.';
COMMENT ON FUNCTION bytebase_signal_replay(timestamptz) IS
    'The bytebase_signal signals logged since the given time, oldest first, for listeners recovering what they missed while disconnected.';
