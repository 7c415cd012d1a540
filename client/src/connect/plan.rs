//! libpq's order of attempts, as decisions without I/O: which hosts and addresses, and for each
//! address which TLS steps `sslmode` allows after what the previous step ran into.
//!
//! | sslmode | first step | after a failure |
//! |---|---|---|
//! | `disable` | plaintext | — |
//! | `allow` | plaintext | TLS, if the server refused the plaintext session with an error |
//! | `prefer` | TLS if the server offers it | plaintext, if a TLS handshake was started (it failed, or the server refused the TLS session) |
//! | `require`, `verify-ca`, `verify-full` | TLS, required | — |
//!
//! A Unix-domain socket is always plaintext: PostgreSQL never speaks TLS there, and libpq ignores
//! `sslmode` for it. `target_session_attrs=prefer-standby` is two passes over every host: the first
//! accepts only a standby, the second any server.

use super::settings::{SslMode, TargetSessionAttrs};

/// How one attempt negotiates TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// No TLS.
    Plain,
    /// TLS if the server accepts the SSLRequest, else plaintext on the same connection.
    TlsIfOffered,
    /// TLS or fail.
    TlsRequired,
}

impl Step {
    /// Whether this step may use TLS at all.
    pub(crate) fn may_use_tls(self) -> bool {
        self != Step::Plain
    }
}

/// What happened to a failed attempt, as far as the next step cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// A TLS handshake had started (the server said yes to the SSLRequest, or direct TLS).
    pub(crate) tls_started: bool,
    /// The server answered with an error (FATAL) during startup or authentication.
    pub(crate) refused_by_server: bool,
    /// TLS could not even be set up from the settings (files missing, unreadable, unsafe).
    pub(crate) tls_setup_failed: bool,
}

/// The first step on an address. `tls_ready` is false when TLS could not be set up from the
/// settings: `prefer` then goes straight to plaintext (libpq would fail its TLS step the same way
/// and fall back), while the modes that need TLS still take a TLS step, which fails with the setup
/// error.
pub(crate) fn first_step(mode: SslMode, unix_socket: bool, tls_ready: bool) -> Step {
    if unix_socket {
        return Step::Plain;
    }
    match mode {
        SslMode::Disable | SslMode::Allow => Step::Plain,
        SslMode::Prefer if tls_ready => Step::TlsIfOffered,
        SslMode::Prefer => Step::Plain,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Step::TlsRequired,
    }
}

/// The step after `step` failed with `failure`, if `mode` allows another one on this address.
pub(crate) fn next_step(mode: SslMode, step: Step, failure: Failure) -> Option<Step> {
    match (mode, step) {
        (SslMode::Allow, Step::Plain) if failure.refused_by_server => Some(Step::TlsRequired),
        (SslMode::Prefer, Step::TlsIfOffered) if failure.tls_started || failure.tls_setup_failed => {
            Some(Step::Plain)
        }
        _ => None,
    }
}

/// What a server must be to be accepted in one pass over the hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// Anything.
    Any,
    /// `transaction_read_only` off.
    ReadWrite,
    /// `transaction_read_only` on.
    ReadOnly,
    /// Not in recovery.
    Primary,
    /// In recovery.
    Standby,
}

/// The passes over the host list that `target_session_attrs` asks for.
pub(crate) fn passes(attrs: TargetSessionAttrs) -> &'static [Wanted] {
    match attrs {
        TargetSessionAttrs::Any => &[Wanted::Any],
        TargetSessionAttrs::ReadWrite => &[Wanted::ReadWrite],
        TargetSessionAttrs::ReadOnly => &[Wanted::ReadOnly],
        TargetSessionAttrs::Primary => &[Wanted::Primary],
        TargetSessionAttrs::Standby => &[Wanted::Standby],
        TargetSessionAttrs::PreferStandby => &[Wanted::Standby, Wanted::Any],
    }
}

/// What the server said about itself, and the verdict for `wanted`: `None` if accepted, else
/// libpq's words for the mismatch.
pub(crate) fn judge(
    wanted: Wanted,
    read_only: Option<bool>,
    in_recovery: Option<bool>,
) -> Option<&'static str> {
    match wanted {
        Wanted::Any => None,
        Wanted::ReadWrite if read_only == Some(true) => Some("session is read-only"),
        Wanted::ReadOnly if read_only == Some(false) => Some("session is not read-only"),
        Wanted::Primary if in_recovery == Some(true) => Some("server is in hot standby mode"),
        Wanted::Standby if in_recovery == Some(false) => Some("server is not in hot standby mode"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTHING: Failure =
        Failure { tls_started: false, refused_by_server: false, tls_setup_failed: false };

    /// Runs the steps on one address against a server that behaves as `outcome` says for each
    /// step; returns the steps taken.
    fn walk(mode: SslMode, tls_ready: bool, outcome: impl Fn(Step) -> Option<Failure>) -> Vec<Step> {
        let mut steps = vec![first_step(mode, false, tls_ready)];
        while let Some(failure) = outcome(*steps.last().unwrap()) {
            match next_step(mode, *steps.last().unwrap(), failure) {
                Some(next) => steps.push(next),
                None => break,
            }
            assert!(steps.len() <= 3, "no mode takes more than two steps");
        }
        steps
    }

    #[test]
    fn disable_and_the_verifying_modes_take_one_step() {
        let always_fails = |_| Some(Failure { tls_started: true, refused_by_server: true, ..NOTHING });
        assert_eq!(walk(SslMode::Disable, true, always_fails), [Step::Plain]);
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            assert_eq!(walk(mode, true, always_fails), [Step::TlsRequired], "{mode:?}");
        }
    }

    #[test]
    fn allow_tries_tls_only_after_the_server_refused_plaintext() {
        let refused = |s| (s == Step::Plain).then_some(Failure { refused_by_server: true, ..NOTHING });
        assert_eq!(walk(SslMode::Allow, true, refused), [Step::Plain, Step::TlsRequired]);
        // A refused connection (nobody listening) is no reason to try TLS on it.
        assert_eq!(walk(SslMode::Allow, true, |_| Some(NOTHING)), [Step::Plain]);
    }

    #[test]
    fn prefer_falls_back_to_plaintext_only_after_tls_was_tried() {
        let handshake_failed =
            |s| (s == Step::TlsIfOffered).then_some(Failure { tls_started: true, ..NOTHING });
        assert_eq!(walk(SslMode::Prefer, true, handshake_failed), [Step::TlsIfOffered, Step::Plain]);
        // The server declined TLS and then refused the plaintext session: nothing left to try.
        let declined_then_refused = |_| Some(Failure { refused_by_server: true, ..NOTHING });
        assert_eq!(walk(SslMode::Prefer, true, declined_then_refused), [Step::TlsIfOffered]);
        // TLS cannot be set up (an unreadable key, say): plaintext at once.
        assert_eq!(walk(SslMode::Prefer, false, |_| None), [Step::Plain]);
        assert_eq!(walk(SslMode::Require, false, |_| None), [Step::TlsRequired]);
    }

    #[test]
    fn unix_sockets_never_use_tls() {
        for mode in [SslMode::Prefer, SslMode::Require, SslMode::VerifyFull] {
            assert_eq!(first_step(mode, true, true), Step::Plain);
        }
    }

    #[test]
    fn session_attributes_are_judged_as_libpq_judges_them() {
        assert_eq!(judge(Wanted::ReadWrite, Some(true), None), Some("session is read-only"));
        assert_eq!(judge(Wanted::ReadWrite, Some(false), None), None);
        assert_eq!(judge(Wanted::Primary, None, Some(true)), Some("server is in hot standby mode"));
        assert_eq!(judge(Wanted::Standby, None, Some(false)), Some("server is not in hot standby mode"));
        assert_eq!(judge(Wanted::ReadOnly, Some(false), None), Some("session is not read-only"));
        assert_eq!(passes(TargetSessionAttrs::PreferStandby), [Wanted::Standby, Wanted::Any]);
    }
}
