//! libpq's keywords: the table every other part of the options reads (the syntax checks a keyword
//! exists, resolution walks the table for `PG*` variables, the service file checks its lines), and
//! which of them hold secrets. A leaf: it imports nothing of this crate.

/// A keyword libpq knows, and the variable that supplies its value when nothing else does.
pub(crate) struct Keyword {
    /// The keyword.
    pub(crate) name: &'static str,
    /// Its `PG*` variable.
    pub(crate) env: Option<&'static str>,
}

const fn kw(name: &'static str, env: Option<&'static str>) -> Keyword {
    Keyword { name, env }
}

/// libpq's keywords as of libpq 19, the newest release, which this client imitates: 17's, 18's
/// additions and 19's, in libpq's order. (`make test` compares the set with the newest libpq it
/// can run, 18, in tests/differential/conninfo.rs; 19's additions are the keyword strings its
/// Debian build, 19~rc1, holds that 18's does not.)
pub(crate) const KEYWORDS: &[Keyword] = &[
    kw("service", Some("PGSERVICE")),
    kw("user", Some("PGUSER")),
    kw("password", Some("PGPASSWORD")),
    kw("passfile", Some("PGPASSFILE")),
    kw("channel_binding", Some("PGCHANNELBINDING")),
    kw("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    kw("dbname", Some("PGDATABASE")),
    kw("host", Some("PGHOST")),
    kw("hostaddr", Some("PGHOSTADDR")),
    kw("port", Some("PGPORT")),
    kw("client_encoding", Some("PGCLIENTENCODING")),
    kw("options", Some("PGOPTIONS")),
    kw("application_name", Some("PGAPPNAME")),
    kw("fallback_application_name", None),
    kw("keepalives", None),
    kw("keepalives_idle", None),
    kw("keepalives_interval", None),
    kw("keepalives_count", None),
    kw("tcp_user_timeout", None),
    kw("sslmode", Some("PGSSLMODE")),
    kw("sslnegotiation", Some("PGSSLNEGOTIATION")),
    kw("sslcompression", Some("PGSSLCOMPRESSION")),
    kw("sslcert", Some("PGSSLCERT")),
    kw("sslkey", Some("PGSSLKEY")),
    kw("sslcertmode", Some("PGSSLCERTMODE")),
    kw("sslpassword", None),
    kw("sslrootcert", Some("PGSSLROOTCERT")),
    kw("sslcrl", Some("PGSSLCRL")),
    kw("sslcrldir", Some("PGSSLCRLDIR")),
    kw("sslsni", Some("PGSSLSNI")),
    kw("requirepeer", Some("PGREQUIREPEER")),
    kw("require_auth", Some("PGREQUIREAUTH")),
    kw("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    kw("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    kw("gssencmode", Some("PGGSSENCMODE")),
    kw("krbsrvname", Some("PGKRBSRVNAME")),
    kw("gsslib", Some("PGGSSLIB")),
    kw("gssdelegation", Some("PGGSSDELEGATION")),
    kw("replication", None),
    kw("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    kw("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
    // libpq 18.
    kw("sslkeylogfile", None),
    kw("min_protocol_version", Some("PGMINPROTOCOLVERSION")),
    kw("max_protocol_version", Some("PGMAXPROTOCOLVERSION")),
    kw("scram_client_key", None),
    kw("scram_server_key", None),
    kw("oauth_issuer", None),
    kw("oauth_client_id", None),
    kw("oauth_client_secret", None),
    kw("oauth_scope", None),
    // libpq 19.
    kw("servicefile", None),
    kw("oauth_ca_file", Some("PGOAUTHCAFILE")),
];

/// The keyword called `name`, if libpq has one.
pub(crate) fn keyword(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name == name)
}

/// Whether `name`'s values are secrets, never to appear in an error message.
pub(crate) fn is_secret(name: &str) -> bool {
    matches!(
        name,
        "password" | "sslpassword" | "oauth_client_secret" | "scram_client_key" | "scram_server_key"
    )
}

/// libpq's one keyword alias: the old `requiressl` is `sslmode`, `require` for a value starting
/// with `1` and `prefer` otherwise (`conninfo_storeval`). Any other pair is returned as it is.
pub(crate) fn unalias(name: &str, value: String) -> (&str, String) {
    if name == "requiressl" {
        ("sslmode", if value.starts_with('1') { "require" } else { "prefer" }.to_string())
    } else {
        (name, value)
    }
}
