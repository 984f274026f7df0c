use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_str(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ethnode.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path), env(vars)).map(|(c, _)| c)
}

#[test]
fn empty_file_is_a_valid_mainnet_config() {
    let c = load_str("", &[]).unwrap();
    assert_eq!(c.node.network, Network::Mainnet);
    assert_eq!(
        c.execution.client_for(c.node.network),
        ExecutionClient::Reth
    );
    assert_eq!(
        c.consensus.client_for(c.node.network),
        ConsensusClient::Lighthouse
    );
    assert_eq!(c.ports.p2p, 30303);
    assert_eq!(c.jwt_path(), std::path::PathBuf::from("/data/jwt.hex"));
}

#[test]
fn dev_network_defaults_to_anvil_without_consensus() {
    let c = load_str("[node]\nnetwork = \"dev\"\n", &[]).unwrap();
    assert_eq!(
        c.execution.client_for(c.node.network),
        ExecutionClient::Anvil
    );
    assert_eq!(
        c.consensus.client_for(c.node.network),
        ConsensusClient::None
    );
    assert_eq!(
        c.execution_data_dir(),
        std::path::PathBuf::from("/data/anvil")
    );
}

#[test]
fn example_file_parses_and_validates() {
    let text = include_str!("../../../ethnode.example.toml");
    let c = Config::from_toml_str(text, "ethnode.example.toml").unwrap();
    c.validate().unwrap();
}

#[test]
fn example_file_documents_every_key() {
    let text = include_str!("../../../ethnode.example.toml");
    let full = toml::Table::try_from(Config::default()).unwrap();
    for (section, table) in &full {
        assert!(
            text.contains(&format!("[{section}]")),
            "ethnode.example.toml lacks [{section}]"
        );
        for key in table.as_table().unwrap().keys() {
            assert!(
                text.contains(&format!("{key} =")),
                "ethnode.example.toml lacks {section}.{key}"
            );
        }
    }
}

#[test]
fn env_overrides_file_values_with_types() {
    let c = load_str(
        "[ports]\nhttp = 1000\n",
        &[
            ("ETHNODE_PORTS_HTTP", "18545"),
            ("ETHNODE_READINESS_REFERENCE_RPC", "https://ref.example/v1"),
            ("ETHNODE_EXECUTION_EXTRA_ARGS", "[\"--a\", \"--b\"]"),
            ("ETHNODE_EXECUTION_VERSION", "1.0"),
            ("ETHNODE_EXECUTION_MODE", "archive"),
            ("ETHNODE_NODE_PUBLIC_IP", "203.0.113.7"),
            ("ETHNODE_LOG", "debug"),
            ("UNRELATED", "x"),
        ],
    )
    .unwrap();
    assert_eq!(c.ports.http, 18545);
    assert_eq!(
        c.readiness.reference_rpc.as_deref(),
        Some("https://ref.example/v1")
    );
    assert_eq!(c.execution.extra_args, vec!["--a", "--b"]);
    assert_eq!(c.execution.version.as_deref(), Some("1.0"));
    assert_eq!(c.execution.mode, crate::StorageMode::Archive);
    assert_eq!(c.node.public_ip, Some([203, 0, 113, 7].into()));
}

#[test]
fn config_path_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.toml");
    std::fs::write(&path, "[ports]\nagent = 9999\n").unwrap();
    let (c, source) =
        Config::load(None, env(&[("ETHNODE_CONFIG", path.to_str().unwrap())])).unwrap();
    assert_eq!(c.ports.agent, 9999);
    assert_eq!(source, Source::File(path));
}

#[test]
fn missing_explicit_file_is_a_read_error() {
    let err = Config::load(
        Some(std::path::Path::new("/nonexistent/ethnode.toml")),
        env(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("cannot read config file /nonexistent/ethnode.toml"),
        "{err}"
    );
    assert!(err.contains("--config"), "{err}");
}

/// A table of bad configs: (file, env, fragments the message must contain).
#[test]
fn bad_configs_are_refused_with_key_and_fix() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            "[node]\nnetwork = \"mainet\"\n",
            &[],
            &["line 2", "unknown variant `mainet`", "hoodi"],
        ),
        (
            "[node]\ndatadir = \"/x\"\n",
            &[],
            &["line 2", "unknown field `datadir`", "data_dir"],
        ),
        ("[nodes]\n", &[], &["line 1", "unknown field `nodes`"]),
        ("[ports]\nhttp = 70000\n", &[], &["line 2", "http"]),
        (
            "[ports]\nhttp = \"8545\"\n",
            &[],
            &["line 2", "invalid type"],
        ),
        (
            "[node]\nrpc_addr = \"localhost\"\n",
            &[],
            &["line 2", "rpc_addr"],
        ),
        ("[node\nnetwork = 1", &[], &["line 1"]),
        (
            "[ports]\nws = 8545\n",
            &[],
            &[
                "ports.ws",
                "port 8545/tcp is also used by ports.http",
                "another port",
            ],
        ),
        (
            "[ports]\nagent = 30303\n",
            &[],
            &["ports.p2p", "30303", "ports.agent"],
        ),
        ("[ports]\nhttp = 0\n", &[], &["ports.http", "port 0"]),
        (
            "[node]\nnetwork = \"dev\"\n[execution]\nclient = \"reth\"\n",
            &[],
            &["execution.client", "anvil"],
        ),
        (
            "[execution]\nclient = \"anvil\"\n",
            &[],
            &[
                "execution.client",
                "cannot follow mainnet",
                "node.network = \"dev\"",
            ],
        ),
        (
            "[consensus]\nclient = \"none\"\n",
            &[],
            &["consensus.client", "lighthouse"],
        ),
        (
            "[dns]\nname = \"bad name!\"\nhosted_zone_id = \"Z1\"\n",
            &[],
            &["dns.name", "not a DNS name"],
        ),
        (
            "[readiness]\nreference_rpc = \"infura\"\n",
            &[],
            &["readiness.reference_rpc", "http(s)"],
        ),
        (
            "[readiness]\nmax_head_age_secs = 0\n",
            &[],
            &["readiness.max_head_age_secs", "at least 1"],
        ),
        (
            "[node]\nnetwork = \"dev\"\n[dev]\nblock_time_secs = 200\n",
            &[],
            &["readiness.max_head_age_secs", "flap"],
        ),
        ("[agent]\ncrash_limit = 0\n", &[], &["agent.crash_limit"]),
        (
            "[execution]\nfull = true\n",
            &[],
            &[
                "execution.full",
                "replaced by execution.mode",
                "mode = \"full\"",
            ],
        ),
        (
            "[consensus]\ncheckpoint_sync_url = \"https://cp.example/k/SECRETKEY\"\n",
            &[],
            &[
                "consensus.checkpoint_sync_url",
                "checkpoint_sync_urls = [\"https://cp.example",
            ],
        ),
        (
            "[node]\ndata_dir = \"/d\"\n[consensus]\ndata_dir = \"/d\"\n",
            &[],
            &["consensus.data_dir", "contains node.data_dir"],
        ),
        (
            "[execution]\nclient = \"nethermind\"\nws_api = [\"eth\"]\n",
            &[],
            &["execution.ws_api", "one module list"],
        ),
        (
            "",
            &[("ETHNODE_PORTS_HTTPS", "1")],
            &[
                "ETHNODE_PORTS_HTTPS",
                "no such config key",
                "ETHNODE_PORTS_HTTP",
            ],
        ),
        (
            "",
            &[("ETHNODE_BOGUS", "1")],
            &["ETHNODE_BOGUS", "no such config key"],
        ),
        (
            "",
            &[("ETHNODE_PORTS_HTTP", "eighty")],
            &[
                "ETHNODE_PORTS_HTTP",
                "`eighty` is not a value for ports.http",
            ],
        ),
        (
            "",
            &[("ETHNODE_NODE_NETWORK", "mars")],
            &["ETHNODE_", "unknown variant `mars`"],
        ),
        (
            "",
            &[("ETHNODE_PORTS_WS", "8545")],
            &["ports.ws", "also used by ports.http"],
        ),
    ];
    for (file, vars, fragments) in cases {
        let err = match load_str(file, vars) {
            Ok(c) => panic!("accepted bad config {file:?} {vars:?}: {c:?}"),
            Err(e) => e.to_string(),
        };
        for f in *fragments {
            assert!(
                err.contains(f),
                "config {file:?} {vars:?}: message lacks {f:?}:\n{err}"
            );
        }
    }
}

#[test]
fn all_problems_are_reported_together() {
    let err = load_str("[ports]\nws = 8545\n[agent]\ncrash_limit = 0\n", &[]).unwrap_err();
    match err {
        ConfigError::Invalid(problems) => assert_eq!(problems.len(), 2, "{problems:?}"),
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn resolved_config_round_trips_through_toml() {
    let c = load_str(
        "[node]\nnetwork = \"sepolia\"\n[dns]\nname = \"a.b\"\nhosted_zone_id = \"Z9\"\n",
        &[],
    )
    .unwrap();
    let again = Config::from_toml_str(&c.to_toml(), "rendered").unwrap();
    assert_eq!(c, again);
}

#[test]
fn urls_are_redacted_for_logs() {
    assert_eq!(
        redact_url("https://mainnet.infura.io/v3/SECRETKEY"),
        "https://mainnet.infura.io/…"
    );
    assert_eq!(
        redact_url("https://eth.example.org?apikey=SECRET"),
        "https://eth.example.org/…"
    );
    assert_eq!(
        redact_url("https://user:pw@node.example:8545"),
        "https://node.example:8545/…"
    );
    assert_eq!(
        redact_url("http://127.0.0.1:8545/"),
        "http://127.0.0.1:8545"
    );
    assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
}

#[test]
fn env_references_are_expanded() {
    let vars = |k: &str| (k == "INFURA_KEY").then(|| "abc123".to_string());
    assert_eq!(
        expand_env("https://mainnet.infura.io/v3/${INFURA_KEY}", &vars),
        "https://mainnet.infura.io/v3/abc123"
    );
    assert_eq!(expand_env("https://x/${MISSING}/y", &vars), "https://x//y");
    assert_eq!(expand_env("no vars", &vars), "no vars");
}

#[test]
fn variables_are_listed_and_urls_in_messages_redacted() {
    assert_eq!(
        crate::env_vars("https://a/v3/${INFURA_KEY}?x=${B}&y=${unclosed"),
        vec!["INFURA_KEY".to_string(), "B".to_string()]
    );
    let msg =
        "error sending request for url (https://mainnet.infura.io/v3/0123456789abcdef): timed out";
    let redacted = crate::redact_urls_in(msg);
    assert_eq!(
        redacted,
        "error sending request for url (https://mainnet.infura.io/…): timed out"
    );
    assert_eq!(crate::redact_urls_in("no url here"), "no url here");
}

#[test]
fn the_default_chain_volume_follows_the_storage_mode() {
    let with = |toml: &str| load_str(toml, &[]).unwrap().chain_volume_gib();
    assert_eq!(with(""), 2048);
    assert_eq!(
        with("[execution]\nmode = \"archive\"\n"),
        4096,
        "archive: >= 3 TB"
    );
    assert_eq!(with("[execution]\nmode = \"full\"\n"), 1536);
    assert_eq!(with("[execution]\nmode = \"minimal\"\n"), 512);
    assert_eq!(
        with("[execution]\nmode = \"archive\"\n[deploy]\nvolume_size_gib = 8000\n"),
        8000
    );
    let e = load_str("[execution]\nmode = \"pruned\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("archive") && e.contains("post-merge"), "{e}");
    let e = load_str("[execution]\nclient = \"geth\"\nmode = \"minimal\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("execution.mode") && e.contains("Reth's mode"),
        "{e}"
    );
}

#[test]
fn replaced_keys_are_named_with_their_successor_and_no_secret() {
    let e = load_str(
        "[consensus]\ncheckpoint_sync_url = \"https://cp.example/k/SECRETKEY\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(!e.contains("SECRETKEY"), "{e}");
    let e = load_str(
        "[readiness]\nreference_rpc = \"infura/v3/SECRETKEY\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("readiness.reference_rpc"), "{e}");
}
