-- bytebase_signal 0.2.0 -> 0.3.0: project-scoped cancels (upstream run ids are unique per project)
-- and the protojson wire format (bytebase_signal.wire_format, in the library).
-- Hand-written; the upgrade test checks that the result equals a fresh 0.3.0 install.
\echo Use "ALTER EXTENSION bytebase_signal UPDATE TO '0.3.0'" to load this file. \quit

ALTER TABLE bytebase_signal_log
    ADD COLUMN project text CHECK (project <> ''),
    ADD COLUMN approval_input_version bigint CHECK (approval_input_version >= 0);

CREATE FUNCTION bytebase_cancel_task_run(uid bigint, project text) RETURNS void
VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'cancel_task_run_in_project_wrapper';
CREATE FUNCTION bytebase_cancel_plan_check_run(uid bigint, project text, approval_input_version bigint DEFAULT NULL)
RETURNS void
VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'cancel_plan_check_run_in_project_wrapper';
CREATE FUNCTION bytebase_cancel_task_runs(uids bigint[], project text) RETURNS integer
VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'cancel_task_runs_in_project_wrapper';
CREATE FUNCTION bytebase_cancel_plan_check_runs(uids bigint[], project text, approval_input_version bigint DEFAULT NULL)
RETURNS integer
VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'cancel_plan_check_runs_in_project_wrapper';

-- The replay returns the two new columns. A function's result type cannot be replaced, so it is
-- dropped and created again, without the grants it had: run the listeners' GRANT again in the
-- transaction that updates (README, "Upgrading").
DROP FUNCTION bytebase_signal_replay(timestamptz);
CREATE FUNCTION bytebase_signal_replay(since timestamptz)
RETURNS TABLE (id bigint, type text, uid bigint, created_at timestamptz, project text, approval_input_version bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
AS $replay$
BEGIN
    IF since IS NULL THEN
        RAISE EXCEPTION 'bytebase_signal_replay(since): since must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN QUERY
        SELECT l.id, l.type, l.uid, l.created_at, l.project, l.approval_input_version
          FROM bytebase_signal_log AS l
         WHERE l.created_at >= since
         ORDER BY l.created_at, l.id;
END
$replay$;

REVOKE ALL ON FUNCTION bytebase_cancel_task_run(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_plan_check_run(bigint, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_task_runs(bigint[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_plan_check_runs(bigint[], text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_signal_replay(timestamptz) FROM PUBLIC;

COMMENT ON FUNCTION bytebase_cancel_task_run(bigint) IS
    'Logs and sends {"type":"cancel_task_run","uid":<uid>} on channel bytebase_signal when the transaction commits, spelled as bytebase_signal.wire_format says. uid must be positive.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_run(bigint) IS
    'Logs and sends {"type":"cancel_plan_check_run","uid":<uid>} on channel bytebase_signal when the transaction commits, spelled as bytebase_signal.wire_format says. uid must be positive.';
COMMENT ON FUNCTION bytebase_cancel_task_run(bigint, text) IS
    'Logs and sends a cancel_task_run signal naming uid and project on channel bytebase_signal when the transaction commits, spelled as bytebase_signal.wire_format says. uid must be positive, project non-empty.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_run(bigint, text, bigint) IS
    'Logs and sends a cancel_plan_check_run signal naming uid, project and approval_input_version (unless NULL) on channel bytebase_signal when the transaction commits, spelled as bytebase_signal.wire_format says. uid must be positive, project non-empty, approval_input_version not negative.';
COMMENT ON FUNCTION bytebase_cancel_task_runs(bigint[], text) IS
    'Logs and sends one cancel_task_run signal naming project per distinct uid on channel bytebase_signal when the transaction commits; returns their number. Every element must be positive, project non-empty.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_runs(bigint[], text, bigint) IS
    'Logs and sends one cancel_plan_check_run signal naming project and approval_input_version (unless NULL) per distinct uid on channel bytebase_signal when the transaction commits; returns their number. Every element must be positive, project non-empty, approval_input_version not negative.';
COMMENT ON FUNCTION bytebase_signal_replay(timestamptz) IS
    'The bytebase_signal signals logged since the given time, oldest first, for listeners recovering what they missed while disconnected.';
