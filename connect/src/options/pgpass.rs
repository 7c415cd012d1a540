//! The password file (`~/.pgpass`, `passfile`, `PGPASSFILE`), looked up per host when no
//! password was given, as libpq 17 does.
//!
//! Each line is `hostname:port:database:username:password`; `*` as a whole field matches
//! anything, `\` escapes the next character (so `\:` and `\\` are a literal colon and
//! backslash), lines starting with `#` are comments and the first matching line wins. Fields
//! are compared as text: the port as its decimal number (libpq compares the text given, so
//! `port=05432` does not match `5432` there, and does here).
//!
//! The host compared is the endpoint's `host` if given, else its `hostaddr`, else `localhost`;
//! a Unix-socket `host` that is exactly the compiled-in socket directory
//! ([`super::env::DEFAULT_SOCKET_DIR`]) is `localhost` too.
//!
//! The file is ignored with a warning (libpq's words) when it is not a plain file or when its
//! group or others have any access, and silently when it cannot be opened.

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::env::DEFAULT_SOCKET_DIR;
use super::settings::{Endpoint, Host};

/// The password for `user` on `dbname` at `endpoint` from the password file `passfile`, if a
/// line matches. An empty password on the matching line is no password (`None`), as libpq
/// then has none to send.
pub(crate) fn lookup(passfile: &Path, endpoint: &Endpoint, dbname: &str, user: &str) -> Option<String> {
    if dbname.is_empty() || user.is_empty() {
        return None;
    }
    let mut file = File::open(passfile).ok()?;
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() {
        tracing::warn!("password file \"{}\" is not a plain file", passfile.display());
        return None;
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            passfile.display()
        );
        return None;
    }
    let mut contents = Vec::new();
    file.read_to_end(&mut contents).ok()?;
    let port = endpoint.port.to_string();
    let found = find(&contents, &host_key(endpoint), port.as_bytes(), dbname.as_bytes(), user.as_bytes());
    let password = found.and_then(|password| match String::from_utf8(password) {
        Ok(password) => Some(password).filter(|p| !p.is_empty()),
        Err(_) => {
            tracing::warn!(
                "password file \"{}\": the matching password is not valid UTF-8",
                passfile.display()
            );
            None
        }
    });
    // Do not leave the file's passwords in freed memory.
    contents.fill(0);
    std::hint::black_box(&contents);
    password
}

/// The host name a line's first field is compared with.
fn host_key(endpoint: &Endpoint) -> Vec<u8> {
    match (&endpoint.host, endpoint.hostaddr) {
        (Some(Host::Tcp(name)), _) if !name.is_empty() => name.as_bytes().to_vec(),
        (Some(Host::Unix(dir)), _) if dir.as_os_str() != DEFAULT_SOCKET_DIR => {
            dir.as_os_str().as_bytes().to_vec()
        }
        (Some(Host::Unix(_)), _) => b"localhost".to_vec(),
        (_, Some(addr)) => addr.to_string().into_bytes(),
        _ => b"localhost".to_vec(),
    }
}

/// The password of the first line of `contents` matching all four fields, unescaped.
fn find(contents: &[u8], host: &[u8], port: &[u8], dbname: &[u8], user: &[u8]) -> Option<Vec<u8>> {
    contents.split(|&b| b == b'\n').find_map(|line| {
        if line.first() == Some(&b'#') {
            return None;
        }
        let mut end = line.len();
        while end > 0 && matches!(line[end - 1], b'\r' | b'\n') {
            end -= 1;
        }
        let rest = field(&line[..end], host)?;
        let rest = field(rest, port)?;
        let rest = field(rest, dbname)?;
        let rest = field(rest, user)?;
        Some(unescape(rest))
    })
}

/// If the line's next field matches `token` (or is `*`), what follows the field's `:`.
fn field<'a>(line: &'a [u8], token: &[u8]) -> Option<&'a [u8]> {
    if let Some(rest) = line.strip_prefix(b"*:") {
        return Some(rest);
    }
    let mut i = 0;
    let mut matched = 0;
    loop {
        let escaped = line.get(i) == Some(&b'\\');
        if escaped {
            i += 1;
        }
        let &c = line.get(i)?;
        if c == b':' && !escaped && matched == token.len() {
            return Some(&line[i + 1..]);
        }
        if token.get(matched) != Some(&c) {
            return None;
        }
        i += 1;
        matched += 1;
    }
}

/// The password field: up to an unescaped `:` or the end, escapes removed.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut password = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&c) = field.get(i) {
        if c == b':' {
            break;
        }
        if c == b'\\' && i + 1 < field.len() {
            i += 1;
        }
        password.push(field[i]);
        i += 1;
    }
    password
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::PathBuf;

    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint { host: Some(Host::Tcp(host.into())), hostaddr: None, port }
    }

    fn unix(dir: &str, port: u16) -> Endpoint {
        Endpoint { host: Some(Host::Unix(dir.into())), hostaddr: None, port }
    }

    fn addr(addr: &str, port: u16) -> Endpoint {
        Endpoint { host: None, hostaddr: Some(addr.parse::<IpAddr>().unwrap()), port }
    }

    /// A password file with `lines`, mode `mode`, in a temporary directory kept alive by the
    /// returned guard.
    fn passfile(lines: &[&str], mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    /// The file psql 15 and 17 were run against (see each case).
    const PSQL_CHECKED: &[&str] = &[
        "# comment",
        "wronghost:*:*:*:nope",
        "127.0.0.1:45433:*:u:first",
        "127.0.0.1:45433:*:u:second",
        r"*:45433:d\:b:u:colon",
        r"*:*:*:esc:p\:w\\x:tail",
        "localhost:45443:*:*:sockpw",
        "*:*:*:*:fallback",
    ];

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let (_dir, path) = passfile(PSQL_CHECKED, 0o600);
        let get = |endpoint: &Endpoint, dbname: &str, user: &str| lookup(&path, endpoint, dbname, user);
        // psql "host=127.0.0.1 port=45433 user=u": first (not second, not fallback).
        assert_eq!(get(&tcp("127.0.0.1", 45433), "u", "u").as_deref(), Some("first"));
        // psql "... dbname=d:b": still first, which matches any database before the d\:b line.
        assert_eq!(get(&tcp("127.0.0.1", 45433), "d:b", "u").as_deref(), Some("first"));
        assert_eq!(get(&tcp("other", 45433), "d:b", "u").as_deref(), Some("colon"));
        assert_eq!(get(&tcp("other", 45433), "d", "u").as_deref(), Some("fallback"));
        // psql "... user=esc": p:w\x (the password ends at the unescaped colon).
        assert_eq!(get(&tcp("127.0.0.1", 45433), "esc", "esc").as_deref(), Some(r"p:w\x"));
        // psql 17 "hostaddr=127.0.0.1 port=45433 user=u": first (psql 15: fallback).
        assert_eq!(get(&addr("127.0.0.1", 45433), "u", "u").as_deref(), Some("first"));
        assert_eq!(get(&tcp("wronghost", 1), "x", "y").as_deref(), Some("nope"));
    }

    #[test]
    fn the_default_socket_directory_is_localhost() {
        let (_dir, path) =
            passfile(&["localhost:5432:*:*:local", "/tmp:5432:*:*:tmp", "*:*:*:*:other"], 0o600);
        // psql 17, whose compiled-in directory is /tmp: "port=45443" and "host=/tmp port=45443"
        // both gave sockpw, the localhost line; "host=/tmp/" gave fallback.
        assert_eq!(lookup(&path, &unix(DEFAULT_SOCKET_DIR, 5432), "d", "u").as_deref(), Some("local"));
        assert_eq!(
            lookup(&path, &unix(&format!("{DEFAULT_SOCKET_DIR}/"), 5432), "d", "u").as_deref(),
            Some("other")
        );
        assert_eq!(lookup(&path, &unix("/tmp", 5432), "d", "u").as_deref(), Some("tmp"));
        // Our fallback default host, and an endpoint with neither host nor hostaddr.
        assert_eq!(lookup(&path, &tcp("localhost", 5432), "d", "u").as_deref(), Some("local"));
        let nothing = Endpoint { host: None, hostaddr: None, port: 5432 };
        assert_eq!(lookup(&path, &nothing, "d", "u").as_deref(), Some("local"));
    }

    #[test]
    fn an_accessible_file_is_ignored() {
        // psql with 0644, 0640 and 0601: WARNING: password file "..." has group or world
        // access; permissions should be u=rw (0600) or less
        for mode in [0o644, 0o640, 0o604, 0o601, 0o610] {
            let (_dir, path) = passfile(&["*:*:*:*:secret"], mode);
            assert_eq!(lookup(&path, &tcp("h", 5432), "d", "u"), None, "mode {mode:o}");
        }
        for mode in [0o600, 0o400, 0o700] {
            let (_dir, path) = passfile(&["*:*:*:*:secret"], mode);
            assert_eq!(lookup(&path, &tcp("h", 5432), "d", "u").as_deref(), Some("secret"), "mode {mode:o}");
        }
        // psql with a directory: WARNING: password file "/tmp/h1exp" is not a plain file
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lookup(dir.path(), &tcp("h", 5432), "d", "u"), None);
        assert_eq!(lookup(&dir.path().join("missing"), &tcp("h", 5432), "d", "u"), None);
    }

    #[test]
    fn fields_match_exactly() {
        let lines = [
            r"h\*st:5432:db:u:escaped-star",
            "h:5432:db:*:any-user",
            "h:5432:db",
            "h:5432:d:u",
            "h:5432:short:u:",
            "h:5432:trailing\\",
            "h:5432:crlf:u:pw\r",
        ];
        let (_dir, path) = passfile(&lines, 0o600);
        let get = |host: &str, dbname: &str, user: &str| lookup(&path, &tcp(host, 5432), dbname, user);
        assert_eq!(get("h*st", "db", "u").as_deref(), Some("escaped-star"));
        assert_eq!(get("hxst", "db", "u"), None);
        assert_eq!(get("h", "db", "anyone").as_deref(), Some("any-user"));
        // A line with too few fields matches nothing; an empty password is no password.
        assert_eq!(get("h", "d", "u"), None);
        assert_eq!(get("h", "short", "u"), None);
        assert_eq!(get("h", "crlf", "u").as_deref(), Some("pw"));
        // A prefix is no match, nor is a longer field.
        assert_eq!(get("h", "c", "u"), None);
        assert_eq!(get("h", "crlfx", "u"), None);
        assert_eq!(lookup(&path, &tcp("h", 5433), "db", "u"), None);
        assert_eq!(get("h", "", "u"), None);
    }

    #[test]
    fn field_matching_is_libpqs() {
        assert_eq!(field(b"*:rest", b"anything"), Some(&b"rest"[..]));
        assert_eq!(field(b"*x:rest", b"*x"), Some(&b"rest"[..]));
        assert_eq!(field(br"a\:b:rest", b"a:b"), Some(&b"rest"[..]));
        assert_eq!(field(br"a\\:rest", br"a\"), Some(&b"rest"[..]));
        assert_eq!(field(b"ab:rest", b"a"), None);
        assert_eq!(field(b"a:rest", b"ab"), None);
        assert_eq!(field(b"a", b"a"), None);
        assert_eq!(field(b"a\\", b"a"), None);
        assert_eq!(unescape(br"p\:w\\x:tail"), br"p:w\x");
        assert_eq!(unescape(b"trailing\\"), b"trailing\\");
    }
}
