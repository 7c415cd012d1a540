//! The connection service file (`pg_service.conf`): named groups of settings, selected with
//! `service=name` or `PGSERVICE`.
//!
//! Found as libpq 17 finds it: the user's file first, which is `servicefile` (libpq 18's
//! keyword), else `PGSERVICEFILE`, else `~/.pg_service.conf` if it exists; if the service is not
//! there, `pg_service.conf` in `PGSYSCONFDIR` (else the compiled-in directory, see
//! [`super::env::DEFAULT_SYSCONFDIR`]) if it exists. A service found in the user's file hides
//! the system file's definition entirely. A `PGSERVICEFILE` that does not exist is an error; a
//! missing `~/.pg_service.conf` or system file is not. No definition anywhere is an error.
//!
//! The format, with libpq's quirks kept so that a file means the same to us as to `psql`:
//!
//! * whitespace (C's `isspace`) is trimmed from both ends of each line; empty lines and lines
//!   starting with `#` are skipped;
//! * a line starting with `[` opens a section, which is the wanted one when the service name
//!   follows at once and then `]` (anything after the `]` is ignored, `[ name ]` is another
//!   name); the next `[` line ends it;
//! * inside the wanted section every other line is `keyword=value`, split at the first `=` and
//!   not trimmed around it: `host = db` is the unknown keyword `host ` (a syntax error) with the
//!   value ` db`; the keyword must be one libpq knows, and not `service`;
//! * the first line of a keyword wins (libpq only fills a setting that is still empty);
//! * lines outside the wanted section are not looked at, however malformed;
//! * a line of 1023 bytes or more is an error, as libpq reads lines into a 1024-byte buffer;
//! * `ldap...` lines, which libpq built with LDAP resolves through an LDAP server, are an error
//!   here.

use std::path::{Path, PathBuf};

use super::env::Environment;
use super::error::ConfigError;
use super::keywords::keyword;
use super::lexical::{in_dir, is_c_space};

/// libpq reads the service file with `fgets` into a buffer of this size, and fails on a line
/// that fills it.
const LINE_BUFFER: usize = 1024;

/// The settings of one service.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Service {
    /// The file that defines it.
    pub(crate) file: PathBuf,
    /// Its settings, in the file's order, each keyword once.
    pub(crate) settings: Vec<Setting>,
}

/// One `keyword=value` line of a service.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Setting {
    /// The keyword.
    pub(crate) keyword: &'static str,
    /// The value, as written after the `=`.
    pub(crate) value: String,
    /// The 1-based line.
    pub(crate) line: usize,
}

/// Finds the service `name`; `servicefile` is the explicit `servicefile` setting, if any.
pub(crate) fn lookup(
    name: &str,
    servicefile: Option<&Path>,
    env: &dyn Environment,
) -> Result<Service, ConfigError> {
    let user_file = match (servicefile, env.var_os("PGSERVICEFILE")) {
        (Some(file), _) => Some(file.to_path_buf()),
        (None, Some(file)) => Some(PathBuf::from(file)),
        (None, None) => {
            env.home_dir().map(|home| in_dir(home, ".pg_service.conf")).filter(|file| file.exists())
        }
    };
    if let Some(file) = user_file {
        if let Some(settings) = read(&file, name)? {
            return Ok(Service { file, settings });
        }
    }
    let system_file = in_dir(env.sysconfdir(), "pg_service.conf");
    if system_file.exists() {
        if let Some(settings) = read(&system_file, name)? {
            return Ok(Service { file: system_file, settings });
        }
    }
    Err(ConfigError::ServiceNotFound(name.to_string()))
}

/// The settings of `service` in `file`, `None` if the file has no such section.
fn read(file: &Path, service: &str) -> Result<Option<Vec<Setting>>, ConfigError> {
    let contents = std::fs::read(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ConfigError::ServiceFileNotFound(file.to_path_buf()),
        _ => ConfigError::ServiceFileUnreadable { file: file.to_path_buf(), reason: e.to_string() },
    })?;
    parse(&contents, service, file)
}

fn trim(mut line: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = line {
        if !is_c_space(*first) {
            break;
        }
        line = rest;
    }
    while let [rest @ .., last] = line {
        if !is_c_space(*last) {
            break;
        }
        line = rest;
    }
    line
}

/// The settings of `service` in a service file's `contents`; `file` names it in errors.
fn parse(contents: &[u8], service: &str, file: &Path) -> Result<Option<Vec<Setting>>, ConfigError> {
    let error = |make: fn(PathBuf, usize) -> ConfigError, line| make(file.to_path_buf(), line);
    let mut found = false;
    let mut settings: Vec<Setting> = Vec::new();
    let mut rest = contents;
    let mut line_number = 0;
    while !rest.is_empty() {
        line_number += 1;
        // A line, and its length as `fgets` would read it (with its newline).
        let (line, read) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], end + 1),
            None => (rest, rest.len()),
        };
        rest = &rest[read..];
        if read >= LINE_BUFFER - 1 {
            return Err(error(|file, line| ConfigError::ServiceFileLineTooLong { file, line }, line_number));
        }
        let line = trim(line);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        if let Some(section) = line.strip_prefix(b"[") {
            if found {
                break;
            }
            found =
                section.strip_prefix(service.as_bytes()).is_some_and(|after| after.first() == Some(&b']'));
            continue;
        }
        if !found {
            continue;
        }
        if line.starts_with(b"ldap") {
            return Err(error(|file, line| ConfigError::ServiceFileLdap { file, line }, line_number));
        }
        let syntax = || error(|file, line| ConfigError::ServiceFileSyntax { file, line }, line_number);
        let equals = line.iter().position(|&b| b == b'=').ok_or_else(syntax)?;
        let (name, value) = (&line[..equals], &line[equals + 1..]);
        if name == b"service" {
            return Err(error(|file, line| ConfigError::ServiceFileNested { file, line }, line_number));
        }
        let known = std::str::from_utf8(name).ok().and_then(keyword).ok_or_else(syntax)?;
        let value = String::from_utf8(value.to_vec())
            .map_err(|_| error(|file, line| ConfigError::ServiceFileNotUtf8 { file, line }, line_number))?;
        if settings.iter().all(|s| s.keyword != known.name) {
            settings.push(Setting { keyword: known.name, value, line: line_number });
        }
    }
    Ok(found.then_some(settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::env::MapEnvironment;

    const FILE: &str = "/etc/pg_service.conf";

    /// Keyword, value and line of each setting.
    type Lines = Vec<(&'static str, String, usize)>;

    fn settings(contents: &str, service: &str) -> Result<Option<Lines>, ConfigError> {
        let parsed = parse(contents.as_bytes(), service, Path::new(FILE))?;
        Ok(parsed.map(|s| s.into_iter().map(|s| (s.keyword, s.value, s.line)).collect()))
    }

    fn at(line: usize) -> (PathBuf, usize) {
        (PathBuf::from(FILE), line)
    }

    /// The file `psql` 15 and 17 were run against (as `~/.pg_service.conf`); what each
    /// service gave there is in the comments.
    const PSQL_CHECKED: &str = "\
# comment
junk outside any group
[svc]
host=127.0.0.1
port=45432
  user=spaced   
application_name=  lead
application_name=second
[svc2]
host = 127.0.0.1
[svc3]
service=x
[svc4]
nonsense
[svc5]
foo=bar
[svc6]  trailing
host=127.0.0.1
[svc7
host=127.0.0.1
[]
user=emptyname
";

    #[test]
    fn sections_keywords_and_whitespace_as_libpq_reads_them() {
        // psql "service=svc": user "spaced", application_name "  lead" (the first line wins,
        // leading whitespace of a value is kept, the line's ends are trimmed).
        assert_eq!(
            settings(PSQL_CHECKED, "svc").unwrap().unwrap(),
            [
                ("host", "127.0.0.1".to_string(), 4),
                ("port", "45432".to_string(), 5),
                ("user", "spaced".to_string(), 6),
                ("application_name", "  lead".to_string(), 7),
            ]
        );
        // psql "service=svc6": found, whatever follows the `]`.
        assert_eq!(settings(PSQL_CHECKED, "svc6").unwrap().unwrap(), [("host", "127.0.0.1".to_string(), 18)]);
        // psql "service=svc7": definition of service "svc7" not found.
        assert_eq!(settings(PSQL_CHECKED, "svc7").unwrap(), None);
        // psql "service=''": the section `[]`.
        assert_eq!(settings(PSQL_CHECKED, "").unwrap().unwrap(), [("user", "emptyname".to_string(), 22)]);
        assert_eq!(settings(PSQL_CHECKED, "nope").unwrap(), None);
    }

    #[test]
    fn errors_name_the_file_and_line_in_libpqs_words() {
        let syntax = |line| {
            let (file, line) = at(line);
            ConfigError::ServiceFileSyntax { file, line }
        };
        // psql: syntax error in service file "/tmp/h1exp/home/.pg_service.conf", line 10
        assert_eq!(settings(PSQL_CHECKED, "svc2"), Err(syntax(10)));
        assert_eq!(syntax(10).to_string(), r#"syntax error in service file "/etc/pg_service.conf", line 10"#);
        // psql: nested service specifications not supported in service file "...", line 12
        let (file, line) = at(12);
        let nested = settings(PSQL_CHECKED, "svc3").unwrap_err();
        assert_eq!(nested, ConfigError::ServiceFileNested { file, line });
        assert_eq!(
            nested.to_string(),
            r#"nested service specifications not supported in service file "/etc/pg_service.conf", line 12"#
        );
        // psql: a line without `=` and an unknown keyword are both syntax errors.
        assert_eq!(settings(PSQL_CHECKED, "svc4"), Err(syntax(14)));
        assert_eq!(settings(PSQL_CHECKED, "svc5"), Err(syntax(16)));
        // libpq's old requiressl is not a keyword of the service file.
        assert_eq!(settings("[a]\nrequiressl=1\n", "a"), Err(syntax(2)));
        let (file, line) = at(2);
        assert_eq!(
            settings("[a]\nldap://ldap.example.com/dc=x\n", "a"),
            Err(ConfigError::ServiceFileLdap { file, line })
        );
        let (file, line) = at(2);
        assert_eq!(
            parse(b"[a]\nhost=\xff\n", "a", Path::new(FILE)),
            Err(ConfigError::ServiceFileNotUtf8 { file, line })
        );
    }

    #[test]
    fn only_the_wanted_section_is_read_and_the_next_one_ends_it() {
        let file = "[other]\nthis is not a setting\n\n  # indented comment\n[a]\r\nhost=x\r\n\n[b]\nhost=y\n[a]\nport=1\n";
        assert_eq!(settings(file, "a").unwrap().unwrap(), [("host", "x".to_string(), 6)]);
        assert_eq!(settings(file, "b").unwrap().unwrap(), [("host", "y".to_string(), 9)]);
        // A name must match exactly, and then `]`.
        assert_eq!(settings("[ab]\nhost=x\n", "a").unwrap(), None);
        assert_eq!(settings("[a]\n", "a").unwrap(), Some(vec![]));
        // Values may be empty or hold `=`.
        assert_eq!(
            settings("[a]\nhost=\noptions=-c a=b", "a").unwrap().unwrap(),
            [("host", String::new(), 2), ("options", "-c a=b".to_string(), 3)]
        );
    }

    #[test]
    fn a_line_filling_libpqs_buffer_is_an_error() {
        let line =
            |len: usize| format!("[a]\napplication_name={}\n", "x".repeat(len - "application_name=".len()));
        // 1021 bytes and a newline fit in fgets's 1024-byte buffer with room to spare; 1022 do not.
        assert!(settings(&line(1021), "a").is_ok());
        let (file, line_no) = at(2);
        assert_eq!(
            settings(&line(1022), "a"),
            Err(ConfigError::ServiceFileLineTooLong { file, line: line_no })
        );
        assert_eq!(
            ConfigError::ServiceFileLineTooLong { file: FILE.into(), line: 2 }.to_string(),
            r#"line 2 too long in service file "/etc/pg_service.conf""#
        );
        // Even outside the wanted section.
        assert!(settings(&format!("{}\n[a]\n", "#".repeat(2000)), "a").is_err());
    }

    fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn the_user_file_hides_the_system_file_and_a_missing_service_is_an_error() {
        let home = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        let user_file = write(home.path(), ".pg_service.conf", "[both]\nhost=user\n");
        let system_file = write(sys.path(), "pg_service.conf", "[both]\nport=1\n[sysonly]\nhost=sys\n");
        let env = MapEnvironment::new().home(home.path()).var("PGSYSCONFDIR", sys.path());

        // Checked with psql (`svc` in both files): only the user file's settings apply.
        let both = lookup("both", None, &env).unwrap();
        assert_eq!(both.file, user_file);
        assert_eq!(both.settings, [Setting { keyword: "host", value: "user".into(), line: 2 }]);
        let sysonly = lookup("sysonly", None, &env).unwrap();
        assert_eq!(sysonly.file, system_file);
        assert_eq!(sysonly.settings, [Setting { keyword: "host", value: "sys".into(), line: 4 }]);

        // psql: definition of service "nope" not found
        let missing = lookup("nope", None, &env).unwrap_err();
        assert_eq!(missing.to_string(), r#"definition of service "nope" not found"#);
        // Without PGSYSCONFDIR the compiled-in directory is used instead.
        let env = MapEnvironment::new().home(home.path());
        assert_eq!(lookup("sysonly", None, &env), Err(ConfigError::ServiceNotFound("sysonly".into())));
    }

    #[test]
    fn pgservicefile_and_servicefile_replace_the_home_file_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let home = write(dir.path(), ".pg_service.conf", "[a]\nhost=home\n");
        let named = write(dir.path(), "named.conf", "[a]\nhost=named\n");
        let other = write(dir.path(), "other.conf", "[a]\nhost=other\n");
        let env = MapEnvironment::new()
            .home(dir.path())
            .var("PGSERVICEFILE", &named)
            .var("PGSYSCONFDIR", "/nonexistent");
        assert_eq!(lookup("a", None, &env).unwrap().file, named);
        assert_eq!(lookup("a", Some(&other), &env).unwrap().file, other);
        assert_eq!(lookup("a", None, &MapEnvironment::new().home(dir.path())).unwrap().file, home);

        // psql: service file "/tmp/h1exp/none" not found; and with PGSERVICEFILE= empty,
        // service file "" not found.
        let gone = dir.path().join("gone.conf");
        let env = MapEnvironment::new().home(dir.path()).var("PGSERVICEFILE", &gone);
        let error = lookup("a", None, &env).unwrap_err();
        assert_eq!(error.to_string(), format!("service file \"{}\" not found", gone.display()));
        let env = MapEnvironment::new().var("PGSERVICEFILE", "");
        assert_eq!(lookup("a", None, &env).unwrap_err().to_string(), r#"service file "" not found"#);
        // A missing ~/.pg_service.conf is no error.
        let empty = tempfile::tempdir().unwrap();
        let env = MapEnvironment::new().home(empty.path()).var("PGSYSCONFDIR", dir.path());
        assert_eq!(lookup("a", None, &env), Err(ConfigError::ServiceNotFound("a".into())));
    }
}
