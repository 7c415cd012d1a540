//! The payload contract on the `bytebase_signal` channel (DESIGN §3).
//!
//! Senders emit the *seed* encoding, byte-exact with the Go plan's
//! `json.Marshal(&Signal{Type, UID})`: `{"type":"cancel_task_run","uid":42}` — no spaces, `type`
//! first, `uid` a JSON number. Listeners written against the Go plan compare these bytes, so the
//! encoder here is hand-written rather than left to a JSON library's formatting choices.

use std::fmt::Write as _;

use crate::validate::RunUid;

/// The NOTIFY channel every signal is sent on and every replica listens to.
pub const CHANNEL: &str = "bytebase_signal";

/// The longest payload PostgreSQL accepts on a NOTIFY (it rejects 8000 bytes and more). Ours are
/// far shorter; the constant documents the limit for anyone adding fields.
pub const MAX_PAYLOAD_LEN: usize = 7999;

/// What a signal asks the owning replica to cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalKind {
    /// A task run (a row of `task_run`).
    TaskRun,
    /// A plan check run (a row of `plan_check_run`).
    PlanCheckRun,
}

impl SignalKind {
    /// Every kind, in a fixed order (useful for tests and tables).
    pub const ALL: [SignalKind; 2] = [SignalKind::TaskRun, SignalKind::PlanCheckRun];

    /// The `type` field of the seed encoding: `cancel_task_run` or `cancel_plan_check_run`.
    pub const fn seed_type(self) -> &'static str {
        match self {
            SignalKind::TaskRun => "cancel_task_run",
            SignalKind::PlanCheckRun => "cancel_plan_check_run",
        }
    }

    /// The SQL function that cancels one run of this kind.
    pub const fn cancel_function(self) -> &'static str {
        match self {
            SignalKind::TaskRun => "bytebase_cancel_task_run",
            SignalKind::PlanCheckRun => "bytebase_cancel_plan_check_run",
        }
    }

    /// The SQL function that cancels a batch of runs of this kind.
    pub const fn batch_cancel_function(self) -> &'static str {
        match self {
            SignalKind::TaskRun => "bytebase_cancel_task_runs",
            SignalKind::PlanCheckRun => "bytebase_cancel_plan_check_runs",
        }
    }
}

/// Encodes a signal in the seed format, e.g. `{"type":"cancel_task_run","uid":42}`.
pub fn encode_seed(kind: SignalKind, uid: RunUid) -> String {
    // `"type":"cancel_plan_check_run"` plus the widest i64 stays below 64 bytes.
    let mut payload = String::with_capacity(64);
    payload.push_str(r#"{"type":""#);
    payload.push_str(kind.seed_type());
    payload.push_str(r#"","uid":"#);
    // Formatting into the buffer itself: no temporary string on the send path.
    let _ = write!(payload, "{}}}", uid.get());
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::uid;

    #[test]
    fn seed_encoding_is_byte_exact() {
        assert_eq!(encode_seed(SignalKind::TaskRun, uid(42)), r#"{"type":"cancel_task_run","uid":42}"#);
        assert_eq!(
            encode_seed(SignalKind::PlanCheckRun, uid(7)),
            r#"{"type":"cancel_plan_check_run","uid":7}"#
        );
    }

    #[test]
    fn seed_encoding_covers_the_uid_range() {
        assert_eq!(encode_seed(SignalKind::TaskRun, uid(1)), r#"{"type":"cancel_task_run","uid":1}"#);
        let widest = encode_seed(SignalKind::PlanCheckRun, uid(i64::MAX));
        assert_eq!(widest, r#"{"type":"cancel_plan_check_run","uid":9223372036854775807}"#);
        assert!(widest.len() <= 64, "capacity hint too small: {}", widest.len());
        assert!(widest.len() <= MAX_PAYLOAD_LEN);
    }

    #[test]
    fn function_names_follow_the_kind() {
        for kind in SignalKind::ALL {
            let single = kind.cancel_function();
            assert_eq!(kind.batch_cancel_function(), format!("{single}s"));
            assert!(single.ends_with(kind.seed_type().trim_start_matches("cancel")));
        }
    }
}
