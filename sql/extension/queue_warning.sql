-- The queue limit's WARNING: its message, detail and hint (extension/src/queue.rs). $1 is the
-- queue usage, $2 the limit, $3 the number of signals, $4 the role the caller acts as: the detail
-- shows only sessions that role may see in pg_stat_activity itself (its own roles' sessions, or
-- all with pg_read_all_stats), not what the function's owner may see. sql/pure/install.sql words
-- it identically (client/tests/sql_sources.rs compares every string here with it).
SELECT pg_catalog.format('bytebase_signal: the notification queue is %s%% full, at or above bytebase_signal.notify_queue_limit (%s%%): %s logged without NOTIFY; listeners read it from the log at their next heartbeat',
           pg_catalog.round(($1 * 100::double precision)::numeric, 1),
           pg_catalog.round(($2 * 100::double precision)::numeric, 1),
           CASE WHEN $3 = 1::bigint THEN 'the signal was' ELSE $3::text || ' signals were' END),
       coalesce((SELECT pg_catalog.format('The oldest open transaction you may see, which may be the listening session holding the queue: pid %s (application_name %L, user %L, %s since %s).',
                            a.pid, a.application_name, a.usename, a.state, a.xact_start)
                   FROM pg_catalog.pg_stat_activity AS a
                  WHERE a.pid <> pg_catalog.pg_backend_pid() AND a.xact_start IS NOT NULL
                    AND a.backend_type = 'client backend'
                    AND (pg_catalog.pg_has_role($4, a.usesysid, 'MEMBER')
                         OR pg_catalog.pg_has_role($4, 'pg_read_all_stats', 'MEMBER'))
                  ORDER BY a.xact_start LIMIT 1),
                'No other open transaction is visible to you.'),
       'A session that ran LISTEN and stays in a transaction keeps every notification queued for all listeners: end its transaction, or pg_terminate_backend() it.'
