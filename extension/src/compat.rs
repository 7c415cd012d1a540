//! The 0.1.0 entry points, kept so that a database still at 0.1.0 keeps working, unchanged, with
//! this library.
//!
//! Installing a new library replaces the `.so` for every database at once, but each database's
//! SQL objects stay at their version until `ALTER EXTENSION bytebase_signal UPDATE`. 0.1.0's
//! `CREATE FUNCTION`s name these C symbols; if they logged, they would fail there ("relation
//! bytebase_signal_log does not exist"), since the table arrives with the update. So they do
//! exactly what 0.1.0 did, NOTIFY only, and the upgrade script repoints the functions at 0.2.0's
//! symbols. Not part of 0.2.0's SQL (`sql = false`); remove only with upgrades from 0.1.0.

use bytebase_signal_client::wire::SignalKind;
use pgrx::prelude::*;

use crate::{cancel_many_as, cancel_one_as};

/// 0.1.0's `bytebase_cancel_task_run(bigint)`.
#[pg_extern(sql = false)]
fn bytebase_cancel_task_run(uid: Option<i64>) {
    cancel_one_as(SignalKind::TaskRun, uid, None, false);
}

/// 0.1.0's `bytebase_cancel_plan_check_run(bigint)`.
#[pg_extern(sql = false)]
fn bytebase_cancel_plan_check_run(uid: Option<i64>) {
    cancel_one_as(SignalKind::PlanCheckRun, uid, None, false);
}

/// 0.1.0's `bytebase_cancel_task_runs(bigint[])`.
#[pg_extern(sql = false)]
fn bytebase_cancel_task_runs(uids: Option<Array<'_, i64>>) -> i32 {
    cancel_many_as(SignalKind::TaskRun, uids, None, false)
}

/// 0.1.0's `bytebase_cancel_plan_check_runs(bigint[])`.
#[pg_extern(sql = false)]
fn bytebase_cancel_plan_check_runs(uids: Option<Array<'_, i64>>) -> i32 {
    cancel_many_as(SignalKind::PlanCheckRun, uids, None, false)
}
