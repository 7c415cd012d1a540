//! Queues a signal through the backend's own NOTIFY machinery.
//!
//! `pg_notify` is what `NOTIFY` runs: the notification joins the transaction's pending list, is
//! dropped on (savepoint) rollback, deduplicated against identical ones, and reaches listeners at
//! commit. It also refuses to run in a parallel worker or on a standby, which is why the SQL
//! functions are `PARALLEL UNSAFE`.

use bytebase_signal_client::validate::RunUid;
use bytebase_signal_client::wire::{encode, SignalKind, WireFormat, CHANNEL};
use pgrx::prelude::*;
use pgrx::{direct_function_call, IntoDatum};

use crate::Context;

/// Queues one signal for commit, spelled in `format`.
pub(crate) fn send(format: WireFormat, kind: SignalKind, uid: RunUid, context: Context<'_>) {
    let payload = encode(format, kind, uid, context.project, context.approval_input_version);
    // SAFETY: pg_notify is a strict-by-hand builtin taking (text, text) and returning void; both
    // arguments are valid, non-NULL text datums allocated in the current memory context.
    unsafe {
        direct_function_call::<()>(pg_sys::pg_notify, &[CHANNEL.into_datum(), payload.as_str().into_datum()]);
    }
}
