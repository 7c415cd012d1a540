//! Test support for `bytebase_signal`, at the far end of the data flow: real PostgreSQL servers.
//!
//! [`cluster`] starts throwaway clusters from the system PostgreSQL binaries (as the `postgres` OS
//! user when we are root, since PostgreSQL refuses to run as root) and removes them again, even
//! when a test panics. [`raw_listener`] is a deliberately bare LISTEN connection — plain
//! tokio-postgres, none of the client crate's logic — that observes exactly what the server
//! delivers; [`client_listener`] drives the client crate's own `Listener` with quick settings.
//!
//! [`proxy`] is a TCP proxy that can freeze or cut a connection on command, for fault tests, and
//! [`wait`] polls a condition with a deadline (never a bare sleep).
//!
//! For TLS: [`pki`] makes certificates at test time, [`tls_cluster`] starts servers that present
//! them behind typed `pg_hba.conf` files, [`libpq`] runs the reference client (psql) against them,
//! and [`installs`] says where other PostgreSQL versions are.
//!
//! The end-to-end tests in `tests/tests/` and the `bytebase-signal-demo` binary build on both.

pub mod client_listener;
pub mod cluster;
pub mod docs_pki;
pub mod installs;
pub mod libpq;
pub mod ours;
pub mod pgbouncer;
pub mod pki;
pub mod proxy;
pub mod raw_listener;
pub mod tls_cluster;
pub mod tls_server;
pub mod wait;

/// Turns each named `async fn(Install) -> anyhow::Result<()>` into one test per listed install,
/// in a module per install: `on_installs!([fresh: Fresh, pure_sql: PureSql]; some_test)` gives
/// `fresh::some_test` and `pure_sql::some_test`.
#[macro_export]
macro_rules! on_installs {
    ([$($module:ident: $install:ident),+ $(,)?]; $($test:ident),* $(,)?) => {
        $crate::on_installs!(@modules [$($module $install)+] [$($test)*]);
    };
    (@modules [$module:ident $install:ident $($rest:tt)*] $tests:tt) => {
        $crate::on_installs!(@module $module $install $tests);
        $crate::on_installs!(@modules [$($rest)*] $tests);
    };
    (@modules [] $tests:tt) => {};
    (@module $module:ident $install:ident [$($test:ident)*]) => {
        mod $module {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $test() -> anyhow::Result<()> {
                super::$test($crate::cluster::Install::$install).await
            })*
        }
    };
}
