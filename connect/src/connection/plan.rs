//! libpq's order of attempts, as decisions without I/O: which hosts and addresses, and for each
//! address which TLS steps `sslmode` allows after what the previous step ran into.
//!
//! | sslmode | first step | after a failure |
//! |---|---|---|
//! | `disable` | plaintext | — |
//! | `allow` | plaintext | TLS, if the server refused the plaintext session with an error |
//! | `prefer` | TLS if the server offers it | plaintext, if the TLS handshake failed or the server refused the TLS session |
//! | `require`, `verify-ca`, `verify-full` | TLS, required | — |
//!
//! After the last step on an address, libpq's rules: an address that cannot be reached (or does
//! not answer within `connect_timeout`) gives way to the next one; a server that cannot take
//! connections now (57P03), or a session that is not what `target_session_attrs` asks for, gives
//! way to the next host; anything else — the server refused the login, TLS failed — ends the
//! connection attempt, with no further hosts tried.
//!
//! A Unix-domain socket is always plaintext: PostgreSQL never speaks TLS there, and libpq ignores
//! `sslmode` for it. `target_session_attrs=prefer-standby` is two passes over every host: the first
//! accepts only a standby, the second any server.

use crate::options::settings::{SslMode, TargetSessionAttrs};

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

/// What a failed attempt means for the attempts after it, as libpq reads its failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failed {
    /// The address could not be reached (the socket did not connect, `connect_timeout`, the
    /// connection closed or broke during startup).
    Unreachable,
    /// The TLS handshake failed, TLS could not be set up, or the server does not offer it.
    Handshake,
    /// The server refused us with an error; `tls` says whether TLS was in use.
    Refused { tls: bool },
    /// The server cannot take connections now (starting up, shutting down: SQLSTATE 57P03).
    CannotConnectNow,
    /// The session is not what `target_session_attrs` asks for.
    WrongSession,
    /// Anything else (authentication failed on our side, the connection closed, the password
    /// provider failed): other hosts would not do better.
    Fatal,
}

/// Where to go after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Another TLS step on the same address.
    Retry(Step),
    /// The host's next address, else the next host.
    Address,
    /// The next host (this one's other addresses would answer the same).
    Host,
    /// Stop: the connection fails with the attempts so far. libpq does not try further hosts
    /// once a server refused the login or TLS failed without a fallback ("if a connection is
    /// established successfully, but authentication fails, the remaining hosts in the list are
    /// not tried").
    Stop,
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

/// Where to go after `step` on an address (a Unix socket if `unix_socket`) failed as `failed`.
pub(crate) fn next(mode: SslMode, step: Step, unix_socket: bool, failed: Failed) -> Next {
    match failed {
        Failed::Unreachable => Next::Address,
        Failed::CannotConnectNow | Failed::WrongSession => Next::Host,
        Failed::Fatal => Next::Stop,
        _ if unix_socket => Next::Stop,
        Failed::Handshake => match (mode, step) {
            (SslMode::Prefer, Step::TlsIfOffered) => Next::Retry(Step::Plain),
            _ => Next::Stop,
        },
        Failed::Refused { tls } => match (mode, step) {
            (SslMode::Allow, Step::Plain) => Next::Retry(Step::TlsRequired),
            (SslMode::Prefer, Step::TlsIfOffered) if tls => Next::Retry(Step::Plain),
            _ => Next::Stop,
        },
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

    /// Runs the steps on one TCP address against a server that fails each step as `outcome` says
    /// (`None`: it succeeds); returns the steps taken and where it went after the last.
    fn walk(
        mode: SslMode,
        tls_ready: bool,
        outcome: impl Fn(Step) -> Option<Failed>,
    ) -> (Vec<Step>, Option<Next>) {
        let mut steps = vec![first_step(mode, false, tls_ready)];
        while let Some(failed) = outcome(*steps.last().unwrap()) {
            match next(mode, *steps.last().unwrap(), false, failed) {
                Next::Retry(step) => steps.push(step),
                other => return (steps, Some(other)),
            }
            assert!(steps.len() <= 3, "no mode takes more than two steps");
        }
        (steps, None)
    }

    #[test]
    fn disable_and_the_verifying_modes_take_one_step_and_stop_on_a_refusal() {
        let refused = |_| Some(Failed::Refused { tls: true });
        assert_eq!(walk(SslMode::Disable, true, refused), (vec![Step::Plain], Some(Next::Stop)));
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            assert_eq!(walk(mode, true, refused), (vec![Step::TlsRequired], Some(Next::Stop)), "{mode:?}");
            assert_eq!(
                walk(mode, true, |_| Some(Failed::Handshake)),
                (vec![Step::TlsRequired], Some(Next::Stop)),
                "a TLS failure is final where TLS is required"
            );
        }
    }

    #[test]
    fn allow_tries_tls_only_after_the_server_refused_plaintext() {
        let refused = |s| (s == Step::Plain).then_some(Failed::Refused { tls: false });
        assert_eq!(walk(SslMode::Allow, true, refused), (vec![Step::Plain, Step::TlsRequired], None));
        // Nobody listening is no reason to try TLS there: the next address.
        assert_eq!(
            walk(SslMode::Allow, true, |_| Some(Failed::Unreachable)),
            (vec![Step::Plain], Some(Next::Address))
        );
    }

    #[test]
    fn prefer_falls_back_to_plaintext_only_after_a_tls_failure_or_a_refusal_over_tls() {
        let handshake = |s| (s == Step::TlsIfOffered).then_some(Failed::Handshake);
        assert_eq!(walk(SslMode::Prefer, true, handshake), (vec![Step::TlsIfOffered, Step::Plain], None));
        let refused_over_tls = |s| (s == Step::TlsIfOffered).then_some(Failed::Refused { tls: true });
        assert_eq!(
            walk(SslMode::Prefer, true, refused_over_tls),
            (vec![Step::TlsIfOffered, Step::Plain], None)
        );
        // The server declined TLS and then refused the plaintext session: nothing left to try.
        let declined_then_refused = |_| Some(Failed::Refused { tls: false });
        assert_eq!(
            walk(SslMode::Prefer, true, declined_then_refused),
            (vec![Step::TlsIfOffered], Some(Next::Stop))
        );
        // TLS cannot be set up (an unreadable key, say): plaintext at once.
        assert_eq!(walk(SslMode::Prefer, false, |_| None), (vec![Step::Plain], None));
        assert_eq!(walk(SslMode::Require, false, |_| None), (vec![Step::TlsRequired], None));
    }

    #[test]
    fn prefer_never_retries_in_plaintext_what_tls_did_not_cause() {
        // A standby for read-write, a timeout, a required certificate not sent: the session over
        // TLS worked or the address is gone; a second login in plaintext would only leak.
        for (failed, then) in [
            (Failed::WrongSession, Next::Host),
            (Failed::CannotConnectNow, Next::Host),
            (Failed::Unreachable, Next::Address),
            (Failed::Fatal, Next::Stop),
        ] {
            assert_eq!(
                walk(SslMode::Prefer, true, |_| Some(failed)),
                (vec![Step::TlsIfOffered], Some(then)),
                "{failed:?}"
            );
        }
    }

    #[test]
    fn unix_sockets_never_use_tls() {
        for mode in [SslMode::Allow, SslMode::Prefer, SslMode::Require, SslMode::VerifyFull] {
            assert_eq!(first_step(mode, true, true), Step::Plain);
            assert_eq!(next(mode, Step::Plain, true, Failed::Refused { tls: false }), Next::Stop, "{mode:?}");
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
