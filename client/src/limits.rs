//! The numbers both editions enforce, defined once: the extension uses these constants, and the
//! pure-SQL edition restates them as literals that `client/tests/sql_sources.rs` checks against
//! them (see `sql/README.md`).
//!
//! The argument rules' own bound, [`MAX_PROJECT_LEN`](crate::validate::MAX_PROJECT_LEN), lives
//! with the rules in [`crate::validate`].

/// One send in this many logged rows prunes: the one that logs a row whose id is a multiple of it.
pub const PRUNE_EVERY: i64 = 64;

/// Expired rows such a send deletes at most: twice [`PRUNE_EVERY`], so that pruning outpaces
/// logging, and few enough that a send after a long quiet period stays cheap.
pub const PRUNE_LIMIT: i64 = 2 * PRUNE_EVERY;

/// `bytebase_signal.retention`'s default, in seconds: an hour.
pub const DEFAULT_RETENTION_SECS: i32 = 3600;

/// `bytebase_signal.retention`'s smallest value, in seconds.
pub const MIN_RETENTION_SECS: i32 = 1;

/// `bytebase_signal.retention`'s largest value, in seconds: thirty days; a longer log is an
/// archive, not a replay buffer.
pub const MAX_RETENTION_SECS: i32 = 30 * 24 * 3600;

/// `bytebase_signal.notify_queue_limit`'s default: where PostgreSQL starts warning about the
/// notification queue itself.
pub const DEFAULT_NOTIFY_QUEUE_LIMIT: f64 = 0.5;
