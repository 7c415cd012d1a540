-- Deletes up to $2 rows older than $1 seconds (extension/src/log.rs). Its cost does not depend on
-- the table's size, whatever plan is cached: the cutoff is stable within the statement (`now()`,
-- not `clock_timestamp()`), so it is an index condition on `created_at`; and the rows are deleted
-- by primary key (`= ANY (ARRAY(...))`), not joined against the whole table. `LIMIT NULL` means
-- no limit, for bytebase_signal_prune(). Rows another session is deleting are skipped.
DELETE FROM bytebase_signal_log WHERE id = ANY (ARRAY(
    SELECT id FROM bytebase_signal_log
     WHERE created_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1)
     ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED))
