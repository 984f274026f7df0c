//! ethnode's configuration: the typed `ethnode.toml`, `ETHNODE_*` environment overrides and validation.
//!
//! Loading is layered: built-in defaults → the TOML file → `ETHNODE_<SECTION>_<KEY>` variables. The file
//! is deserialized straight into the typed structs so that a bad key or value is reported with its line;
//! environment overrides are applied afterwards and reported by variable name. [`Config::validate`] then
//! checks what types cannot (clashing ports, a dev network with a mainnet client, …) and every problem
//! names its key and the fix.

mod env;
mod error;
mod model;
mod validate;

pub use error::{ConfigError, Problem};
pub use model::{
    AgentSection, AwsSection, Config, ConsensusClient, ConsensusSection, DeploySection, DevSection,
    DnsMode, DnsSection, ExecutionClient, ExecutionSection, MonitorSection, Network, NodeSection,
    PortsSection, ReadinessSection, SnapshotSection, StorageMode, VolumeType, ZoneType,
};
pub use validate::Proto;

use std::path::{Path, PathBuf};

/// Name of the config file looked up in the working directory when no path is given.
pub const DEFAULT_FILE: &str = "ethnode.toml";

/// Environment variable that names the config file.
pub const CONFIG_ENV: &str = "ETHNODE_CONFIG";

/// Where the configuration came from, for `ethnode config check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built-in defaults only: no file was given and `ethnode.toml` does not exist.
    Defaults,
    /// This file (plus environment overrides).
    File(PathBuf),
}

impl Config {
    /// Parses TOML text; `origin` names the file in error messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads and parses one file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// The whole load: file (explicit path, else `$ETHNODE_CONFIG`, else `./ethnode.toml` if present),
    /// then the given environment's `ETHNODE_*` overrides, then validation.
    pub fn load<I>(explicit: Option<&Path>, vars: I) -> Result<(Self, Source), ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let from_env = vars
            .iter()
            .find(|(k, _)| k == CONFIG_ENV)
            .map(|(_, v)| PathBuf::from(v));
        let (base, source) = match explicit.map(Path::to_path_buf).or(from_env) {
            Some(path) => (Self::from_file(&path)?, Source::File(path)),
            None if Path::new(DEFAULT_FILE).exists() => {
                let path = PathBuf::from(DEFAULT_FILE);
                (Self::from_file(&path)?, Source::File(path))
            }
            None => (Self::default(), Source::Defaults),
        };
        let config = env::apply(base, &vars)?;
        config.validate()?;
        Ok((config, source))
    }

    /// The configuration as TOML, with every default filled in.
    pub fn to_toml(&self) -> String {
        // Serializing plain structs of strings, numbers and tables cannot fail.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// A URL as it may appear in logs: scheme, host and port only. Reference URLs carry API keys in their
/// path or query (`/v3/KEY`, `?apikey=`), which must never be logged.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // user:password@host
    let host = host.rsplit('@').next().unwrap_or(host);
    let hidden = rest.len() > host.len() && rest != format!("{host}/");
    if scheme.is_empty() {
        "<not a URL>".into()
    } else if hidden {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

/// Every URL in a free text (an error message, say) redacted with [`redact_url`]: transport errors quote
/// the URL they failed on, key and all.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = ["http://", "https://", "ws://", "wss://"]
        .iter()
        .filter_map(|s| rest.find(s))
        .min()
    {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ','))
            .map_or(rest.len(), |e| start + e);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The names of the `${VAR}`s in a text, in order of appearance.
pub fn env_vars(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start + 2..].find('}') else {
            break;
        };
        names.push(rest[start + 2..start + 2 + end].to_owned());
        rest = &rest[start + 3 + end..];
    }
    names
}

/// Replaces `${VAR}` with the environment variable's value (empty when unset).
pub fn expand_env(text: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find('}') {
            Some(end) => {
                let name = &rest[start + 2..start + 2 + end];
                out.push_str(&vars(name).unwrap_or_default());
                rest = &rest[start + 3 + end..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
