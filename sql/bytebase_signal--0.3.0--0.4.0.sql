-- bytebase_signal 0.3.0 -> 0.4.0: exact catch-up. Each logged signal records its transaction id,
-- and bytebase_signal_replay_after(snapshot) returns what that snapshot had not seen committed, so
-- listeners replay exactly what they missed however long a sender's transaction stayed open.
-- (The library also gains bytebase_signal.notify_queue_limit.)
-- Hand-written; the upgrade test checks that the result equals a fresh 0.4.0 install.
\echo Use "ALTER EXTENSION bytebase_signal UPDATE TO '0.4.0'" to load this file. \quit

-- Rows logged before the update get the updating transaction's id: pg_current_xact_id() is
-- STABLE, so the column is added without rewriting the table; building the index reads the rows
-- within the retention, holding sends for that long.
ALTER TABLE bytebase_signal_log ADD COLUMN xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id();
CREATE INDEX bytebase_signal_log_xid_idx ON bytebase_signal_log (xid);

-- A replay waiting for a lock on the log (VACUUM FULL, an update) gives up after 2 s instead of
-- holding a listener's heartbeat past its deadline; the listener tries again at the next one.
ALTER FUNCTION bytebase_signal_replay(timestamptz) SET lock_timeout TO '2s';

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
REVOKE ALL ON FUNCTION bytebase_signal_replay_after(pg_snapshot) FROM PUBLIC;
COMMENT ON FUNCTION bytebase_signal_replay_after(pg_snapshot) IS
    'The bytebase_signal signals whose transactions had not committed in the given snapshot, oldest first: call it with the pg_current_snapshot() of the previous call''s statement, on the same server, and every committed signal is returned exactly once.';
