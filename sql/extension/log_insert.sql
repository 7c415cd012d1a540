-- The send functions' log write (extension/src/log.rs): one row per uid, then whether one of the
-- new ids is a multiple of $4 (that send prunes). $1 type, $2 uids, $3 the role acted as. It names
-- only 0.2.0's columns: a database still at 0.2.0 runs it too, with this library.
WITH logged AS (
    INSERT INTO bytebase_signal_log (type, uid, sent_by)
    SELECT $1, u, pg_catalog.pg_get_userbyid($3) FROM pg_catalog.unnest($2::bigint[]) AS u
    RETURNING id)
SELECT coalesce(pg_catalog.bool_or(id % $4 = 0), false) FROM logged
