-- log_insert.sql for the project-scoped forms: $5 the project, $6 the approval input version.
WITH logged AS (
    INSERT INTO bytebase_signal_log (type, uid, sent_by, project, approval_input_version)
    SELECT $1, u, pg_catalog.pg_get_userbyid($3), $5, $6 FROM pg_catalog.unnest($2::bigint[]) AS u
    RETURNING id)
SELECT coalesce(pg_catalog.bool_or(id % $4 = 0), false) FROM logged
