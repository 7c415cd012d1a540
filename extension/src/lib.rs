//! `bytebase_signal`: the SQL boundary of the cancel-signal pipeline.
//!
//! A SQL caller runs `SELECT bytebase_cancel_task_run(42)` in the transaction that marks the run
//! canceled. The functions here check their arguments (rules in
//! [`bytebase_signal_client::validate`]), encode the payload (bytes in
//! [`bytebase_signal_client::wire`]) and queue a NOTIFY through the backend's own `pg_notify`, so
//! PostgreSQL delivers it to every listening replica when — and only if — the transaction commits.
//! Nothing else happens in the backend: the listener side lives in the client crate.

use bytebase_signal_client::validate::{validate_uid, validate_uids};
use bytebase_signal_client::wire::SignalKind;
use pgrx::prelude::*;

mod error;
mod notify;

::pgrx::pg_module_magic!(name, version);

/// Cancels one task run on whichever replica runs it, at commit.
#[pg_extern(volatile, parallel_unsafe)]
fn bytebase_cancel_task_run(uid: Option<i64>) {
    cancel_one(SignalKind::TaskRun, uid);
}

/// Cancels one plan check run on whichever replica runs it, at commit.
#[pg_extern(volatile, parallel_unsafe)]
fn bytebase_cancel_plan_check_run(uid: Option<i64>) {
    cancel_one(SignalKind::PlanCheckRun, uid);
}

/// Cancels several task runs at commit; returns how many distinct runs were signalled.
#[pg_extern(volatile, parallel_unsafe)]
fn bytebase_cancel_task_runs(uids: Option<Array<'_, i64>>) -> i32 {
    cancel_many(SignalKind::TaskRun, uids)
}

/// Cancels several plan check runs at commit; returns how many distinct runs were signalled.
#[pg_extern(volatile, parallel_unsafe)]
fn bytebase_cancel_plan_check_runs(uids: Option<Array<'_, i64>>) -> i32 {
    cancel_many(SignalKind::PlanCheckRun, uids)
}

fn cancel_one(kind: SignalKind, uid: Option<i64>) {
    let uid = validate_uid(kind.cancel_function(), "uid", uid).unwrap_or_else(|e| error::raise(&e));
    notify::send(kind, uid);
}

fn cancel_many(kind: SignalKind, uids: Option<Array<'_, i64>>) -> i32 {
    // Validate the whole batch first: a bad element must not leave earlier ones queued in a
    // caller's savepoint-protected transaction.
    let uids = validate_uids(kind.batch_cancel_function(), "uids", uids.as_ref().map(|a| a.iter()))
        .unwrap_or_else(|e| error::raise(&e));
    for &uid in &uids {
        notify::send(kind, uid);
    }
    // An array cannot hold more than MaxAllocSize / 8 elements, far below i32::MAX.
    i32::try_from(uids.len()).expect("array length fits in an integer")
}

extension_sql!(
    r#"
COMMENT ON FUNCTION bytebase_cancel_task_run(bigint) IS
    'Sends {"type":"cancel_task_run","uid":<uid>} on channel bytebase_signal when the transaction commits. uid must be positive.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_run(bigint) IS
    'Sends {"type":"cancel_plan_check_run","uid":<uid>} on channel bytebase_signal when the transaction commits. uid must be positive.';
COMMENT ON FUNCTION bytebase_cancel_task_runs(bigint[]) IS
    'Sends one cancel_task_run signal per distinct uid on channel bytebase_signal when the transaction commits; returns their number. Every element must be positive.';
COMMENT ON FUNCTION bytebase_cancel_plan_check_runs(bigint[]) IS
    'Sends one cancel_plan_check_run signal per distinct uid on channel bytebase_signal when the transaction commits; returns their number. Every element must be positive.';
"#,
    name = "function_comments",
    finalize,
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use bytebase_signal_client::wire::SignalKind;
    use pgrx::prelude::*;

    /// Runs `sql` inside a PL/pgSQL exception block (a subtransaction, so the test's transaction
    /// stays usable) and returns the SQLSTATE and message it raised, or `None` if it succeeded.
    fn error_of(sql: &str) -> Option<(String, String)> {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.error_of(stmt text, OUT code text, OUT message text)
             LANGUAGE plpgsql AS $$
             BEGIN
                 EXECUTE stmt;
             EXCEPTION WHEN OTHERS THEN
                 code := SQLSTATE;
                 message := SQLERRM;
             END $$",
        )
        .expect("helper function is created");
        let (code, message) = Spi::get_two_with_args::<String, String>(
            "SELECT code, message FROM pg_temp.error_of($1)",
            &[sql.into()],
        )
        .expect("helper function runs");
        code.map(|code| (code, message.unwrap_or_default()))
    }

    fn assert_error(sql: &str, sqlstate: &str, message_part: &str) {
        match error_of(sql) {
            Some((code, message)) => {
                assert_eq!(code, sqlstate, "{sql}: {message}");
                assert!(message.contains(message_part), "{sql}: {message:?} lacks {message_part:?}");
            }
            None => panic!("{sql}: succeeded, expected SQLSTATE {sqlstate}"),
        }
    }

    #[pg_test]
    fn single_forms_reject_null_with_22004() {
        for kind in SignalKind::ALL {
            let f = kind.cancel_function();
            assert_error(&format!("SELECT {f}(NULL)"), "22004", &format!("{f}(uid): uid must not be NULL"));
        }
    }

    #[pg_test]
    fn single_forms_reject_non_positive_uids_with_22023() {
        for kind in SignalKind::ALL {
            let f = kind.cancel_function();
            for bad in ["0", "-1", "-9223372036854775808"] {
                assert_error(
                    &format!("SELECT {f}({bad})"),
                    "22023",
                    &format!("{f}(uid): uid must be a positive run id, got {bad}"),
                );
            }
        }
    }

    #[pg_test]
    fn single_forms_accept_positive_uids() {
        for kind in SignalKind::ALL {
            let f = kind.cancel_function();
            for good in ["1", "42", "9223372036854775807"] {
                assert_eq!(error_of(&format!("SELECT {f}({good})")), None, "{f}({good})");
            }
        }
    }

    #[pg_test]
    fn batch_forms_reject_a_null_array_with_22004() {
        for kind in SignalKind::ALL {
            let f = kind.batch_cancel_function();
            assert_error(&format!("SELECT {f}(NULL)"), "22004", &format!("{f}(uids): uids must not be NULL"));
        }
    }

    #[pg_test]
    fn batch_forms_reject_null_elements_with_22004() {
        for kind in SignalKind::ALL {
            let f = kind.batch_cancel_function();
            assert_error(&format!("SELECT {f}('{{NULL}}')"), "22004", "uids[1] must not be NULL");
            assert_error(&format!("SELECT {f}('{{1,NULL,3}}')"), "22004", "uids[2] must not be NULL");
        }
    }

    #[pg_test]
    fn batch_forms_reject_non_positive_elements_with_22023() {
        for kind in SignalKind::ALL {
            let f = kind.batch_cancel_function();
            assert_error(
                &format!("SELECT {f}('{{0}}')"),
                "22023",
                "uids[1] must be a positive run id, got 0",
            );
            assert_error(
                &format!("SELECT {f}('{{9223372036854775807,-9223372036854775808}}')"),
                "22023",
                "uids[2] must be a positive run id, got -9223372036854775808",
            );
        }
    }

    #[pg_test]
    fn batch_forms_report_the_first_bad_element_of_a_mixed_array() {
        for kind in SignalKind::ALL {
            let f = kind.batch_cancel_function();
            assert_error(&format!("SELECT {f}('{{5,NULL,-1}}')"), "22004", "uids[2] must not be NULL");
            assert_error(
                &format!("SELECT {f}('{{5,-1,NULL}}')"),
                "22023",
                "uids[2] must be a positive run id, got -1",
            );
        }
    }

    #[pg_test]
    fn batch_forms_count_distinct_uids() {
        for kind in SignalKind::ALL {
            let f = kind.batch_cancel_function();
            for (array, expected) in
                [("{}", 0), ("{7}", 1), ("{3,1,3,2,1}", 3), ("{9223372036854775807,1}", 2)]
            {
                let got =
                    Spi::get_one::<i32>(&format!("SELECT {f}('{array}')")).expect("batch call succeeds");
                assert_eq!(got, Some(expected), "{f}('{array}')");
            }
        }
    }

    #[pg_test]
    fn functions_are_volatile_parallel_unsafe_non_strict_and_commented() {
        for kind in SignalKind::ALL {
            for (f, arg) in [(kind.cancel_function(), "bigint"), (kind.batch_cancel_function(), "bigint[]")] {
                let sig = format!("{f}({arg})");
                let row = Spi::get_three_with_args::<String, String, bool>(
                    "SELECT provolatile::text, proparallel::text, proisstrict FROM pg_proc WHERE oid = $1::regprocedure",
                    &[sig.as_str().into()],
                )
                .expect("function exists");
                // Non-strict, so that a NULL argument reaches our check instead of returning NULL.
                assert_eq!(row, (Some("v".into()), Some("u".into()), Some(false)), "{sig}");
                let comment = Spi::get_one_with_args::<String>(
                    "SELECT obj_description($1::regprocedure, 'pg_proc')",
                    &[sig.as_str().into()],
                )
                .expect("comment query runs");
                assert!(comment.is_some_and(|c| c.contains("bytebase_signal")), "{sig} has no comment");
            }
        }
    }

    #[pg_test]
    fn functions_belong_to_the_extension_and_its_schema() {
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc p
               JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
               JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'bytebase_signal'
              WHERE p.proname LIKE 'bytebase_cancel_%' AND p.pronamespace = e.extnamespace",
        )
        .expect("catalog query runs");
        assert_eq!(n, Some(4));
    }
}

/// This module is required by `cargo pgrx test` invocations.
/// It must be visible at the root of your extension crate.
#[cfg(test)]
pub mod pg_test {
    /// One-off initialisation when the pg_test framework starts.
    pub fn setup(_options: Vec<&str>) {}

    /// postgresql.conf settings the tests need.
    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
