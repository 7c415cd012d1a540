//! The syntax of connection strings: libpq's `key=value` conninfo strings and `postgresql://`
//! URLs, turned into keyword/value pairs in the order written. Nothing here knows what a value
//! means; that is [`super::resolve`]'s business. It does know which keywords exist, because
//! libpq rejects an unknown one while parsing, with a different message for a URL.
//!
//! The rules are libpq 17's, checked against `psql` (and its error messages copied from there):
//!
//! * `key = value` pairs separated by whitespace (C's `isspace`: space, `\t`, `\n`, `\v`, `\f`,
//!   `\r`), whitespace allowed around `=`. A value is either single-quoted, `\'` and `\\`
//!   escaping a quote and a backslash (a backslash escapes any character), or runs to the next
//!   whitespace, backslashes escaping there too. `host=` followed by whitespace does not give an
//!   empty value: libpq skips the whitespace, so `host= port=5` sets `host` to `port=5`. An empty
//!   string, or only whitespace, is valid and sets nothing.
//! * `postgresql://` or `postgres://`, then `[user[:password]@][host][:port][,host[:port]...]
//!   [/dbname][?keyword=value&...]`, each part percent-decoded. `[...]` brackets an IPv6
//!   address. A host starting with `%2F` decodes to a path: a Unix-socket directory. Several
//!   hosts become one comma-separated `host` (and `port`) value, as libpq stores them. Empty
//!   parts are not stored (`postgresql:///db` sets no host). `ssl=true` means `sslmode=require`.
//!   Spaces around a part are dropped and spaces inside one refused, as libpq 18 does (17 kept
//!   them); `%20` is a space.
//! * `requiressl=1` (and anything else starting with `1`) is libpq's old spelling of
//!   `sslmode=require`, any other value of `sslmode=prefer`, in both forms.
//!
//! A later pair for the same keyword overrides an earlier one; [`parse`] keeps both, in order,
//! and resolution takes the last.

use super::error::{ConfigError, Origin};
use super::keywords::{is_secret, keyword, unalias};
use super::lexical::is_c_space;

/// The two URL schemes libpq recognises.
const URI_PREFIXES: [&str; 2] = ["postgresql://", "postgres://"];

/// Parses a connection string, conninfo (`host=db port=5433`) or URL
/// (`postgresql://db:5433`), into `(keyword, value)` pairs in the order written. A keyword may
/// appear more than once: the last one counts. Every keyword is one libpq 17 or 18 knows
/// (`requiressl` and a URL's `ssl=true` already turned into `sslmode`); values are not checked.
///
/// ```
/// use bytebase_signal_connect::parse;
///
/// let pairs = parse("postgresql://alice@db.example.com:5433/app?sslmode=require").unwrap();
/// let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
/// assert_eq!(
///     pairs,
///     [("user", "alice"), ("host", "db.example.com"), ("port", "5433"), ("dbname", "app"), ("sslmode", "require")]
/// );
/// assert_eq!(parse("host='my db' port=5433").unwrap()[0], ("host".to_string(), "my db".to_string()));
/// assert_eq!(
///     parse("host=db sslmod=require").unwrap_err().to_string(),
///     r#"invalid connection option "sslmod""#
/// );
/// ```
pub fn parse(dsn: &str) -> Result<Vec<(String, String)>, ConfigError> {
    if dsn.contains('\0') {
        return Err(ConfigError::NulCharacter { what: "connection string".into(), origin: Origin::Explicit });
    }
    match URI_PREFIXES.iter().find(|prefix| dsn.starts_with(*prefix)) {
        Some(prefix) => parse_uri(dsn, prefix.len()),
        None => parse_conninfo(dsn),
    }
}

/// Stores one pair as libpq's `conninfo_storeval` does: `requiressl` becomes `sslmode`, and an
/// unknown keyword is an error.
fn store(
    pairs: &mut Vec<(String, String)>,
    name: &str,
    value: String,
    unknown: impl FnOnce(&str) -> ConfigError,
) -> Result<(), ConfigError> {
    let (name, value) = unalias(name, value);
    let known = keyword(name).ok_or_else(|| unknown(name))?;
    pairs.push((known.name.to_string(), value));
    Ok(())
}

fn parse_conninfo(s: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let b = s.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if is_c_space(b[i]) {
            i += 1;
            continue;
        }
        // The keyword runs to `=` or whitespace; whitespace may separate it from the `=`.
        let start = i;
        while i < b.len() && b[i] != b'=' && !is_c_space(b[i]) {
            i += 1;
        }
        let name = &s[start..i];
        while i < b.len() && is_c_space(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            return Err(ConfigError::MissingEquals { keyword: name.to_string() });
        }
        i += 1;
        while i < b.len() && is_c_space(b[i]) {
            i += 1;
        }
        // Only ASCII bytes (a quote, a backslash) are ever dropped, so the value stays UTF-8.
        let mut value = Vec::new();
        if b.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(ConfigError::UnterminatedQuote),
                    Some(b'\\') => {
                        // A backslash at the very end escapes nothing, and the quote is
                        // still open.
                        if let Some(&next) = b.get(i + 1) {
                            value.push(next);
                        }
                        i += 2;
                    }
                    Some(b'\'') => {
                        // The value may be followed directly by the next keyword.
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while let Some(&c) = b.get(i) {
                i += 1;
                if is_c_space(c) {
                    break;
                }
                if c == b'\\' {
                    if let Some(&next) = b.get(i) {
                        value.push(next);
                        i += 1;
                    }
                } else {
                    value.push(c);
                }
            }
        }
        let value = String::from_utf8_lossy(&value).into_owned();
        store(&mut pairs, name, value, |name| ConfigError::InvalidOption(name.to_string()))?;
    }
    Ok(pairs)
}

/// One hexadecimal digit, either case.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes a part of a URL as libpq's `conninfo_uri_decode` does: spaces before and
/// after the part are dropped and a space inside it is refused (as libpq 18 does; `%20` is a
/// space), `%` and two hex digits (either case) become that byte, `%00` is refused, everything
/// else is copied.
fn decode(encoded: &str) -> Result<String, ConfigError> {
    let b = encoded.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = b.iter().take_while(|&&c| c == b' ').count();
    while let Some(&c) = b.get(i) {
        if c == b' ' {
            // The part ends at a space: only spaces may follow.
            if b[i..].iter().any(|&c| c != b' ') {
                return Err(ConfigError::UnexpectedSpaces { value: encoded.to_string() });
            }
            break;
        }
        if c != b'%' {
            out.push(c);
            i += 1;
            continue;
        }
        let hi = b.get(i + 1).copied().and_then(hex_digit);
        let lo = b.get(i + 2).copied().and_then(hex_digit);
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(ConfigError::InvalidPercentEncoding { value: encoded.to_string() });
        };
        let byte = hi << 4 | lo;
        if byte == 0 {
            return Err(ConfigError::PercentEncodedNul { value: encoded.to_string() });
        }
        out.push(byte);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| ConfigError::PercentDecodedNotUtf8 { value: encoded.to_string() })
}

/// [`decode`] for a secret: the error does not echo the value.
fn decode_secret(encoded: &str, keyword: &str) -> Result<String, ConfigError> {
    decode(encoded).map_err(|e| ConfigError::SecretPercentEncoding {
        keyword: keyword.to_string(),
        reason: match e {
            ConfigError::UnexpectedSpaces { .. } => {
                "unexpected spaces found, use percent-encoded spaces (%20) instead"
            }
            ConfigError::PercentEncodedNul { .. } => "forbidden value %00 in percent-encoded value",
            ConfigError::PercentDecodedNotUtf8 { .. } => "percent-decoded value is not valid UTF-8",
            _ => "invalid percent-encoded token",
        },
    })
}

fn parse_uri(uri: &str, prefix_len: usize) -> Result<Vec<(String, String)>, ConfigError> {
    let b = uri.as_bytes();
    let len = b.len();
    let mut pairs = Vec::new();
    let store_decoded = |pairs: &mut Vec<(String, String)>, name: &str, raw: &str| {
        // The part is not stored at all when empty (so `postgresql:///db` leaves the host to the
        // environment), as libpq does.
        if raw.is_empty() {
            return Ok(());
        }
        let value = if is_secret(name) { decode_secret(raw, name)? } else { decode(raw)? };
        store(pairs, name, value, |name| ConfigError::InvalidOption(name.to_string()))
    };

    // Credentials: present if an `@` comes before the first `/` (anywhere else, even in the
    // query string, as libpq scans).
    let start = prefix_len;
    let mut p = start;
    while p < len && b[p] != b'@' && b[p] != b'/' {
        p += 1;
    }
    let mut password = None;
    if p < len && b[p] == b'@' {
        let at = p;
        let user_end = uri[start..at].find(':').map_or(at, |colon| start + colon);
        store_decoded(&mut pairs, "user", &uri[start..user_end])?;
        if user_end < at {
            password = Some(user_end + 1..at);
            store_decoded(&mut pairs, "password", &uri[user_end + 1..at])?;
        }
        p = at + 1;
    } else {
        p = start;
    }
    // For the errors that quote the whole URI.
    let shown = || match &password {
        Some(range) if !range.is_empty() => format!("{}****{}", &uri[..range.start], &uri[range.end..]),
        _ => uri.to_string(),
    };

    // `host[:port]`, comma-separated; an IPv6 host in brackets.
    let mut hosts = String::new();
    let mut ports = String::new();
    let mut terminator;
    loop {
        let host;
        if b.get(p) == Some(&b'[') {
            let open = p + 1;
            let Some(close) = uri[open..].find(']').map(|i| open + i) else {
                return Err(ConfigError::UnterminatedIpv6 { uri: shown() });
            };
            if close == open {
                return Err(ConfigError::EmptyIpv6 { uri: shown() });
            }
            host = &uri[open..close];
            p = close + 1;
            if let Some(&c) = b.get(p) {
                if !matches!(c, b':' | b'/' | b'?' | b',') {
                    let character = uri[p..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
                    return Err(ConfigError::UnexpectedUriCharacter {
                        character,
                        position: p + 1,
                        uri: shown(),
                    });
                }
            }
        } else {
            let from = p;
            while p < len && !matches!(b[p], b':' | b'/' | b'?' | b',') {
                p += 1;
            }
            host = &uri[from..p];
        }
        hosts.push_str(host);
        terminator = b.get(p).copied();
        if terminator == Some(b':') {
            p += 1;
            let from = p;
            while p < len && !matches!(b[p], b'/' | b'?' | b',') {
                p += 1;
            }
            ports.push_str(&uri[from..p]);
            terminator = b.get(p).copied();
        }
        if terminator != Some(b',') {
            break;
        }
        p += 1;
        // A port list as long as the host list, empty entries where no port was written.
        hosts.push(',');
        ports.push(',');
    }
    // Decoded as a whole, as libpq does: a `%2C` becomes a list separator.
    store_decoded(&mut pairs, "host", &hosts)?;
    store_decoded(&mut pairs, "port", &ports)?;

    // `/dbname`, up to the query.
    if terminator == Some(b'/') {
        p += 1;
        let from = p;
        while p < len && b[p] != b'?' {
            p += 1;
        }
        store_decoded(&mut pairs, "dbname", &uri[from..p])?;
        terminator = b.get(p).copied();
    }
    if terminator.is_some() {
        parse_query(&uri[p + 1..], &mut pairs)?;
    }
    Ok(pairs)
}

/// The query string after `?`: `keyword=value` pairs separated by `&`, keyword and value each
/// percent-decoded.
fn parse_query(query: &str, pairs: &mut Vec<(String, String)>) -> Result<(), ConfigError> {
    // As libpq scans: a parameter ends at `&` or the end, so one trailing `&` is harmless while
    // `?&` or `&&` make an empty parameter, which has no `=`.
    let mut rest = query;
    while !rest.is_empty() {
        let (parameter, next) = rest.split_once('&').unwrap_or((rest, ""));
        rest = next;
        let Some((raw_keyword, raw_value)) = parameter.split_once('=') else {
            return Err(ConfigError::MissingUriSeparator { parameter: parameter.to_string() });
        };
        if raw_value.contains('=') {
            return Err(ConfigError::ExtraUriSeparator { parameter: raw_keyword.to_string() });
        }
        let name = decode(raw_keyword)?;
        let value = if is_secret(&name) { decode_secret(raw_value, &name)? } else { decode(raw_value)? };
        // JDBC's spelling, which libpq accepts in URLs only, and only with the value `true`.
        let (name, value) = if name == "ssl" && value == "true" {
            ("sslmode".to_string(), "require".to_string())
        } else {
            (name, value)
        };
        store(pairs, &name, value, |name| ConfigError::InvalidUriParameter(name.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pairs(dsn: &str) -> Vec<(String, String)> {
        parse(dsn).unwrap_or_else(|e| panic!("{dsn:?}: {e}"))
    }

    fn assert_pairs(dsn: &str, expected: &[(&str, &str)]) {
        let expected: Vec<(String, String)> =
            expected.iter().map(|&(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(pairs(dsn), expected, "{dsn:?}");
    }

    fn error(dsn: &str) -> String {
        match parse(dsn) {
            Ok(pairs) => panic!("{dsn:?} parsed to {pairs:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn libpqs_documented_keyword_value_examples() {
        assert_pairs(
            "host=localhost port=5432 dbname=mydb connect_timeout=10",
            &[("host", "localhost"), ("port", "5432"), ("dbname", "mydb"), ("connect_timeout", "10")],
        );
        assert_pairs("host=localhost port=5432,5433", &[("host", "localhost"), ("port", "5432,5433")]);
        assert_pairs("host=host1,host2 port=123,456", &[("host", "host1,host2"), ("port", "123,456")]);
        // Whitespace around `=` and between pairs, of every kind C's isspace knows.
        assert_pairs(" \t host \n=\r\x0b localhost\x0cport= 1 ", &[("host", "localhost"), ("port", "1")]);
        assert_pairs("", &[]);
        assert_pairs(" \t\n ", &[]);
    }

    #[test]
    fn libpqs_documented_uri_examples() {
        assert_pairs("postgresql://", &[]);
        assert_pairs("postgres://", &[]);
        assert_pairs("postgresql://localhost", &[("host", "localhost")]);
        assert_pairs("postgresql://localhost:5433", &[("host", "localhost"), ("port", "5433")]);
        assert_pairs("postgresql://localhost/mydb", &[("host", "localhost"), ("dbname", "mydb")]);
        assert_pairs("postgresql://user@localhost", &[("user", "user"), ("host", "localhost")]);
        assert_pairs(
            "postgresql://user:secret@localhost",
            &[("user", "user"), ("password", "secret"), ("host", "localhost")],
        );
        assert_pairs(
            "postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
            &[
                ("user", "other"),
                ("host", "localhost"),
                ("dbname", "otherdb"),
                ("connect_timeout", "10"),
                ("application_name", "myapp"),
            ],
        );
        assert_pairs(
            "postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp",
            &[
                ("host", "host1,host2"),
                ("port", "123,456"),
                ("dbname", "somedb"),
                ("target_session_attrs", "any"),
                ("application_name", "myapp"),
            ],
        );
        assert_pairs(
            "postgresql:///mydb?host=localhost&port=5433",
            &[("dbname", "mydb"), ("host", "localhost"), ("port", "5433")],
        );
        assert_pairs(
            "postgresql://user@localhost:5433/mydb?options=-c%20synchronous_commit%3Doff",
            &[
                ("user", "user"),
                ("host", "localhost"),
                ("port", "5433"),
                ("dbname", "mydb"),
                ("options", "-c synchronous_commit=off"),
            ],
        );
        assert_pairs(
            "postgresql://[2001:db8::1234]/database",
            &[("host", "2001:db8::1234"), ("dbname", "database")],
        );
        assert_pairs("postgresql://[2001:db8::1234]:5433", &[("host", "2001:db8::1234"), ("port", "5433")]);
        assert_pairs(
            "postgresql://%2Fvar%2Flib%2Fpostgresql/dbname",
            &[("host", "/var/lib/postgresql"), ("dbname", "dbname")],
        );
        assert_pairs(
            "postgresql:///dbname?host=/var/lib/postgresql",
            &[("dbname", "dbname"), ("host", "/var/lib/postgresql")],
        );
    }

    #[test]
    fn quotes_and_backslashes() {
        // psql "application_name='a\'b\\c'" sent a'b\c; "options=x\ y" sent "x y";
        // "application_name=a'b" sent a'b.
        assert_pairs(r"application_name='a\'b\\c'", &[("application_name", r"a'b\c")]);
        assert_pairs(r"options=x\ y", &[("options", "x y")]);
        assert_pairs("application_name=a'b", &[("application_name", "a'b")]);
        assert_pairs(r"options='x y' user=u", &[("options", "x y"), ("user", "u")]);
        assert_pairs("password=''", &[("password", "")]);
        assert_pairs("password='' user=u", &[("password", ""), ("user", "u")]);
        assert_pairs(r"password='\q\''", &[("password", "q'")]);
        // A backslash at the very end escapes nothing (psql "options=a\" sent "a").
        assert_pairs(r"options=a\", &[("options", "a")]);
        // psql "host='127.0.0.1'port=45432" read both: nothing needs to follow a closing quote.
        assert_pairs("host='127.0.0.1'port=45432", &[("host", "127.0.0.1"), ("port", "45432")]);
        // psql "host= port=45432" took "port=45432" as the host name.
        assert_pairs("host= port=45432", &[("host", "port=45432")]);
        assert_pairs("host=", &[("host", "")]);
        assert_pairs("host=a=b", &[("host", "a=b")]);
        assert_pairs("application_name='snow ❄ man'", &[("application_name", "snow ❄ man")]);
        assert_pairs(r"application_name=❄\❄", &[("application_name", "❄❄")]);
    }

    #[test]
    fn later_pairs_are_kept_for_resolution_to_override() {
        // psql "user=a user=b" connected as b.
        assert_pairs("user=a user=b", &[("user", "a"), ("user", "b")]);
        assert_pairs("postgresql://a@h?user=b", &[("user", "a"), ("host", "h"), ("user", "b")]);
    }

    #[test]
    fn the_old_requiressl_and_jdbcs_ssl_true_are_sslmode() {
        // psql "requiressl=1" and "postgresql://...?requiressl=1" and "?ssl=true" all required
        // SSL ("server does not support SSL, but SSL was required"); "?ssl=false" failed with
        // invalid URI query parameter: "ssl".
        assert_pairs("requiressl=1", &[("sslmode", "require")]);
        assert_pairs("requiressl=10", &[("sslmode", "require")]);
        assert_pairs("requiressl=0", &[("sslmode", "prefer")]);
        assert_pairs("requiressl=yes", &[("sslmode", "prefer")]);
        assert_pairs("postgresql://h?requiressl=1", &[("host", "h"), ("sslmode", "require")]);
        assert_pairs("postgresql://h?ssl=true", &[("host", "h"), ("sslmode", "require")]);
        assert_eq!(error("postgresql://h?ssl=false"), r#"invalid URI query parameter: "ssl""#);
        assert_eq!(error("ssl=true"), r#"invalid connection option "ssl""#);
    }

    #[test]
    fn keyword_value_errors_in_libpqs_words() {
        // Each checked verbatim against psql 15 and 17.
        assert_eq!(error("host=x sslmod=y"), r#"invalid connection option "sslmod""#);
        assert_eq!(error("port=1 foo"), r#"missing "=" after "foo" in connection info string"#);
        assert_eq!(error("port=1 foo bar=2"), r#"missing "=" after "foo" in connection info string"#);
        assert_eq!(error("host='abc"), "unterminated quoted string in connection info string");
        assert_eq!(error(r"host='abc\"), "unterminated quoted string in connection info string");
        assert_eq!(error(r"options='a\"), "unterminated quoted string in connection info string");
        assert_eq!(error("host  = 127.0.0.1 port=1 =x"), r#"invalid connection option """#);
        assert_eq!(error("tty=x"), r#"invalid connection option "tty""#);
        assert_eq!(error("authtype=x"), r#"invalid connection option "authtype""#);
        assert_eq!(error("mydb"), r#"missing "=" after "mydb" in connection info string"#);
        assert_eq!(error("host=a\0b"), "connection string contains a NUL character");
    }

    #[test]
    fn uri_errors_in_libpqs_words() {
        // Each checked verbatim against psql 15 and 17.
        assert_eq!(error("postgresql://u%zz@h/"), r#"invalid percent-encoded token: "u%zz""#);
        assert_eq!(error("postgresql://u%@h/"), r#"invalid percent-encoded token: "u%""#);
        assert_eq!(error("postgresql://u%0@h/"), r#"invalid percent-encoded token: "u%0""#);
        assert_eq!(error("postgresql://u%00@h/"), r#"forbidden value %00 in percent-encoded value: "u%00""#);
        assert_eq!(error("postgresql://h/db?user=%zz"), r#"invalid percent-encoded token: "%zz""#);
        assert_eq!(error("postgresql://h/d%zzb"), r#"invalid percent-encoded token: "d%zzb""#);
        assert_eq!(error("postgresql://h:5%zz/"), r#"invalid percent-encoded token: "5%zz""#);
        assert_eq!(
            error("postgresql://[::1"),
            r#"end of string reached when looking for matching "]" in IPv6 host address in URI: "postgresql://[::1""#
        );
        assert_eq!(
            error("postgresql://[]/"),
            r#"IPv6 host address may not be empty in URI: "postgresql://[]/""#
        );
        assert_eq!(
            error("postgresql://[::1]x/"),
            r#"unexpected character "x" at position 19 in URI (expected ":" or "/"): "postgresql://[::1]x/""#
        );
        assert_eq!(
            error("postgresql://h/?a=b=c"),
            r#"extra key/value separator "=" in URI query parameter: "a""#
        );
        assert_eq!(
            error("postgresql://h/?ab"),
            r#"missing key/value separator "=" in URI query parameter: "ab""#
        );
        assert_eq!(
            error("postgresql://h/?&"),
            r#"missing key/value separator "=" in URI query parameter: """#
        );
        assert_eq!(
            error("postgresql://h/?user=1&&b=2"),
            r#"missing key/value separator "=" in URI query parameter: """#
        );
        assert_eq!(error("postgresql://h/?foo=1"), r#"invalid URI query parameter: "foo""#);
        // psql "postgresql://.../db/more?x": the dbname runs to the `?`.
        assert_eq!(
            error("postgresql://h/db/more?x"),
            r#"missing key/value separator "=" in URI query parameter: "x""#
        );
        assert_eq!(error("postgresql://h/?host=a\0"), "connection string contains a NUL character");
        assert_eq!(error("postgresql://h/%ff"), r#"percent-decoded value is not valid UTF-8: "%ff""#);
    }

    #[test]
    fn passwords_are_never_echoed() {
        // libpq would print "pw%zz" (psql: invalid percent-encoded token: "pw%zz").
        let message = error("postgresql://u:pw%zz@h/");
        assert_eq!(
            message,
            "invalid password in the URI: invalid percent-encoded token (the value is not shown)"
        );
        let message = error("postgresql://h/?password=se%zzcret");
        assert_eq!(
            message,
            "invalid password in the URI: invalid percent-encoded token (the value is not shown)"
        );
        let message = error("postgresql://h/?password=se%20cr et");
        assert_eq!(
            message,
            "invalid password in the URI: unexpected spaces found, use percent-encoded spaces (%20) instead \
             (the value is not shown)"
        );
        let message = error("postgresql://h/?password=%e9");
        assert_eq!(
            message,
            "invalid password in the URI: percent-decoded value is not valid UTF-8 (the value is not shown)"
        );
        let message = error("postgresql://h/?sslpassword=hunter%00");
        assert_eq!(
            message,
            "invalid sslpassword in the URI: forbidden value %00 in percent-encoded value (the value is not shown)"
        );
        assert!(!message.contains("hunter"), "{message}");
        assert_eq!(
            error("postgresql://u:secret@[::1"),
            r#"end of string reached when looking for matching "]" in IPv6 host address in URI: "postgresql://u:****@[::1""#
        );
        assert_eq!(
            error("postgresql://u:secret@[::1]x"),
            r#"unexpected character "x" at position 28 in URI (expected ":" or "/"): "postgresql://u:****@[::1]x""#
        );
        assert_eq!(
            error("postgresql://u:@[]"),
            r#"IPv6 host address may not be empty in URI: "postgresql://u:@[]""#
        );
    }

    #[test]
    fn uri_parts_as_libpq_splits_them() {
        // psql: "postgres://me:s%3Acr%40t@..." sent user me, password s:cr@t.
        assert_pairs(
            "postgres://me:s%3Acr%40t@127.0.0.1:45432/d?sslmode=disable",
            &[
                ("user", "me"),
                ("password", "s:cr@t"),
                ("host", "127.0.0.1"),
                ("port", "45432"),
                ("dbname", "d"),
                ("sslmode", "disable"),
            ],
        );
        // Empty parts are not stored (psql "postgresql://me:@..." had no password,
        // "postgresql://:pw@..." connected as the OS user with password pw).
        assert_pairs("postgresql://me:@h", &[("user", "me"), ("host", "h")]);
        assert_pairs("postgresql://:pw@h", &[("password", "pw"), ("host", "h")]);
        assert_pairs("postgresql://@/", &[]);
        assert_pairs("postgresql:///", &[]);
        assert_pairs("postgresql://h/?", &[("host", "h")]);
        assert_pairs("postgresql://h/?user=u&", &[("host", "h"), ("user", "u")]);
        // Hosts without ports leave empty entries in the port list, so that it still lines up.
        assert_pairs("postgresql://a:1,b/", &[("host", "a,b"), ("port", "1,")]);
        assert_pairs("postgresql://a,b:2", &[("host", "a,b"), ("port", ",2")]);
        assert_pairs("postgresql://a,b", &[("host", "a,b"), ("port", ",")]);
        assert_pairs("postgresql://,", &[("host", ","), ("port", ",")]);
        assert_pairs(
            "postgresql://[::1]:5432,127.0.0.1:5433,[fe80::1]/d",
            &[("host", "::1,127.0.0.1,fe80::1"), ("port", "5432,5433,"), ("dbname", "d")],
        );
        // Decoded after joining (psql "postgresql://a%2C127.0.0.1:45432/d" tried a, then
        // 127.0.0.1, both on 45432).
        assert_pairs(
            "postgresql://a%2C127.0.0.1:45432/d",
            &[("host", "a,127.0.0.1"), ("port", "45432"), ("dbname", "d")],
        );
        // psql "postgresql://h?user=a@127.0.0.1:45432/x" connected as user "h?user=a": the
        // credentials end at the first `@` before any `/`.
        assert_pairs(
            "postgresql://h?user=a@127.0.0.1:45432/x",
            &[("user", "h?user=a"), ("host", "127.0.0.1"), ("port", "45432"), ("dbname", "x")],
        );
        // libpq 18 (001_uri.pl) drops the spaces around each part and refuses the ones inside
        // (psql 17 kept both: database "db x", application name " ab ").
        assert_pairs(
            "postgresql://h/db%20x?application_name= ab ",
            &[("host", "h"), ("dbname", "db x"), ("application_name", "ab")],
        );
        assert_pairs(
            "postgresql://host?  user = uri-user & port  = 12345 ",
            &[("host", "host"), ("user", "uri-user"), ("port", "12345")],
        );
        assert_eq!(
            parse("postgresql://h/db x").unwrap_err().to_string(),
            r#"unexpected spaces found in "db x", use percent-encoded spaces (%20) instead"#
        );
        assert_pairs(
            "postgresql://h/?application_name=%41%4a%4A&us%65r=x",
            &[("host", "h"), ("application_name", "AJJ"), ("user", "x")],
        );
        assert_pairs("postgresql://h:/", &[("host", "h")]);
        assert_pairs("postgresql://u@", &[("user", "u")]);
        assert_pairs("postgresql://h/d?", &[("host", "h"), ("dbname", "d")]);
        assert_pairs(
            "postgresql://h/d?options=a%3Db%3Dc",
            &[("host", "h"), ("dbname", "d"), ("options", "a=b=c")],
        );
        assert_pairs("postgresql://%E2%9D%84/", &[("host", "❄")]);
    }

    /// `value` written as a quoted conninfo value.
    fn quote(value: &str) -> String {
        format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
    }

    proptest! {
        #[test]
        fn no_input_panics(dsn in any::<String>()) {
            let _ = parse(&dsn);
        }

        #[test]
        fn no_uri_panics(rest in "[a-z@:/?&=%,\\[\\]0-9A-F ❄]{0,40}") {
            let _ = parse(&format!("postgresql://{rest}"));
        }

        #[test]
        fn any_value_survives_quoting(value in "[^\\x00]*") {
            let dsn = format!("application_name={} user=u", quote(&value));
            prop_assert_eq!(
                parse(&dsn),
                Ok(vec![("application_name".to_string(), value), ("user".to_string(), "u".to_string())])
            );
        }

        #[test]
        fn any_value_survives_percent_encoding(value in "[^\\x00]+") {
            let encoded: String = value.bytes().map(|b| format!("%{b:02x}")).collect();
            prop_assert_eq!(
                parse(&format!("postgresql:///{encoded}?application_name={encoded}")),
                Ok(vec![("dbname".to_string(), value.clone()), ("application_name".to_string(), value)])
            );
        }
    }
}
