//! Sending cancel signals from Rust, inside the caller's transaction.
//!
//! The functions take any [`GenericClient`] — a `Client` or a `Transaction` — so the signal
//! commits (or rolls back) with whatever else the caller does, exactly as the SQL functions do.
//! [`SendMode::Extension`] calls the extension's SQL functions; [`SendMode::Raw`] sends the same
//! bytes with plain `pg_notify`, for a database without the extension.

use std::collections::HashSet;

use tokio_postgres::GenericClient;

use crate::error::Error;
use crate::validate::RunUid;
use crate::wire::{encode_seed, SignalKind, CHANNEL};

/// How signals reach the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SendMode {
    /// Through the `bytebase_signal` extension's functions (validation and bytes in the server).
    #[default]
    Extension,
    /// Through `pg_notify` with payloads encoded here: needs no extension.
    Raw,
}

/// Cancels task run `uid` when the caller's transaction commits.
pub async fn cancel_task_run<C: GenericClient + Sync>(client: &C, uid: RunUid) -> Result<(), Error> {
    cancel(client, SignalKind::TaskRun, &[uid], SendMode::Extension).await.map(drop)
}

/// Cancels plan check run `uid` when the caller's transaction commits.
pub async fn cancel_plan_check_run<C: GenericClient + Sync>(client: &C, uid: RunUid) -> Result<(), Error> {
    cancel(client, SignalKind::PlanCheckRun, &[uid], SendMode::Extension).await.map(drop)
}

/// Cancels task runs at commit; returns how many distinct runs were signalled.
pub async fn cancel_task_runs<C: GenericClient + Sync>(client: &C, uids: &[RunUid]) -> Result<usize, Error> {
    cancel(client, SignalKind::TaskRun, uids, SendMode::Extension).await
}

/// Cancels plan check runs at commit; returns how many distinct runs were signalled.
pub async fn cancel_plan_check_runs<C: GenericClient + Sync>(
    client: &C,
    uids: &[RunUid],
) -> Result<usize, Error> {
    cancel(client, SignalKind::PlanCheckRun, uids, SendMode::Extension).await
}

/// Sends one signal of `kind` per distinct uid, in first-occurrence order, in one round trip;
/// returns how many were sent.
pub async fn cancel<C: GenericClient + Sync>(
    client: &C,
    kind: SignalKind,
    uids: &[RunUid],
    mode: SendMode,
) -> Result<usize, Error> {
    if uids.is_empty() {
        return Ok(0);
    }
    match mode {
        SendMode::Extension => {
            // The SQL function deduplicates and counts; doing it here too would be work twice.
            let ids: Vec<i64> = uids.iter().map(|u| u.get()).collect();
            let sql = format!("SELECT {}($1)", kind.batch_cancel_function());
            let n: i32 = client.query_one(sql.as_str(), &[&ids]).await?.get(0);
            Ok(usize::try_from(n).unwrap_or_default())
        }
        SendMode::Raw => {
            let mut seen = HashSet::with_capacity(uids.len());
            let payloads: Vec<String> =
                uids.iter().filter(|u| seen.insert(**u)).map(|u| encode_seed(kind, *u)).collect();
            // WITH ORDINALITY keeps the order; the notifications are queued in it.
            client
                .execute(
                    "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, i) ORDER BY i",
                    &[&CHANNEL, &payloads],
                )
                .await?;
            Ok(payloads.len())
        }
    }
}
