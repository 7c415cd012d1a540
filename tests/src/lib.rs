//! Test support for `bytebase_signal`, at the far end of the data flow: real PostgreSQL servers.
//!
//! [`cluster`] starts throwaway clusters from the system PostgreSQL binaries (as the `postgres` OS
//! user when we are root, since PostgreSQL refuses to run as root) and removes them again, even
//! when a test panics. [`listen`] is a deliberately bare LISTEN connection — plain tokio-postgres,
//! none of the client crate's logic — that observes exactly what the server delivers.
//!
//! [`proxy`] is a TCP proxy that can freeze or cut a connection on command, for fault tests, and
//! [`wait`] polls a condition with a deadline (never a bare sleep).
//!
//! The end-to-end tests in `tests/tests/` and the `bytebase-signal-demo` binary build on both.

pub mod cluster;
pub mod listen;
pub mod listening;
pub mod proxy;
pub mod wait;
