//! Configuration errors: each says what is wrong, where, and how to fix it.

use std::fmt;
use std::path::PathBuf;

/// One problem found by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key, e.g. `ports.http`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.key, self.message, self.fix)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}; check the path (--config or ETHNODE_CONFIG) and its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (the message has line and column).
    #[error("{origin}: {message}\nsee ethnode.example.toml for every key and its allowed values")]
    Parse {
        /// File name.
        origin: String,
        /// toml's message, with the line, the snippet and the key.
        message: String,
    },
    /// An `ETHNODE_*` variable is unknown or its value does not fit the key.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Values that parse but do not make a working node.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}
