-- Part of the move scripts (sql/pure/move-*.sql): gives the new edition the old one's logged
-- signals (with their ids, so listeners see the same rows) and EXECUTE grants.
INSERT INTO bytebase_signal_log (id, type, uid, created_at, sent_by, project, approval_input_version, xid) OVERRIDING SYSTEM VALUE
    SELECT id, type, uid, created_at, sent_by, project, approval_input_version, xid FROM bytebase_signal_moving_rows ORDER BY id;
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('bytebase_signal_log', 'id'), pg_catalog.max(id))
  FROM bytebase_signal_log HAVING max(id) IS NOT NULL \g /dev/null
DO $restore$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT * FROM pg_temp.bytebase_signal_moving_grants LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s', g.function,
                       CASE WHEN g.grantee = 0::oid THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$restore$;
