//! Before the clients start: the execution data directory keeps the storage mode it was created with, and
//! the consensus client gets a checkpoint sync endpoint that answers.

use ethnode_config::{Config, ConsensusClient, Network};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the execution data directory records its storage mode.
pub(crate) const MODE_FILE: &str = ".ethnode-storage-mode";

/// The data directory was created in another storage mode.
#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    /// It says another mode.
    #[error(
        "{dir} holds a `{was}` node, and execution.mode is `{now}`: pruning is destructive, so a pruned node cannot become a less pruned one, and a switch the other way deletes history for good. Set execution.mode = \"{was}\" to keep this data, or move {dir} away to sync a `{now}` node from scratch (or start from a snapshot taken in that mode); to switch on purpose, write `{now}` into {marker}"
    )]
    Changed {
        /// The data directory.
        dir: PathBuf,
        /// The mode it records.
        was: String,
        /// The configured mode.
        now: String,
        /// The record.
        marker: PathBuf,
    },
    /// It has data but no record.
    #[error(
        "{dir} holds chain data but no record of its storage mode (it predates ethnode's modes; ethnode ran `--full` by default then, which keeps receipts for the last 10,064 blocks only). Set execution.mode = \"full\" to keep running it as it is, or, if it is another mode, write that into {marker} (e.g. `echo archive > {marker}`); or move {dir} away to sync a `{now}` node from scratch"
    )]
    Unrecorded {
        /// The data directory.
        dir: PathBuf,
        /// The configured mode.
        now: String,
        /// Where to write it.
        marker: PathBuf,
    },
    /// The record could not be read or written.
    #[error("storage mode record {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn has_data(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.file_name() != MODE_FILE)))
}

/// Refuses a data directory created in another mode; records the mode in a new one.
pub(crate) fn check_storage_mode(config: &Config) -> Result<(), ModeError> {
    if config.node.network == Network::Dev {
        return Ok(());
    }
    let dir = config.execution_data_dir();
    let marker = dir.join(MODE_FILE);
    let now = config.execution.mode.as_str();
    match std::fs::read_to_string(&marker) {
        Ok(was) if was.trim() == now => Ok(()),
        Ok(was) => Err(ModeError::Changed {
            dir,
            was: was.trim().to_owned(),
            now: now.to_owned(),
            marker,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Data from before ethnode recorded modes ran `--full`: that is what `full` names, so the
            // record can be written; any other mode cannot be checked and is refused.
            if has_data(&dir) && config.execution.mode != ethnode_config::StorageMode::Full {
                return Err(ModeError::Unrecorded {
                    dir,
                    now: now.to_owned(),
                    marker,
                });
            }
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&marker, format!("{now}\n")))
                .map_err(|source| ModeError::Io {
                    path: marker,
                    source,
                })
        }
        Err(source) => Err(ModeError::Io {
            path: marker,
            source,
        }),
    }
}

/// The newest modification time under `dir` (bounded walk: a beacon database has thousands of files, not
/// millions), or none when it holds no file.
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > 200_000 {
                // Not all seen: never judge a database stale on a partial look.
                return Some(std::time::SystemTime::now());
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if let Ok(m) = meta.modified() {
                newest = newest.max(Some(m));
            }
        }
    }
    newest
}

/// Drops a consensus database last written more than `consensus.max_db_age_hours` ago — in practice one
/// restored from a snapshot — so that the client checkpoint-syncs (minutes) instead of range-syncing
/// from a days-old head (slower, and unsafe past the weak-subjectivity period). Beacon data is the
/// network's, not the operator's: nothing is lost that the network cannot give back. Returns its age.
pub(crate) fn drop_stale_consensus_db(config: &Config) -> std::io::Result<Option<Duration>> {
    let hours = config.consensus.max_db_age_hours;
    if hours == 0 || config.consensus.client_for(config.node.network) == ConsensusClient::None {
        return Ok(None);
    }
    let dir = config.consensus_data_dir();
    let Some(newest) = newest_mtime(&dir) else {
        return Ok(None);
    };
    let age = newest.elapsed().unwrap_or_default();
    if age <= Duration::from_secs(hours * 3600) {
        return Ok(None);
    }
    tracing::warn!(
        dir = %dir.display(),
        age_hours = age.as_secs() / 3600,
        max_db_age_hours = hours,
        "consensus database is older than consensus.max_db_age_hours (restored from a snapshot?): removing it so the client checkpoint-syncs"
    );
    for e in std::fs::read_dir(&dir)? {
        let path = e?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(Some(age))
}

/// The network's genesis validators root: what `/eth/v1/beacon/genesis` of an endpoint serving it says.
fn genesis_validators_root(network: Network) -> Option<&'static str> {
    match network {
        Network::Mainnet => {
            Some("0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95")
        }
        Network::Sepolia => {
            Some("0xd8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078")
        }
        Network::Hoodi => {
            Some("0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f")
        }
        Network::Dev => None,
    }
}

#[derive(serde::Deserialize)]
struct Genesis {
    data: GenesisData,
}

#[derive(serde::Deserialize)]
struct GenesisData {
    genesis_validators_root: String,
}

/// The first checkpoint endpoint whose beacon API serves this network's genesis (a mainnet endpoint on a
/// Sepolia node is skipped), when the consensus client will sync from a checkpoint (an empty data
/// directory); none otherwise, or when none answers (the profile then passes the first one listed and
/// the client reports its own error).
pub(crate) async fn choose_checkpoint(config: &Config, timeout: Duration) -> Option<String> {
    if config.consensus.client_for(config.node.network) == ConsensusClient::None
        || has_data(&config.consensus_data_dir())
    {
        return None;
    }
    let http = reqwest::Client::builder().timeout(timeout).build().ok()?;
    for url in ethnode_clients::checkpoint_urls(config) {
        let probe = format!("{}/eth/v1/beacon/genesis", url.trim_end_matches('/'));
        let answer = async {
            let g: Genesis = http
                .get(&probe)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| e.without_url().to_string())?
                .json()
                .await
                .map_err(|e| e.without_url().to_string())?;
            match genesis_validators_root(config.node.network) {
                Some(root) if !g.data.genesis_validators_root.eq_ignore_ascii_case(root) => {
                    Err(format!(
                        "it serves another network (genesis validators root {})",
                        g.data.genesis_validators_root
                    ))
                }
                _ => Ok(()),
            }
        };
        match answer.await {
            Ok(()) => {
                tracing::info!(url = %ethnode_config::redact_url(&url), "checkpoint sync endpoint answers");
                return Some(url);
            }
            Err(e) => tracing::warn!(
                url = %ethnode_config::redact_url(&url),
                error = %e,
                "checkpoint sync endpoint unusable; trying the next"
            ),
        }
    }
    tracing::warn!("no checkpoint sync endpoint answered");
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethnode_config::StorageMode;

    fn config(dir: &Path) -> Config {
        let mut c = Config::default();
        c.node.data_dir = dir.to_path_buf();
        c
    }

    #[test]
    fn a_data_dir_keeps_the_mode_it_was_created_with() {
        let d = tempfile::tempdir().unwrap();
        let mut c = config(d.path());
        check_storage_mode(&c).unwrap();
        let marker = c.execution_data_dir().join(MODE_FILE);
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "post-merge\n");
        std::fs::write(c.execution_data_dir().join("db"), "x").unwrap();
        check_storage_mode(&c).unwrap();
        c.execution.mode = StorageMode::Archive;
        let e = check_storage_mode(&c).unwrap_err().to_string();
        assert!(
            e.contains("`post-merge` node") && e.contains("execution.mode = \"post-merge\""),
            "{e}"
        );
        // Nothing was touched: the record still says what the data is.
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "post-merge\n");
    }

    #[test]
    fn data_without_a_record_is_refused_with_the_fix_unless_it_is_the_old_default() {
        let d = tempfile::tempdir().unwrap();
        let mut c = config(d.path());
        std::fs::create_dir_all(c.execution_data_dir().join("mainnet")).unwrap();
        let e = check_storage_mode(&c).unwrap_err().to_string();
        assert!(e.contains("execution.mode = \"full\""), "{e}");
        assert!(!c.execution_data_dir().join(MODE_FILE).exists());
        // `full` is what such a node ran: recorded, and it starts.
        c.execution.mode = StorageMode::Full;
        check_storage_mode(&c).unwrap();
        let marker = c.execution_data_dir().join(MODE_FILE);
        assert_eq!(std::fs::read_to_string(marker).unwrap(), "full\n");
    }

    /// A beacon database file last written `age_hours` ago.
    fn beacon_db(cl: &Path, age_hours: u64) -> PathBuf {
        std::fs::create_dir_all(cl.join("beacon/chain_db")).unwrap();
        let file = cl.join("beacon/chain_db/000001.sst");
        std::fs::write(&file, "x").unwrap();
        let when = std::time::SystemTime::now() - Duration::from_secs(age_hours * 3600);
        let f = std::fs::File::options().write(true).open(&file).unwrap();
        f.set_modified(when).unwrap();
        file
    }

    #[test]
    fn a_stale_consensus_database_is_dropped_a_fresh_one_kept() {
        let d = tempfile::tempdir().unwrap();
        let c = config(d.path());
        let cl = c.consensus_data_dir();
        // Fresh (an agent or container restart): kept.
        let file = beacon_db(&cl, 0);
        assert_eq!(drop_stale_consensus_db(&c).unwrap(), None);
        assert!(file.exists());
        // Last written two days ago (a volume restored from yesterday's snapshot): dropped.
        beacon_db(&cl, 48);
        let age = drop_stale_consensus_db(&c).unwrap().unwrap();
        assert!(age >= Duration::from_secs(47 * 3600));
        assert!(!cl.join("beacon").exists() && cl.exists());
        // Off: never.
        let mut off = c.clone();
        off.consensus.max_db_age_hours = 0;
        let file = beacon_db(&cl, 48);
        assert_eq!(drop_stale_consensus_db(&off).unwrap(), None);
        assert!(file.exists());
    }

    /// A beacon API that answers one genesis query with `root`.
    async fn genesis_server(root: &'static str) -> (String, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", live.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut s, _) = live.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /eth/v1/beacon/genesis "));
            let body = format!(
                r#"{{"data":{{"genesis_time":"1606824023","genesis_validators_root":"{root}","genesis_fork_version":"0x00000000"}}}}"#
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).await.unwrap();
        });
        (url, server)
    }

    #[tokio::test]
    async fn the_first_checkpoint_endpoint_that_serves_this_network_is_chosen() {
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_url = format!("http://{}", dead.local_addr().unwrap());
        drop(dead);
        let (sepolia, s1) =
            genesis_server(genesis_validators_root(Network::Sepolia).unwrap()).await;
        let (mainnet, s2) =
            genesis_server(genesis_validators_root(Network::Mainnet).unwrap()).await;
        let d = tempfile::tempdir().unwrap();
        let mut c = config(d.path());
        c.consensus.checkpoint_sync_urls = vec![dead_url, sepolia, mainnet.clone()];
        assert_eq!(
            choose_checkpoint(&c, Duration::from_secs(2)).await,
            Some(mainnet)
        );
        s1.await.unwrap();
        s2.await.unwrap();
        // A consensus database exists: the client resumes from it and ignores any checkpoint.
        std::fs::create_dir_all(c.consensus_data_dir().join("beacon")).unwrap();
        assert_eq!(choose_checkpoint(&c, Duration::from_secs(2)).await, None);
    }
}
