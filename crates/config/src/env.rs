//! `ETHNODE_<SECTION>_<KEY>` overrides, applied on top of the file.

use crate::{CONFIG_ENV, Config, ConfigError};
use toml::{Table, Value};

/// Variables with the prefix that are not config keys.
/// `ETHNODE_GATEWAY_KEYS` and `ETHNODE_GATEWAY_KEY_HASHES` are `ethnode gateway`'s `--key` and
/// `--key-sha256`, not config keys (`gateway.keys` is a list of tables).
const RESERVED: &[&str] = &[
    CONFIG_ENV,
    "ETHNODE_LOG",
    "ETHNODE_LOG_FORMAT",
    "ETHNODE_GATEWAY_KEYS",
    "ETHNODE_GATEWAY_KEY_HASHES",
];

/// Applies every `ETHNODE_*` variable in `vars` to `config`.
///
/// Section names hold no underscore, so `ETHNODE_READINESS_MAX_LAG_BLOCKS` splits unambiguously into
/// `readiness.max_lag_blocks`. Values are read as TOML (`8545`, `true`, `["--a", "--b"]`) where the key
/// holds a non-string, and taken verbatim where it holds a string, so `1.0` stays a version string.
pub(crate) fn apply(config: Config, vars: &[(String, String)]) -> Result<Config, ConfigError> {
    let overrides: Vec<&(String, String)> = vars
        .iter()
        .filter(|(k, _)| k.starts_with("ETHNODE_") && !RESERVED.contains(&k.as_str()))
        .filter(|(k, _)| !k.starts_with("ETHNODE_TEST_"))
        .collect();
    if overrides.is_empty() {
        return Ok(config);
    }
    let mut root: Table = Table::try_from(&config).map_err(|e| ConfigError::Env {
        var: "ETHNODE_*".into(),
        message: e.to_string(),
    })?;
    let defaults = Table::try_from(Config::default()).unwrap_or_default();
    for (var, raw) in overrides {
        let (section, key) = split(var, &defaults)?;
        let table = root
            .entry(section.clone())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .ok_or_else(|| unknown(var))?;
        let string_like = match table.get(&key) {
            Some(v) => v.is_str(),
            None => probe(&section, &key) == Probe::StringLike,
        };
        let value = if string_like {
            Value::String(raw.clone())
        } else {
            parse_value(raw).ok_or_else(|| ConfigError::Env {
                var: var.clone(),
                message: format!(
                    "`{raw}` is not a value for {section}.{key}; write it as in ethnode.toml (a number, true/false, or [\"a\", \"b\"])"
                ),
            })?
        };
        table.insert(key, value);
    }
    Value::Table(root)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Env {
            var: "ETHNODE_*".into(),
            message: format!("{}; check the ETHNODE_* variables you set", e.message()),
        })
}

/// Splits `ETHNODE_SECTION_KEY` into a known section and a key that exists in it or is optional there.
fn split(var: &str, defaults: &Table) -> Result<(String, String), ConfigError> {
    let rest = var.trim_start_matches("ETHNODE_").to_ascii_lowercase();
    let (section, key) = rest.split_once('_').ok_or_else(|| unknown(var))?;
    if !defaults.contains_key(section) || key.is_empty() {
        return Err(unknown(var));
    }
    if probe(section, key) == Probe::Unknown {
        return Err(unknown(var));
    }
    Ok((section.to_owned(), key.to_owned()))
}

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Unknown,
    StringLike,
    Typed,
}

/// What kind of key `section.key` is, found by parsing a one-key document: this also covers optional
/// fields, which serialize to nothing while unset.
fn probe(section: &str, key: &str) -> Probe {
    let doc = format!("[{section}]\n{key} = \"\"\n");
    match toml::from_str::<Config>(&doc) {
        Ok(_) => Probe::StringLike,
        Err(e) if e.message().contains("unknown field") => Probe::Unknown,
        Err(e) if e.message().contains("invalid type") => Probe::Typed,
        // Parsed as a string and refused for its content (an IP address, an enum name).
        Err(_) => Probe::StringLike,
    }
}

fn parse_value(raw: &str) -> Option<Value> {
    let doc: Table = toml::from_str(&format!("v = {raw}")).ok()?;
    doc.get("v").cloned()
}

fn unknown(var: &str) -> ConfigError {
    ConfigError::Env {
        var: var.to_owned(),
        message: "no such config key; variables are ETHNODE_<SECTION>_<KEY> for a key of ethnode.example.toml (e.g. ETHNODE_PORTS_HTTP), or unset it".into(),
    }
}
