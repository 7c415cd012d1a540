//! What resolving connection settings reads from the process, behind one trait: the `PG*`
//! variables, the operating-system user, the home directory, where the system-wide service file
//! lives and whether the default Unix-socket directory exists.
//!
//! [`SystemEnvironment`] reads the real process; [`MapEnvironment`] is a fake for tests, so that
//! resolution is tested without setting variables in the test process (which races with every
//! other test). Files the environment points at (service and password files) are read from the
//! real file system either way: tests write temporary files and point the fake at them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::error::ConfigError;

/// Where Debian's libpq looks for the system-wide `pg_service.conf` when `PGSYSCONFDIR` is
/// unset (its compiled-in `SYSCONFDIR`).
pub const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// Debian's libpq's compiled-in Unix-socket directory (`DEFAULT_PGSOCKET_DIR`): where a
/// connection without a host goes, and the directory the password file calls `localhost`.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// What connection-settings resolution asks of the process it runs in.
pub trait Environment {
    /// The environment variable `name`; `None` when unset. A variable set to the empty string
    /// is `Some("")`: libpq takes it as a value (an empty `PGSSLMODE` is an invalid sslmode).
    fn var_os(&self, name: &str) -> Option<OsString>;

    /// The name of the operating-system user, the default `user`. As libpq, the effective user
    /// id's entry in the user database (`getpwuid(geteuid())`), never `$USER`.
    fn user_name(&self) -> Result<String, ConfigError>;

    /// The home directory holding `.pg_service.conf`, `.pgpass` and `.postgresql/`: as libpq,
    /// `$HOME` if set and not empty, else the effective user's entry in the user database.
    fn home_dir(&self) -> Option<PathBuf>;

    /// The directory connections without a host go to, [`DEFAULT_SOCKET_DIR`], if it exists on
    /// this machine; `None` makes the default host `localhost` instead. libpq always uses its
    /// compiled-in directory; we fall back to TCP so that a machine without a local server
    /// (where libpq would fail with "No such file or directory") reaches `localhost`.
    fn default_socket_dir(&self) -> Option<PathBuf>;

    /// The directory of the system-wide `pg_service.conf`: `PGSYSCONFDIR` if set (even empty,
    /// as libpq), else [`DEFAULT_SYSCONFDIR`].
    fn sysconfdir(&self) -> PathBuf {
        self.var_os("PGSYSCONFDIR").map_or_else(|| PathBuf::from(DEFAULT_SYSCONFDIR), PathBuf::from)
    }
}

/// The real process: its environment variables and its effective user.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn var_os(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }

    fn user_name(&self) -> Result<String, ConfigError> {
        let uid = nix::unistd::Uid::effective();
        match nix::unistd::User::from_uid(uid) {
            Ok(Some(user)) => Ok(user.name),
            // libpq's two messages for these cases.
            Ok(None) => Err(ConfigError::OsUser(format!("local user with ID {uid} does not exist"))),
            Err(e) => Err(ConfigError::OsUser(format!("could not look up local user ID {uid}: {e}"))),
        }
    }

    fn home_dir(&self) -> Option<PathBuf> {
        match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => Some(PathBuf::from(home)),
            _ => nix::unistd::User::from_uid(nix::unistd::Uid::effective()).ok().flatten().map(|u| u.dir),
        }
    }

    fn default_socket_dir(&self) -> Option<PathBuf> {
        let dir = Path::new(DEFAULT_SOCKET_DIR);
        dir.is_dir().then(|| dir.to_path_buf())
    }
}

/// A made-up environment for tests: the variables, user, home directory and socket directory
/// it is given, nothing else.
///
/// ```
/// use bytebase_signal_connect::{Environment, MapEnvironment};
///
/// let env = MapEnvironment::new().var("PGHOST", "db.example.com").user("alice");
/// assert_eq!(env.var_os("PGHOST"), Some("db.example.com".into()));
/// assert_eq!(env.user_name().unwrap(), "alice");
/// assert_eq!(env.home_dir(), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MapEnvironment {
    vars: BTreeMap<String, OsString>,
    user: Option<String>,
    home: Option<PathBuf>,
    socket_dir: Option<PathBuf>,
}

impl MapEnvironment {
    /// No variables, no user, no home directory and no default socket directory (so the
    /// default host is `localhost`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the variable `name` (to the empty string, too: that is not unsetting it).
    pub fn var(mut self, name: impl Into<String>, value: impl Into<OsString>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Sets the operating-system user's name.
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.user = Some(name.into());
        self
    }

    /// Sets the home directory.
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }

    /// Sets the directory [`Environment::default_socket_dir`] reports as existing.
    pub fn socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.socket_dir = Some(dir.into());
        self
    }
}

impl Environment for MapEnvironment {
    fn var_os(&self, name: &str) -> Option<OsString> {
        self.vars.get(name).cloned()
    }

    fn user_name(&self) -> Result<String, ConfigError> {
        self.user.clone().ok_or_else(|| ConfigError::OsUser("local user with ID 4242 does not exist".into()))
    }

    fn home_dir(&self) -> Option<PathBuf> {
        self.home.clone()
    }

    fn default_socket_dir(&self) -> Option<PathBuf> {
        self.socket_dir.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysconfdir_is_pgsysconfdir_even_when_empty_else_the_compiled_default() {
        assert_eq!(MapEnvironment::new().sysconfdir(), Path::new(DEFAULT_SYSCONFDIR));
        assert_eq!(MapEnvironment::new().var("PGSYSCONFDIR", "/etc/x").sysconfdir(), Path::new("/etc/x"));
        // libpq formats "%s/pg_service.conf" with the empty string: "/pg_service.conf".
        assert_eq!(MapEnvironment::new().var("PGSYSCONFDIR", "").sysconfdir(), Path::new(""));
    }

    #[test]
    fn the_real_user_is_the_effective_uid_entry() {
        let name = SystemEnvironment.user_name().expect("the test runs as a known user");
        assert!(!name.is_empty());
        let uid = nix::unistd::Uid::effective();
        assert_eq!(nix::unistd::User::from_uid(uid).unwrap().unwrap().name, name);
    }

    #[test]
    fn the_fake_reports_exactly_what_it_was_given() {
        let env = MapEnvironment::new().var("PGPORT", "").home("/h").socket_dir("/s");
        assert_eq!(env.var_os("PGPORT"), Some(OsString::new()));
        assert_eq!(env.var_os("PGHOST"), None);
        assert_eq!(env.home_dir(), Some(PathBuf::from("/h")));
        assert_eq!(env.default_socket_dir(), Some(PathBuf::from("/s")));
        assert!(matches!(env.user_name(), Err(ConfigError::OsUser(_))));
    }
}
