//! Sending cancel signals from Rust, inside the caller's transaction.
//!
//! The functions take any [`GenericClient`] — a `Client` or a `Transaction` — so the signal
//! commits (or rolls back) with whatever else the caller does, exactly as the SQL functions do.
//! [`SendMode::Extension`] calls the extension's SQL functions (either edition); [`SendMode::Raw`]
//! sends the same bytes with plain `pg_notify`, for a database without them.
//!
//! [`Cancel`] adds what upstream Bytebase scopes run ids with, a project and (for plan checks) an
//! approval input version, and, in raw mode, the [`WireFormat`].

use std::collections::HashSet;

use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

use crate::error::Error;
use crate::validate::{validate_approval_input_version, validate_project, RunUid};
use crate::wire::{encode, SignalKind, WireFormat, CHANNEL};

/// How signals reach the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
/// returns how many were sent. [`Cancel`] with neither project nor version.
pub async fn cancel<C: GenericClient + Sync>(
    client: &C,
    kind: SignalKind,
    uids: &[RunUid],
    mode: SendMode,
) -> Result<usize, Error> {
    Cancel::new(kind, uids).mode(mode).send(client).await
}

/// One send: runs of one kind, optionally scoped to a project and an approval input version.
///
/// ```no_run
/// # async fn example(client: &tokio_postgres::Client) -> Result<(), bytebase_signal_client::Error> {
/// use bytebase_signal_client::send::Cancel;
/// use bytebase_signal_client::{RunUid, SignalKind};
///
/// let uids = [RunUid::new(7).unwrap()];
/// Cancel::new(SignalKind::PlanCheckRun, &uids)
///     .in_project("proj-a")
///     .with_approval_input_version(2)
///     .send(client)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Cancel<'a> {
    kind: SignalKind,
    uids: &'a [RunUid],
    project: Option<&'a str>,
    approval_input_version: Option<i64>,
    mode: SendMode,
    format: WireFormat,
}

impl<'a> Cancel<'a> {
    /// Cancels runs `uids` of `kind`, through the extension's functions.
    pub fn new(kind: SignalKind, uids: &'a [RunUid]) -> Self {
        Cancel {
            kind,
            uids,
            project: None,
            approval_input_version: None,
            mode: SendMode::Extension,
            format: WireFormat::Seed,
        }
    }

    /// Names the project the runs belong to (the SQL functions' `project` argument).
    pub fn in_project(mut self, project: &'a str) -> Self {
        self.project = Some(project);
        self
    }

    /// Names the approval input version (plan check runs, with a project).
    pub fn with_approval_input_version(mut self, version: i64) -> Self {
        self.approval_input_version = Some(version);
        self
    }

    /// How the signals reach the server.
    pub fn mode(mut self, mode: SendMode) -> Self {
        self.mode = mode;
        self
    }

    /// How [`SendMode::Raw`] spells the payloads. Through the extension, the session's
    /// `bytebase_signal.wire_format` decides (set it per role or database).
    pub fn format(mut self, format: WireFormat) -> Self {
        self.format = format;
        self
    }

    /// Sends one signal per distinct uid, in first-occurrence order, in one round trip, in the
    /// caller's transaction; returns how many were sent.
    ///
    /// A version without a project, or on task runs, is refused: no SQL function takes it.
    pub async fn send<C: GenericClient + Sync>(&self, client: &C) -> Result<usize, Error> {
        let function = self.kind.batch_cancel_function();
        if self.approval_input_version.is_some()
            && (self.project.is_none() || self.kind == SignalKind::TaskRun)
        {
            return Err(Error::Unsupported("an approval input version needs a project and plan check runs"));
        }
        let project = self.project.map(|p| validate_project(function, "project", Some(p))).transpose()?;
        let version =
            validate_approval_input_version(function, "approval_input_version", self.approval_input_version)?;
        if self.uids.is_empty() {
            return Ok(0);
        }
        match self.mode {
            SendMode::Extension => {
                // The SQL function deduplicates and counts; doing it here too would be work twice.
                let ids: Vec<i64> = self.uids.iter().map(|u| u.get()).collect();
                let (sql, args): (String, Vec<&(dyn ToSql + Sync)>) =
                    match (project.as_ref(), version.as_ref()) {
                        (None, _) => (format!("SELECT {function}($1)"), vec![&ids]),
                        (Some(p), None) => (format!("SELECT {function}($1, $2)"), vec![&ids, p]),
                        (Some(p), Some(v)) => (format!("SELECT {function}($1, $2, $3)"), vec![&ids, p, v]),
                    };
                let n: i32 = client.query_one(sql.as_str(), &args).await?.get(0);
                Ok(usize::try_from(n).unwrap_or_default())
            }
            SendMode::Raw => {
                let mut seen = HashSet::with_capacity(self.uids.len());
                let payloads: Vec<String> = self
                    .uids
                    .iter()
                    .filter(|u| seen.insert(**u))
                    .map(|u| encode(self.format, self.kind, *u, project, version))
                    .collect();
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
}
