-- The extension's replay functions, its privileges and every function's comment, run last (pgrx:
-- `finalize`, after the #[pg_extern] functions exist). Included by extension/src/lib.rs
-- (extension_sql_file!); sql/README.md says which other files restate it and which test keeps
-- them in step.
CREATE FUNCTION bytebase_signal_replay(since timestamptz)
RETURNS TABLE (id bigint, type text, uid bigint, created_at timestamptz, project text, approval_input_version bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
SET lock_timeout TO '2s'
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

CREATE FUNCTION bytebase_signal_replay_after(after pg_snapshot)
RETURNS TABLE (id bigint, type text, uid bigint, created_at timestamptz, project text, approval_input_version bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path TO pg_catalog, @extschema@, pg_temp
SET lock_timeout TO '2s'
SET plan_cache_mode TO force_custom_plan
AS $replay$
BEGIN
    IF after IS NULL THEN
        RAISE EXCEPTION 'bytebase_signal_replay_after(after): after must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- What `after` did not see committed: a transaction below its xmin had ended when it was
    -- taken, so the index condition is exact, and the visibility test keeps the rest.
    RETURN QUERY
        SELECT l.id, l.type, l.uid, l.created_at, l.project, l.approval_input_version
          FROM bytebase_signal_log AS l
         WHERE l.xid >= pg_catalog.pg_snapshot_xmin(after)
           AND NOT pg_catalog.pg_visible_in_snapshot(l.xid, after)
         ORDER BY l.created_at, l.id;
END
$replay$;

REVOKE ALL ON FUNCTION bytebase_cancel_task_run(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_plan_check_run(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_task_runs(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_plan_check_runs(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_task_run(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_plan_check_run(bigint, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_task_runs(bigint[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_cancel_plan_check_runs(bigint[], text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_signal_prune() FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_signal_replay(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION bytebase_signal_replay_after(pg_snapshot) FROM PUBLIC;

COMMENT ON FUNCTION bytebase_cancel_task_run(bigint) IS
    'Logs and sends {"type":"cancel_task_run","uid":<uid>} on channel bytebase_signal when the transaction commits, spelled as bytebase_signal.wire_format says. uid must be positive.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_run(bigint) IS
    'Logs and sends {"type":"cancel_plan_check_run","uid":<uid>} on channel bytebase_signal when the transaction commits, spelled as bytebase_signal.wire_format says. uid must be positive.';
COMMENT ON FUNCTION bytebase_cancel_task_runs(bigint[]) IS
    'Logs and sends one cancel_task_run signal per distinct uid on channel bytebase_signal when the transaction commits; returns their number. Every element must be positive.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_runs(bigint[]) IS
    'Logs and sends one cancel_plan_check_run signal per distinct uid on channel bytebase_signal when the transaction commits; returns their number. Every element must be positive.';
COMMENT ON FUNCTION bytebase_cancel_task_run(bigint, text) IS
    'Logs and sends a cancel_task_run signal naming uid and project on channel bytebase_signal when the transaction commits, spelled as bytebase_signal.wire_format says. uid must be positive, project non-empty.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_run(bigint, text, bigint) IS
    'Logs and sends a cancel_plan_check_run signal naming uid, project and approval_input_version (unless NULL) on channel bytebase_signal when the transaction commits, spelled as bytebase_signal.wire_format says. uid must be positive, project non-empty, approval_input_version not negative.';
COMMENT ON FUNCTION bytebase_cancel_task_runs(bigint[], text) IS
    'Logs and sends one cancel_task_run signal naming project per distinct uid on channel bytebase_signal when the transaction commits; returns their number. Every element must be positive, project non-empty.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_runs(bigint[], text, bigint) IS
    'Logs and sends one cancel_plan_check_run signal naming project and approval_input_version (unless NULL) per distinct uid on channel bytebase_signal when the transaction commits; returns their number. Every element must be positive, project non-empty, approval_input_version not negative.';
COMMENT ON FUNCTION bytebase_signal_prune() IS
    'Deletes bytebase_signal logged signals older than bytebase_signal.retention; returns how many.';
COMMENT ON FUNCTION bytebase_signal_replay(timestamptz) IS
    'The bytebase_signal signals logged since the given time, oldest first, for listeners recovering what they missed while disconnected.';
COMMENT ON FUNCTION bytebase_signal_replay_after(pg_snapshot) IS
    'The bytebase_signal signals whose transactions had not committed in the given snapshot, oldest first: call it with the pg_current_snapshot() of the previous call''s statement, on the same server, and every committed signal is returned exactly once.';
