//! The signal log: one row per sent signal, written in the sender's transaction.
//!
//! NOTIFY alone is lost by a listener that is not connected at the moment of commit. The log is
//! what a listener replays after it (re)connects (`bytebase_signal_replay`). Rows commit or vanish
//! together with the NOTIFY because both happen in the caller's transaction.
//!
//! The table stays bounded without a scheduler: the send that logs a row whose id is a multiple
//! of [`PRUNE_EVERY`] also deletes up to [`PRUNE_LIMIT`] expired rows — twice as many as were
//! logged since the last such send, so pruning outpaces logging — skipping rows another session
//! is deleting, so concurrent senders never wait for each other here. The other sends pay
//! nothing for it, and neither do sends in REPEATABLE READ or SERIALIZABLE transactions (see
//! [`uses_transaction_snapshot`]). `bytebase_signal_prune()` deletes all expired rows at once.
//!
//! Both statements are prepared once per backend and kept: planning them on every call would cost
//! more than executing them. They run inside the SECURITY DEFINER functions, whose pinned
//! `search_path` (`pg_catalog, <extension schema>, pg_temp`) resolves the table name. Every
//! built-in they call is `pg_catalog.`-qualified, and every operator has operands of exactly the
//! types of a `pg_catalog` operator: otherwise a role that may create objects in the extension's
//! schema could define a better-matching overload there (say `unnest(bigint[])`) and have it run
//! as the extension's owner.

use std::cell::OnceCell;
use std::thread::LocalKey;

use bytebase_signal_client::limits::{PRUNE_EVERY, PRUNE_LIMIT};
use bytebase_signal_client::validate::RunUid;
use bytebase_signal_client::wire::SignalKind;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use pgrx::{PgBuiltInOids, PgOid};

use crate::{settings, Context};

/// Logs the rows; returns whether this send is the one that prunes.
const INSERT: &str = include_str!("../sql/extension/log_insert.sql");

/// [`INSERT`] with the project and approval input version of the project-scoped forms.
const INSERT_SCOPED: &str = include_str!("../sql/extension/log_insert_scoped.sql");

/// Deletes expired rows, at most a given number (the file says why it is written so).
const PRUNE: &str = include_str!("../sql/extension/log_prune.sql");

thread_local! {
    static INSERT_PLAN: OnceCell<OwnedPreparedStatement> = const { OnceCell::new() };
    static INSERT_SCOPED_PLAN: OnceCell<OwnedPreparedStatement> = const { OnceCell::new() };
    static PRUNE_PLAN: OnceCell<OwnedPreparedStatement> = const { OnceCell::new() };
}

/// Logs one row per uid for `kind` (with the project and version of `context`, if any), then
/// prunes a few expired rows.
pub(crate) fn record(kind: SignalKind, uids: &[RunUid], context: Context<'_>) {
    if uids.is_empty() {
        return;
    }
    let uids: Vec<i64> = uids.iter().map(|u| u.get()).collect();
    // The role the caller acts as: inside this SECURITY DEFINER function `current_user` is the
    // extension's owner; the "outer" user is the role the session runs as (after SET ROLE).
    // SAFETY: reads a backend global, always set inside a transaction.
    let sender = unsafe { pg_sys::GetOuterUserId() };
    let mut types = vec![
        PgBuiltInOids::TEXTOID,
        PgBuiltInOids::INT8ARRAYOID,
        PgBuiltInOids::OIDOID,
        PgBuiltInOids::INT8OID,
    ];
    let mut args: Vec<DatumWithOid<'_>> =
        vec![kind.seed_type().into(), uids.into(), sender.into(), PRUNE_EVERY.into()];
    let (plan, sql) = if context.project.is_none() && context.approval_input_version.is_none() {
        (&INSERT_PLAN, INSERT)
    } else {
        types.extend([PgBuiltInOids::TEXTOID, PgBuiltInOids::INT8OID]);
        args.extend([context.project.into(), context.approval_input_version.into()]);
        (&INSERT_SCOPED_PLAN, INSERT_SCOPED)
    };
    Spi::connect_mut(|client| {
        let prunes = execute(client, plan, sql, &types, &args, |rows| rows.first().get_one::<bool>());
        if prunes == Some(true) && !uses_transaction_snapshot() {
            prune_with(client, Some(PRUNE_LIMIT));
        }
    });
}

/// Whether the caller's transaction is REPEATABLE READ or SERIALIZABLE. Its snapshot may still
/// show rows another session has pruned since; locking them to delete them would fail the
/// caller's transaction with a serialization error (40001). Such sends leave pruning to the next
/// READ COMMITTED one (the default isolation, and what Bytebase uses).
fn uses_transaction_snapshot() -> bool {
    // SAFETY: reads a backend global, set for the current transaction.
    let level = unsafe { pg_sys::XactIsoLevel };
    level >= pg_sys::XACT_REPEATABLE_READ as i32
}

/// Deletes every row older than `bytebase_signal.retention`; returns how many.
pub(crate) fn prune_all() -> i64 {
    Spi::connect_mut(|client| prune_with(client, None))
}

fn prune_with(client: &mut SpiClient<'_>, limit: Option<i64>) -> i64 {
    let deleted = execute(
        client,
        &PRUNE_PLAN,
        PRUNE,
        &[PgBuiltInOids::FLOAT8OID, PgBuiltInOids::INT8OID],
        &[settings::retention_secs().into(), limit.into()],
        |rows| Ok(rows.len()),
    );
    i64::try_from(deleted).unwrap_or(i64::MAX)
}

/// Executes the statement kept in `cell` (preparing and keeping it on first use) and reads its
/// result with `read`. A failure is raised as an ERROR, aborting the caller's transaction like
/// any failed statement.
fn execute<T>(
    client: &mut SpiClient<'_>,
    cell: &'static LocalKey<OnceCell<OwnedPreparedStatement>>,
    sql: &str,
    types: &[PgBuiltInOids],
    args: &[DatumWithOid<'_>],
    read: impl FnOnce(SpiTupleTable<'_>) -> SpiResult<T>,
) -> T {
    cell.with(|kept| {
        let statement = kept.get_or_init(|| {
            let types: Vec<PgOid> = types.iter().map(|&t| PgOid::BuiltIn(t)).collect();
            client
                .prepare_mut(sql, &types)
                .unwrap_or_else(|e| error!("bytebase_signal: preparing {:?} failed: {e}", shown(sql)))
                .keep()
        });
        let rows = client
            .update(statement, None, args)
            .unwrap_or_else(|e| error!("bytebase_signal: {:?} failed: {e}", shown(sql)));
        read(rows)
            .unwrap_or_else(|e| error!("bytebase_signal: reading the result of {:?} failed: {e}", shown(sql)))
    })
}

/// A statement from `sql/extension/` without its comment header, for error messages.
fn shown(sql: &str) -> &str {
    let mut rest = sql;
    while rest.starts_with("--") {
        rest = rest.split_once('\n').map_or("", |(_, after)| after);
    }
    rest.trim()
}
