-- Whether this database's extension has the exact replay (0.4.0 and later): only then do the
-- listeners read the log at every heartbeat (extension/src/queue.rs).
SELECT EXISTS (SELECT FROM pg_catalog.pg_proc AS p
                 JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                  AND d.objid = p.oid AND d.deptype = 'e'
                 JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid AND e.extname = 'bytebase_signal'
                WHERE p.proname = 'bytebase_signal_replay_after')
