-- bytebase_signal 0.4.0, pure-SQL edition: the extension's SQL API in plain SQL and PL/pgSQL, for
-- servers where a compiled extension cannot be installed (RDS, Cloud SQL, Azure, ...).
--
--     psql -v ON_ERROR_STOP=1 -d <database> -f sql/pure/install.sql
--
-- Needs no superuser: the installing role needs CREATE on the target schema, and becomes the
-- owner of the log table and of the functions (which run as that owner: SECURITY DEFINER). The
-- target schema is the first existing schema on search_path (`public` by default; choose another
-- with PGOPTIONS='-c search_path=<schema>'), as for CREATE EXTENSION.
--
-- Running it again is harmless (it replaces the functions, keeping their grants), and running it
-- over an older version updates that in place (the log keeps its rows). It refuses to run where
-- the extension is installed; sql/pure/uninstall.sql removes what it creates.
-- The end-to-end conformance suite (tests/tests/conformance.rs) checks that both editions send the
-- same bytes, raise the same SQLSTATEs and messages, and replay the same rows.

-- One statement, so it is atomic on its own and can also run inside a caller's transaction
-- (`\i` in psql, when moving between editions).
DO $install$
DECLARE
    found_in name;
    f regprocedure;
    replay_acl aclitem[];
    g record;
BEGIN
-- Refusals first: nothing is created if one applies.
SELECT n.nspname INTO found_in
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'bytebase_signal';
IF FOUND THEN
    RAISE EXCEPTION 'bytebase_signal: the extension is installed in this database (schema %); not installing the pure-SQL edition beside it', found_in
        USING ERRCODE = 'duplicate_object',
              HINT = 'Keep the extension, or move to the pure-SQL edition as the README describes (Moving between editions).';
END IF;
IF pg_catalog.current_schema() IS NULL THEN
    RAISE EXCEPTION 'bytebase_signal: no schema to install into: search_path names no existing schema'
        USING ERRCODE = 'invalid_schema_name';
END IF;
SELECT n.nspname INTO found_in
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.proname = 'bytebase_signal_replay' AND p.proargtypes = '1184'::oidvector
   AND n.nspname <> pg_catalog.current_schema();
IF FOUND THEN
    RAISE EXCEPTION 'bytebase_signal: the pure-SQL edition is already installed in schema %, not in %', found_in, pg_catalog.current_schema()
        USING ERRCODE = 'duplicate_object',
              HINT = 'Run it with that schema first on search_path, or run sql/pure/uninstall.sql first.';
END IF;

-- The log: the same definition as the extension's. Created once: a second run keeps the table
-- and its rows; over 0.2.0 it gains 0.3.0's columns, as the extension's update does.
IF pg_catalog.to_regclass(pg_catalog.format('%I.bytebase_signal_log', pg_catalog.current_schema())) IS NULL THEN
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
ELSE
    IF NOT EXISTS (SELECT FROM pg_attribute
                    WHERE attrelid = pg_catalog.format('%I.bytebase_signal_log', pg_catalog.current_schema())::regclass
                      AND attname = 'project' AND NOT attisdropped) THEN
        ALTER TABLE bytebase_signal_log
            ADD COLUMN project text CHECK (project <> ''),
            ADD COLUMN approval_input_version bigint CHECK (approval_input_version >= 0);
    END IF;
    -- Over 0.3.0 and older: each row's transaction id, for exact replays, as the extension's
    -- update adds it (rows logged before get the installing transaction's id).
    IF NOT EXISTS (SELECT FROM pg_attribute
                    WHERE attrelid = pg_catalog.format('%I.bytebase_signal_log', pg_catalog.current_schema())::regclass
                      AND attname = 'xid' AND NOT attisdropped) THEN
        ALTER TABLE bytebase_signal_log ADD COLUMN xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id();
        CREATE INDEX bytebase_signal_log_xid_idx ON bytebase_signal_log (xid);
    END IF;
END IF;
IF (SELECT c.relacl FROM pg_catalog.pg_class c WHERE c.oid = 'bytebase_signal_log'::regclass) IS NULL THEN
    REVOKE ALL ON TABLE bytebase_signal_log FROM PUBLIC;
END IF;
COMMENT ON TABLE bytebase_signal_log IS
    'Signals sent by bytebase_cancel_* (one row per signal, written in the sender''s transaction), kept for bytebase_signal.retention so that listeners can replay what they missed.';

-- bytebase_signal.retention in seconds. The extension registers its settings, so PostgreSQL
-- checks them at SET; here they are plain placeholders, checked when read, with the same rules
-- and messages.
CREATE OR REPLACE FUNCTION _bytebase_signal_retention_secs() RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $function$
DECLARE
    setting text := pg_catalog.current_setting('bytebase_signal.retention', true);
    parts text[];
    secs double precision;
BEGIN
    IF setting IS NULL OR setting = '' THEN
        RETURN 3600;
    END IF;
    parts := pg_catalog.regexp_match(setting, '^\s*([-+]?[0-9]+(?:\.[0-9]*)?)\s*(us|ms|s|min|h|d)?\s*$');
    IF parts IS NULL THEN
        -- PostgreSQL hints at the units only when the value starts with a number.
        IF setting ~ '^\s*[-+]?[0-9]' THEN
            RAISE EXCEPTION 'invalid value for parameter "bytebase_signal.retention": "%"', setting
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".';
        END IF;
        RAISE EXCEPTION 'invalid value for parameter "bytebase_signal.retention": "%"', setting
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Rounded to whole seconds to nearest, ties to even, as PostgreSQL does.
    secs := pg_catalog.round(parts[1]::double precision * CASE coalesce(parts[2], 's')
        WHEN 'us' THEN 1e-6::double precision WHEN 'ms' THEN 1e-3::double precision
        WHEN 's' THEN 1::double precision WHEN 'min' THEN 60::double precision
        WHEN 'h' THEN 3600::double precision ELSE 86400::double precision END);
    IF secs < 1::double precision OR secs > 2592000::double precision THEN
        -- PostgreSQL 17 and later name the unit in the range too.
        IF pg_catalog.current_setting('server_version_num')::integer >= 170000 THEN
            RAISE EXCEPTION '% s is outside the valid range for parameter "bytebase_signal.retention" (1 s .. 2592000 s)', secs
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION '% s is outside the valid range for parameter "bytebase_signal.retention" (1 .. 2592000)', secs
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN secs;
END
$function$;

-- Deletes up to `lim` (NULL: all) rows older than the retention, oldest first, skipping rows
-- another session is deleting; returns how many. The extension's statement, for the same reasons
-- (extension/src/log.rs): the cutoff is an index condition and rows are deleted by primary key.
CREATE OR REPLACE FUNCTION _bytebase_signal_prune(lim bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $function$
DECLARE
    cutoff timestamptz := pg_catalog.now() - pg_catalog.make_interval(secs => _bytebase_signal_retention_secs());
    deleted bigint;
BEGIN
    DELETE FROM bytebase_signal_log WHERE id = ANY (ARRAY(
        SELECT l.id FROM bytebase_signal_log AS l
         WHERE l.created_at < cutoff
         ORDER BY l.created_at LIMIT lim FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$function$;

-- bytebase_signal.wire_format, as the extension's enum setting reads it (ignoring case).
CREATE OR REPLACE FUNCTION _bytebase_signal_wire_format() RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $function$
DECLARE
    setting text := pg_catalog.current_setting('bytebase_signal.wire_format', true);
BEGIN
    IF setting IS NULL OR setting = '' OR pg_catalog.lower(setting) = 'seed' THEN
        RETURN 'seed';
    ELSIF pg_catalog.lower(setting) = 'protojson' THEN
        RETURN 'protojson';
    END IF;
    RAISE EXCEPTION 'invalid value for parameter "bytebase_signal.wire_format": "%"', setting
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Available values: seed, protojson.';
END
$function$;

-- bytebase_signal.notify_queue_limit, as the extension's real setting reads it: 0 .. 1, default
-- 0.5 (the usage at which PostgreSQL itself starts warning).
CREATE OR REPLACE FUNCTION _bytebase_signal_notify_queue_limit() RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $function$
DECLARE
    setting text := pg_catalog.current_setting('bytebase_signal.notify_queue_limit', true);
    lim double precision;
BEGIN
    IF setting IS NULL OR setting = '' THEN
        RETURN 0.5;
    END IF;
    IF setting !~ '^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$' THEN
        RAISE EXCEPTION 'invalid value for parameter "bytebase_signal.notify_queue_limit": "%"', setting
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    lim := setting::double precision;
    IF lim < 0::double precision OR lim > 1::double precision THEN
        RAISE EXCEPTION '% is outside the valid range for parameter "bytebase_signal.notify_queue_limit" (0 .. 1)', lim
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN lim;
END
$function$;

-- 0.2.0's helper, replaced by the one below.
IF pg_catalog.to_regprocedure(pg_catalog.format('%I._bytebase_signal_send(text, text, bigint[], boolean)', pg_catalog.current_schema())) IS NOT NULL THEN
    DROP FUNCTION _bytebase_signal_send(text, text, bigint[], boolean);
END IF;

-- What every send function does: validate the whole argument list, log one row per distinct uid
-- (unless bytebase_signal.durable is off), queue one NOTIFY per distinct uid in first-occurrence
-- order; returns how many. `fn`, `single` and `scoped` (the project-scoped forms) only shape the
-- error messages; the payload is spelled as bytebase_signal.wire_format says, with the bytes of
-- the extension (client/golden/payloads.json pins them).
CREATE OR REPLACE FUNCTION _bytebase_signal_send(
    fn text, kind text, uids bigint[], single boolean,
    scoped boolean, project text, approval_input_version bigint)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $function$
DECLARE
    param text := CASE WHEN single THEN 'uid' ELSE 'uids' END;
    bad_position bigint;
    culprit text;
    bad_value bigint;
    distinct_uids bigint[];
    durable_setting text := pg_catalog.lower(pg_catalog.current_setting('bytebase_signal.durable', true));
    wire_format text;
    queue_limit double precision;
    queue_usage double precision;
    warning text;
    warning_detail text;
    head text;
    tail text := '}';
    sender name;
    prunes boolean;
    u bigint;
BEGIN
    IF uids IS NULL THEN
        RAISE EXCEPTION '%(%): % must not be NULL', fn, param, param USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF single THEN
        -- One element: checked without a query, the common case's cost.
        bad_position := 1;
        bad_value := uids[1];
    ELSE
        SELECT t.o, t.u INTO bad_position, bad_value
          FROM pg_catalog.unnest(uids) WITH ORDINALITY AS t(u, o)
         WHERE t.u IS NULL OR t.u <= 0
         ORDER BY t.o LIMIT 1;
    END IF;
    IF (single AND (bad_value IS NULL OR bad_value <= 0)) OR (NOT single AND FOUND) THEN
        -- As the extension words it: `uids[2]` names the element by its 1-based position.
        culprit := param || CASE WHEN single THEN '' ELSE '[' || bad_position::text || ']' END;
        IF bad_value IS NULL THEN
            RAISE EXCEPTION '%(%): % must not be NULL', fn, param, culprit
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        RAISE EXCEPTION '%(%): % must be a positive run id, got %', fn, param, culprit, bad_value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF scoped THEN
        IF project IS NULL THEN
            RAISE EXCEPTION '%(project): project must not be NULL', fn USING ERRCODE = 'null_value_not_allowed';
        ELSIF project = '' THEN
            RAISE EXCEPTION '%(project): project must not be empty', fn USING ERRCODE = 'invalid_parameter_value';
        ELSIF pg_catalog.octet_length(project) > 1024 THEN
            RAISE EXCEPTION '%(project): project must be at most 1024 bytes, got %', fn, pg_catalog.octet_length(project)
                USING ERRCODE = 'invalid_parameter_value';
        ELSIF approval_input_version < 0 THEN
            RAISE EXCEPTION '%(approval_input_version): approval_input_version must not be negative, got %',
                fn, approval_input_version USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF single THEN
        distinct_uids := uids;
    ELSE
        distinct_uids := ARRAY(SELECT t.u FROM pg_catalog.unnest(uids) WITH ORDINALITY AS t(u, o)
                                GROUP BY t.u ORDER BY pg_catalog.min(t.o));
    END IF;
    IF pg_catalog.cardinality(distinct_uids) = 0 THEN
        RETURN 0;
    END IF;
    -- Settings are read before anything is written, as the extension's are checked at SET.
    wire_format := _bytebase_signal_wire_format();
    queue_limit := _bytebase_signal_notify_queue_limit();

    IF durable_setting IS NULL OR durable_setting = ''
       OR durable_setting IN ('on', 't', 'tr', 'tru', 'true', 'y', 'ye', 'yes', '1') THEN
        -- The role the caller acts as, after SET ROLE: inside this SECURITY DEFINER function
        -- current_user is the owner, as GetOuterUserId() is what the extension records.
        sender := CASE pg_catalog.current_setting('role') WHEN 'none' THEN session_user
                  ELSE pg_catalog.current_setting('role') END;
        WITH logged AS (
            INSERT INTO bytebase_signal_log AS l (type, uid, sent_by, project, approval_input_version)
            SELECT kind, t.u, sender, _bytebase_signal_send.project, _bytebase_signal_send.approval_input_version
              FROM pg_catalog.unnest(distinct_uids) AS t(u)
            RETURNING l.id)
        SELECT coalesce(pg_catalog.bool_or(logged.id % 64::bigint = 0), false) INTO prunes FROM logged;
        -- Every 64th row prunes up to 128 expired rows; not in REPEATABLE READ or SERIALIZABLE,
        -- where locking rows another session pruned would fail the caller with 40001.
        IF prunes AND pg_catalog.current_setting('transaction_isolation') NOT IN ('repeatable read', 'serializable') THEN
            PERFORM _bytebase_signal_prune(128::bigint);
        END IF;
        -- A nearly full notification queue would fail the caller's commit; logged signals reach
        -- the listeners from the log instead (the extension's extension/src/queue.rs, same words).
        -- protojson is for upstream Go replicas, which do not read the log: they keep their NOTIFY.
        queue_usage := pg_catalog.pg_notification_queue_usage();
        IF wire_format = 'seed' AND queue_usage >= queue_limit THEN
            SELECT pg_catalog.format('bytebase_signal: the notification queue is %s%% full, at or above bytebase_signal.notify_queue_limit (%s%%): %s logged without NOTIFY; listeners read it from the log at their next heartbeat',
                       pg_catalog.round((queue_usage * 100::double precision)::numeric, 1),
                       pg_catalog.round((queue_limit * 100::double precision)::numeric, 1),
                       CASE WHEN pg_catalog.cardinality(distinct_uids) = 1 THEN 'the signal was'
                            ELSE pg_catalog.cardinality(distinct_uids)::text || ' signals were' END),
                   coalesce((SELECT pg_catalog.format('The oldest open transaction you may see, which may be the listening session holding the queue: pid %s (application_name %L, user %L, %s since %s).',
                                        a.pid, a.application_name, a.usename, a.state, a.xact_start)
                               FROM pg_catalog.pg_stat_activity AS a
                              WHERE a.pid <> pg_catalog.pg_backend_pid() AND a.xact_start IS NOT NULL
                                AND a.backend_type = 'client backend'
                                AND (pg_catalog.pg_has_role(sender, a.usesysid, 'MEMBER')
                                     OR pg_catalog.pg_has_role(sender, 'pg_read_all_stats', 'MEMBER'))
                              ORDER BY a.xact_start LIMIT 1),
                            'No other open transaction is visible to you.')
              INTO warning, warning_detail;
            RAISE WARNING '%', warning USING DETAIL = warning_detail,
                HINT = 'A session that ran LISTEN and stays in a transaction keeps every notification queued for all listeners: end its transaction, or pg_terminate_backend() it.';
            RETURN pg_catalog.cardinality(distinct_uids);
        END IF;
    ELSIF durable_setting NOT IN ('off', 'of', 'f', 'fa', 'fal', 'fals', 'false', 'n', 'no', '0') THEN
        RAISE EXCEPTION 'parameter "bytebase_signal.durable" requires a Boolean value'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- The payload around each uid. to_json escapes a project as the extension does.
    IF wire_format = 'seed' THEN
        head := '{"type":"' || kind || '","uid":';
        tail := coalesce(',"project":' || pg_catalog.to_json(project)::text, '')
             || coalesce(',"approvalInputVersion":' || approval_input_version::text, '') || '}';
    ELSE
        -- protojson: upper-case enum names, 64-bit numbers as strings, zero values omitted.
        head := '{"type":"' || pg_catalog.upper(kind) || '","uid":"';
        tail := '"' || CASE WHEN project <> '' THEN ',"project":' || pg_catalog.to_json(project)::text ELSE '' END
             || CASE WHEN approval_input_version <> 0
                     THEN ',"approvalInputVersion":"' || approval_input_version::text || '"' ELSE '' END || '}';
    END IF;
    FOREACH u IN ARRAY distinct_uids LOOP
        PERFORM pg_catalog.pg_notify('bytebase_signal', head || u::text || tail);
    END LOOP;
    RETURN pg_catalog.cardinality(distinct_uids);
END
$function$;

CREATE OR REPLACE FUNCTION bytebase_cancel_task_run(uid bigint) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
AS $function$
BEGIN
    PERFORM _bytebase_signal_send('bytebase_cancel_task_run'::text, 'cancel_task_run'::text, ARRAY[uid], true, false, NULL::text, NULL::bigint);
END
$function$;

CREATE OR REPLACE FUNCTION bytebase_cancel_plan_check_run(uid bigint) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
AS $function$
BEGIN
    PERFORM _bytebase_signal_send('bytebase_cancel_plan_check_run'::text, 'cancel_plan_check_run'::text, ARRAY[uid], true, false, NULL::text, NULL::bigint);
END
$function$;

CREATE OR REPLACE FUNCTION bytebase_cancel_task_runs(uids bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
AS $function$
BEGIN
    RETURN _bytebase_signal_send('bytebase_cancel_task_runs'::text, 'cancel_task_run'::text, uids, false, false, NULL::text, NULL::bigint);
END
$function$;

CREATE OR REPLACE FUNCTION bytebase_cancel_plan_check_runs(uids bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
AS $function$
BEGIN
    RETURN _bytebase_signal_send('bytebase_cancel_plan_check_runs'::text, 'cancel_plan_check_run'::text, uids, false, false, NULL::text, NULL::bigint);
END
$function$;

CREATE OR REPLACE FUNCTION bytebase_cancel_task_run(uid bigint, project text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
AS $function$
BEGIN
    PERFORM _bytebase_signal_send('bytebase_cancel_task_run'::text, 'cancel_task_run'::text, ARRAY[uid], true, true, project, NULL::bigint);
END
$function$;

CREATE OR REPLACE FUNCTION bytebase_cancel_plan_check_run(uid bigint, project text, approval_input_version bigint DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
AS $function$
BEGIN
    PERFORM _bytebase_signal_send('bytebase_cancel_plan_check_run'::text, 'cancel_plan_check_run'::text, ARRAY[uid], true, true,
                                  project, approval_input_version);
END
$function$;

CREATE OR REPLACE FUNCTION bytebase_cancel_task_runs(uids bigint[], project text) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
AS $function$
BEGIN
    RETURN _bytebase_signal_send('bytebase_cancel_task_runs'::text, 'cancel_task_run'::text, uids, false, true, project, NULL::bigint);
END
$function$;

CREATE OR REPLACE FUNCTION bytebase_cancel_plan_check_runs(uids bigint[], project text, approval_input_version bigint DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
AS $function$
BEGIN
    RETURN _bytebase_signal_send('bytebase_cancel_plan_check_runs'::text, 'cancel_plan_check_run'::text, uids, false, true,
                                 project, approval_input_version);
END
$function$;

CREATE OR REPLACE FUNCTION bytebase_signal_prune() RETURNS bigint
LANGUAGE plpgsql STRICT VOLATILE PARALLEL UNSAFE SECURITY DEFINER
AS $function$
BEGIN
    RETURN _bytebase_signal_prune(NULL::bigint);
END
$function$;

-- 0.2.0's replay returned four columns; a result type cannot be replaced, so that one is dropped
-- (keeping its grants, restored below) and created anew.
SELECT p.proacl INTO replay_acl FROM pg_proc p
 WHERE p.oid = pg_catalog.to_regprocedure(pg_catalog.format('%I.bytebase_signal_replay(timestamptz)', pg_catalog.current_schema()))
   AND pg_catalog.cardinality(p.proallargtypes) = 5;
IF FOUND THEN
    DROP FUNCTION bytebase_signal_replay(timestamptz);
END IF;

-- Identical to the extension's (the conformance suite compares the definitions).
CREATE OR REPLACE FUNCTION bytebase_signal_replay(since timestamptz)
RETURNS TABLE (id bigint, type text, uid bigint, created_at timestamptz, project text, approval_input_version bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
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

-- Identical to the extension's (the conformance suite compares the definitions).
CREATE OR REPLACE FUNCTION bytebase_signal_replay_after(after pg_snapshot)
RETURNS TABLE (id bigint, type text, uid bigint, created_at timestamptz, project text, approval_input_version bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
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

-- The API functions resolve names in this schema only (pg_temp last), as the extension's do: a
-- caller's search_path cannot substitute objects into code that runs as the owner. The helpers
-- run only from inside them (EXECUTE is the owner's alone), under that pinned path already.
FOREACH f IN ARRAY ARRAY[
    'bytebase_cancel_task_run(bigint)', 'bytebase_cancel_plan_check_run(bigint)',
    'bytebase_cancel_task_runs(bigint[])', 'bytebase_cancel_plan_check_runs(bigint[])',
    'bytebase_cancel_task_run(bigint, text)', 'bytebase_cancel_plan_check_run(bigint, text, bigint)',
    'bytebase_cancel_task_runs(bigint[], text)', 'bytebase_cancel_plan_check_runs(bigint[], text, bigint)',
    'bytebase_signal_prune()', 'bytebase_signal_replay(timestamptz)', 'bytebase_signal_replay_after(pg_snapshot)'
]::regprocedure[] LOOP
    EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path TO pg_catalog, %I, pg_temp', f, pg_catalog.current_schema());
END LOOP;
-- As the extension's: a replay waiting for a lock on the log gives up after 2 s instead of holding
-- a listener's heartbeat; the exact one is planned for its snapshot every time (the xid index).
ALTER FUNCTION bytebase_signal_replay(timestamptz) SET lock_timeout TO '2s';
ALTER FUNCTION bytebase_signal_replay_after(pg_snapshot) SET lock_timeout TO '2s';
ALTER FUNCTION bytebase_signal_replay_after(pg_snapshot) SET plan_cache_mode TO force_custom_plan;

-- Least privilege, as in the extension: grants are the operator's (README, "Grant"). A function
-- this run created has no ACL yet (PUBLIC may execute it): revoke that. Functions that existed
-- keep whatever the operator granted, PUBLIC included. The helpers are only for the functions
-- above, which run as their owner.
FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
          WHERE p.pronamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = pg_catalog.current_schema())
            AND p.proacl IS NULL
            AND p.proname IN ('bytebase_cancel_task_run', 'bytebase_cancel_plan_check_run',
                              'bytebase_cancel_task_runs', 'bytebase_cancel_plan_check_runs',
                              'bytebase_signal_prune', 'bytebase_signal_replay', 'bytebase_signal_replay_after',
                              '_bytebase_signal_send', '_bytebase_signal_prune',
                              '_bytebase_signal_retention_secs', '_bytebase_signal_wire_format',
                              '_bytebase_signal_notify_queue_limit') LOOP
    EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
END LOOP;
-- The grants the dropped 0.2.0 replay had (a first install has none to restore).
FOR g IN SELECT a.grantee, a.is_grantable FROM pg_catalog.aclexplode(replay_acl) AS a
          WHERE a.privilege_type = 'EXECUTE'
            AND a.grantee <> (SELECT p.proowner FROM pg_catalog.pg_proc p WHERE p.oid = 'bytebase_signal_replay(timestamptz)'::regprocedure) LOOP
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz) TO %s%s',
                   CASE WHEN g.grantee = 0::oid THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                   CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
END LOOP;

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
COMMENT ON FUNCTION _bytebase_signal_send(text, text, bigint[], boolean, boolean, text, bigint) IS
    'bytebase_signal pure-SQL edition 0.4.0: what every bytebase_cancel_* function does. Internal.';
END
$install$;
