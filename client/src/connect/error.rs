//! What is wrong with a connection string, a service file or a `PG*` variable.

/// A setting that cannot be used, named as libpq names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An unknown keyword.
    #[error("invalid connection option \"{0}\"")]
    InvalidOption(String),
}
