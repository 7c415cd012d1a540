//! What is wrong with a connection string, a service file or a `PG*` variable.
//!
//! Every message that libpq also has is worded as libpq 17 words it, so that a user who knows
//! `psql`'s errors recognises ours, and a message can be compared with `psql`'s output. Where a
//! value did not come from the connection string itself, the message ends with where it came
//! from, e.g. `invalid sslmode value: "bogus" (from PGSSLMODE)`: libpq leaves that out, and then a
//! setting nobody remembers making is hard to find.
//!
//! Two deliberate differences from libpq's words: a URL's password is never echoed (libpq quotes
//! the whole URL, password included, in some syntax errors, and the errors end up in logs), and
//! the errors for what this client cannot do ([`ConfigError::Unsupported`] and its kin) are ours.

use std::fmt;
use std::path::PathBuf;

/// Where a setting's value came from: named at the end of an error about that value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The connection string, or the settings the caller passed.
    Explicit,
    /// A `[service]` section of a service file.
    Service {
        /// The service file.
        file: PathBuf,
        /// The 1-based line of the setting.
        line: usize,
    },
    /// An environment variable.
    Env(&'static str),
    /// A default of libpq's (or of ours, where documented).
    Default,
}

/// Displays as the suffix of an error message: nothing for an explicit setting or a default,
/// ` (from PGSSLMODE)` for a variable, ` (from service file "/path", line 3)` for a service file.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Explicit | Origin::Default => Ok(()),
            Origin::Env(name) => write!(f, " (from {name})"),
            Origin::Service { file, line } => {
                write!(f, " (from service file \"{}\", line {line})", file.display())
            }
        }
    }
}

/// A setting that cannot be used, named as libpq names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An unknown keyword.
    #[error("invalid connection option \"{0}\"")]
    InvalidOption(String),

    // --- The syntax of a `key=value` connection string.
    /// A keyword without `=` after it.
    #[error("missing \"=\" after \"{keyword}\" in connection info string")]
    MissingEquals {
        /// The word that should have been followed by `=`.
        keyword: String,
    },
    /// A single-quoted value that runs to the end of the string.
    #[error("unterminated quoted string in connection info string")]
    UnterminatedQuote,
    /// A NUL character, which libpq (a C library) could never have seen.
    #[error("{what} contains a NUL character{origin}")]
    NulCharacter {
        /// `connection string`, or the keyword whose value holds it.
        what: String,
        /// Where the value came from.
        origin: Origin,
    },

    // --- The syntax of a `postgresql://` URL.
    /// A `%` not followed by two hexadecimal digits.
    #[error("invalid percent-encoded token: \"{value}\"")]
    InvalidPercentEncoding {
        /// The still-encoded text.
        value: String,
    },
    /// `%00`.
    #[error("forbidden value %00 in percent-encoded value: \"{value}\"")]
    PercentEncodedNul {
        /// The still-encoded text.
        value: String,
    },
    /// A space inside a part of the URL (libpq 18 trims spaces around each part and refuses the
    /// ones left inside).
    #[error("unexpected spaces found in \"{value}\", use percent-encoded spaces (%20) instead")]
    UnexpectedSpaces {
        /// The still-encoded text.
        value: String,
    },
    /// Percent-encoded bytes that are not UTF-8 (libpq passes such bytes on; we carry strings).
    #[error("percent-decoded value is not valid UTF-8: \"{value}\"")]
    PercentDecodedNotUtf8 {
        /// The still-encoded text.
        value: String,
    },
    /// A bad percent-encoding in a password (the URL's own, or a `password` parameter), which
    /// is not echoed.
    #[error("invalid {keyword} in the URI: {reason} (the value is not shown)")]
    SecretPercentEncoding {
        /// `password`, or the secret query parameter's keyword.
        keyword: String,
        /// What is wrong, in the words of the error that would show the value.
        reason: &'static str,
    },
    /// `[` without a matching `]`.
    #[error("end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"{uri}\"")]
    UnterminatedIpv6 {
        /// The URI, its password replaced by `****`.
        uri: String,
    },
    /// `[]`.
    #[error("IPv6 host address may not be empty in URI: \"{uri}\"")]
    EmptyIpv6 {
        /// The URI, its password replaced by `****`.
        uri: String,
    },
    /// Something other than `:`, `/`, `?` or `,` after `]`.
    #[error("unexpected character \"{character}\" at position {position} in URI (expected \":\" or \"/\"): \"{uri}\"")]
    UnexpectedUriCharacter {
        /// The character.
        character: char,
        /// Its 1-based byte position in the URI.
        position: usize,
        /// The URI, its password replaced by `****`.
        uri: String,
    },
    /// A query parameter with two `=`.
    #[error("extra key/value separator \"=\" in URI query parameter: \"{parameter}\"")]
    ExtraUriSeparator {
        /// The text before the first `=`.
        parameter: String,
    },
    /// A query parameter without `=`.
    #[error("missing key/value separator \"=\" in URI query parameter: \"{parameter}\"")]
    MissingUriSeparator {
        /// The parameter.
        parameter: String,
    },
    /// A query parameter that is no keyword.
    #[error("invalid URI query parameter: \"{0}\"")]
    InvalidUriParameter(String),

    // --- Values.
    /// A value outside a keyword's set (`sslmode`, `channel_binding`, `target_session_attrs`,
    /// ...).
    #[error("invalid {keyword} value: \"{value}\"{origin}")]
    InvalidValue {
        /// The keyword.
        keyword: &'static str,
        /// The value.
        value: String,
        /// Where the value came from.
        origin: Origin,
    },
    /// Not a TLS version libpq knows (libpq 17 quotes the keyword in this one message).
    #[error("invalid \"{keyword}\" value: \"{value}\"{origin}")]
    InvalidSslVersion {
        /// `ssl_min_protocol_version` or `ssl_max_protocol_version`.
        keyword: &'static str,
        /// The value.
        value: String,
        /// Where the value came from.
        origin: Origin,
    },
    /// `ssl_min_protocol_version` above `ssl_max_protocol_version`.
    #[error("invalid SSL protocol version range")]
    InvalidSslVersionRange,
    /// Not an integer that fits in 32 bits (libpq's `strtol` rules: surrounding whitespace and a
    /// sign are allowed).
    #[error("invalid integer value \"{value}\" for connection option \"{keyword}\"{origin}")]
    InvalidInteger {
        /// The keyword.
        keyword: &'static str,
        /// The value (for `port`, the one entry of the list).
        value: String,
        /// Where the value came from.
        origin: Origin,
    },
    /// A port outside 1..=65535.
    #[error("invalid port number: \"{value}\"{origin}")]
    InvalidPort {
        /// The entry of the `port` list.
        value: String,
        /// Where the value came from.
        origin: Origin,
    },
    /// A keepalive setting below 1, which libpq accepts but Linux refuses when libpq applies
    /// it (`setsockopt(TCP_KEEPIDLE) failed: Invalid argument`).
    #[error("invalid {keyword} value: \"{value}\" (must be at least 1){origin}")]
    KeepaliveTooSmall {
        /// `keepalives_idle`, `keepalives_interval` or `keepalives_count`.
        keyword: &'static str,
        /// The value.
        value: String,
        /// Where the value came from.
        origin: Origin,
    },
    /// A `port` list that is neither one port nor one per host.
    #[error("could not match {ports} port numbers to {hosts} hosts")]
    PortCountMismatch {
        /// Entries in `port`.
        ports: usize,
        /// Hosts.
        hosts: usize,
    },
    /// A `host` list not as long as the `hostaddr` list.
    #[error("could not match {hosts} host names to {hostaddrs} hostaddr values")]
    HostCountMismatch {
        /// Entries in `host`.
        hosts: usize,
        /// Entries in `hostaddr`.
        hostaddrs: usize,
    },
    /// A `hostaddr` entry that is not a numeric IP address.
    #[error("could not parse network address \"{value}\"{origin}")]
    InvalidHostaddr {
        /// The entry.
        value: String,
        /// Where the value came from.
        origin: Origin,
    },
    /// `sslrootcert=system` with an `sslmode` other than `verify-full`.
    #[error(
        "weak sslmode \"{sslmode}\" may not be used with sslrootcert=system (use \"verify-full\"){origin}"
    )]
    WeakSslModeForSystemRoots {
        /// The `sslmode` given.
        sslmode: String,
        /// Where the `sslmode` came from.
        origin: Origin,
    },
    /// `sslnegotiation=direct` with an `sslmode` that allows plaintext.
    #[error("weak sslmode \"{sslmode}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\"){origin}")]
    WeakSslModeForDirectNegotiation {
        /// The `sslmode` in effect.
        sslmode: String,
        /// Where the `sslmode` came from.
        origin: Origin,
    },
    /// `gssencmode=require`: this client, like a libpq built without GSSAPI, has no GSSAPI.
    #[error("gssencmode value \"require\" invalid when GSSAPI support is not compiled in{origin}")]
    GssEncryptionUnavailable {
        /// Where the `gssencmode` came from.
        origin: Origin,
    },
    /// A `client_encoding` other than UTF-8: tokio-postgres always speaks UTF-8.
    #[error("client_encoding \"{value}\" is not supported: this client always speaks UTF-8 (use UTF8, or auto){origin}")]
    UnsupportedClientEncoding {
        /// The value.
        value: String,
        /// Where the value came from.
        origin: Origin,
    },
    /// A keyword libpq acts on and this client cannot: refused rather than ignored, because
    /// ignoring it would weaken security or change behaviour.
    #[error(
        "this client does not support connection option \"{keyword}\" (value \"{value}\"): {reason}{origin}"
    )]
    Unsupported {
        /// The keyword.
        keyword: &'static str,
        /// The value, or `****` for a secret.
        value: String,
        /// What libpq would do that we cannot.
        reason: &'static str,
        /// Where the value came from.
        origin: Origin,
    },
    /// An environment variable whose value is not UTF-8.
    #[error("environment variable {0} is not valid UTF-8")]
    NotUnicode(&'static str),
    /// No user was given and the operating-system user is unknown.
    #[error("{0}")]
    OsUser(String),

    // --- Service files.
    /// `service` (or `PGSERVICE`) names a service no service file defines.
    #[error("definition of service \"{0}\" not found")]
    ServiceNotFound(String),
    /// `PGSERVICEFILE` (or `servicefile`) names a file that does not exist.
    #[error("service file \"{}\" not found", .0.display())]
    ServiceFileNotFound(PathBuf),
    /// A service file that exists but cannot be read (libpq calls this "not found" too).
    #[error("could not read service file \"{}\": {reason}", file.display())]
    ServiceFileUnreadable {
        /// The file.
        file: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A line of the wanted service that is not `keyword=value` with a known keyword.
    #[error("syntax error in service file \"{}\", line {line}", file.display())]
    ServiceFileSyntax {
        /// The file.
        file: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// `service=...` inside a service.
    #[error("nested service specifications not supported in service file \"{}\", line {line}", file.display())]
    ServiceFileNested {
        /// The file.
        file: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// A line of 1023 bytes or more (libpq reads service files with a 1024-byte buffer).
    #[error("line {line} too long in service file \"{}\"", file.display())]
    ServiceFileLineTooLong {
        /// The file.
        file: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// A line of the wanted service that is not UTF-8.
    #[error("service file \"{}\", line {line}, is not valid UTF-8", file.display())]
    ServiceFileNotUtf8 {
        /// The file.
        file: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// An `ldap://` line, which libpq (built with LDAP) resolves through an LDAP server.
    #[error("this client does not support LDAP lookups (service file \"{}\", line {line})", file.display())]
    ServiceFileLdap {
        /// The file.
        file: PathBuf,
        /// The 1-based line.
        line: usize,
    },
}
