//! `${VAR}` means the same on a laptop and in AWS: the environment first, else the SecureString
//! `<prefix>/VAR` in SSM. Keys never sit in a stack parameter, an environment variable of the stack, a log
//! line or `/status`.

use crate::FleetError;
use ethnode_aws::Ssm;
use std::collections::HashMap;

/// The SSM path under which a stack's `${VAR}` values are stored.
pub fn secrets_prefix(stack: &str) -> String {
    format!("/ethnode/{stack}/secrets")
}

/// `texts` with every `${VAR}` replaced: from the environment, else (with a prefix) from SSM. A variable
/// found in neither is an error that names it and where it was looked for.
pub async fn expand_secrets(
    texts: &[String],
    prefix: Option<&str>,
    region: Option<&str>,
) -> Result<Vec<String>, FleetError> {
    let mut values: HashMap<String, String> = HashMap::new();
    let mut ssm: Option<Ssm> = None;
    for name in texts.iter().flat_map(|t| ethnode_config::env_vars(t)) {
        if values.contains_key(&name) {
            continue;
        }
        if let Ok(v) = std::env::var(&name) {
            values.insert(name, v);
            continue;
        }
        let Some(prefix) = prefix else {
            return Err(FleetError::MissingSecret(format!(
                "${{{name}}} is not set: export {name}, or set aws.secrets_prefix to read it from SSM"
            )));
        };
        if ssm.is_none() {
            ssm = Some(Ssm::new(&ethnode_aws::sdk_config(region).await));
        }
        let path = format!("{}/{name}", prefix.trim_end_matches('/'));
        let value = ssm
            .as_ref()
            .expect("made above")
            .get(&path)
            .await?
            .ok_or_else(|| {
                FleetError::MissingSecret(format!(
                    "${{{name}}} is neither in the environment nor in SSM at {path}: export {name} and run `ethnode deploy` (it stores it there)"
                ))
            })?;
        values.insert(name, value);
    }
    Ok(texts
        .iter()
        .map(|t| ethnode_config::expand_env(t, &|k| values.get(k).cloned()))
        .collect())
}

/// Stores each `${VAR}` of `texts` that is set in the environment as the SecureString `<prefix>/VAR`;
/// one that is not set must already be there. Returns the parameter names written.
pub async fn store_secrets(
    ssm: &Ssm,
    prefix: &str,
    texts: &[String],
) -> Result<Vec<String>, FleetError> {
    let mut written = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for name in texts.iter().flat_map(|t| ethnode_config::env_vars(t)) {
        if !seen.insert(name.clone()) {
            continue;
        }
        let path = format!("{}/{name}", prefix.trim_end_matches('/'));
        match std::env::var(&name) {
            Ok(value) => {
                ssm.put_secret(&path, &value).await?;
                written.push(path);
            }
            Err(_) if ssm.get(&path).await?.is_some() => {}
            Err(_) => {
                return Err(FleetError::MissingSecret(format!(
                    "${{{name}}} is used in monitor.references but not set here nor stored at {path}: export {name} and deploy again"
                )));
            }
        }
    }
    Ok(written)
}
