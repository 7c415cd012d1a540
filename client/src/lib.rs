//! Client side of `bytebase_signal`: the wire format every part agrees on, and (behind the default
//! `runtime` feature) the listener each replica runs.
//!
//! Data flows one way. A SQL caller runs `SELECT bytebase_cancel_task_run(42)` in the transaction
//! that marks the run canceled; the extension validates the argument with [`validate`], encodes it
//! with [`wire`] and queues a NOTIFY on [`wire::CHANNEL`]; PostgreSQL delivers it at commit to
//! every listening connection; each replica's listener decodes it and cancels the run it owns.
//!
//! The [`wire`] and [`validate`] modules are plain Rust with no async dependencies, so the
//! PostgreSQL extension links them too (`default-features = false`): the payload bytes and the
//! argument rules are defined once, here.
//!
//! [`signal`] decodes what arrives on the channel, leniently (seed or upstream protobuf-JSON). With
//! `runtime`, `connect` reaches the server as libpq would (its settings, files and environment;
//! TLS with every `sslmode`; a password provider for expiring tokens); the `listener` keeps one
//! such connection LISTENing and, after every (re)connect, replays
//! the extension's durable signal log for what it missed, handing each cancel on once; the
//! `registry` maps each signal to the cancel tokens of the runs it names; `send` emits signals from
//! any connection or transaction.
//!
//! ```
//! use bytebase_signal_client::{validate::RunUid, wire::{encode_seed, SignalKind}};
//!
//! let uid = RunUid::new(42).unwrap();
//! assert_eq!(encode_seed(SignalKind::TaskRun, uid), r#"{"type":"cancel_task_run","uid":42}"#);
//! ```
//!
//! With the `serde` feature (default), the public values ([`Signal`], [`SignalKind`], [`RunUid`],
//! and with `runtime` `RunKey`, `Status`, `Event`) implement `Serialize` and `Deserialize`; a
//! signal in the JSON shape of the seed wire format:
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use bytebase_signal_client::{RunUid, Signal, SignalKind};
//!
//! let signal = Signal::new(SignalKind::TaskRun, RunUid::new(42).unwrap());
//! assert_eq!(serde_json::to_string(&signal).unwrap(), r#"{"type":"cancel_task_run","uid":42}"#);
//! # }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "runtime")]
mod accessors;
#[cfg(feature = "runtime")]
mod backoff;
/// Connecting the way libpq does: the crate `bytebase-signal-connect`, re-exported so that
/// `bytebase_signal_client::connect::ConnectOptions` and the other paths keep working.
#[cfg(feature = "runtime")]
pub use bytebase_signal_connect as connect;
#[cfg(feature = "runtime")]
pub mod error;
#[cfg(feature = "runtime")]
mod expiring;
pub mod limits;
#[cfg(feature = "runtime")]
pub mod listener;
#[cfg(feature = "runtime")]
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod registry;
#[cfg(feature = "runtime")]
mod seen;
#[cfg(feature = "runtime")]
pub mod send;
#[cfg(feature = "serde")]
mod serialize;
pub mod signal;
#[cfg(feature = "runtime")]
pub mod status;
#[cfg(test)]
mod test_support;
pub mod validate;
pub mod wire;

#[cfg(feature = "runtime")]
pub use backoff::Backoff;
#[cfg(feature = "runtime")]
pub use error::Error;
#[cfg(feature = "runtime")]
pub use listener::{Listener, ListenerConfig, ListenerHandle, Signals};
#[cfg(feature = "runtime")]
pub use registry::{Registry, RunGuard, RunKey};
pub use signal::Signal;
#[cfg(feature = "runtime")]
pub use status::{Event, Status};
pub use validate::RunUid;
pub use wire::SignalKind;

/// The README's Rust example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// docs/connecting.md's Rust example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../docs/connecting.md")]
pub struct ConnectingDoctests;

/// docs/rust.md's Rust example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../docs/rust.md")]
pub struct RustDocDoctests;
