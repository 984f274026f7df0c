use super::*;

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn mainnet_reth_lighthouse_exact_args() {
    let config = Config::default();
    let host = HostFacts {
        public_ip: Some([198, 51, 100, 7].into()),
        private_ip: Some([10, 0, 1, 5].into()),
        checkpoint_sync_url: None,
    };
    let plan = plan(&config, &host);
    assert_eq!(plan.len(), 2);
    assert_eq!(plan[0].role, Role::Execution);
    assert_eq!(plan[0].program, PathBuf::from("reth"));
    assert_eq!(
        plan[0].args,
        v(&[
            "node",
            "--chain",
            "mainnet",
            "--datadir",
            "/data/reth",
            "--full",
            "--prune.receipts.pre-merge",
            "--http",
            "--http.addr",
            "127.0.0.1",
            "--http.port",
            "8545",
            "--http.api",
            "eth,net,web3",
            "--ws",
            "--ws.addr",
            "127.0.0.1",
            "--ws.port",
            "8546",
            "--ws.api",
            "eth,net,web3",
            "--ipcdisable",
            "--authrpc.addr",
            "127.0.0.1",
            "--authrpc.port",
            "8551",
            "--authrpc.jwtsecret",
            "/data/jwt.hex",
            "--port",
            "30303",
            "--discovery.port",
            "30303",
            "--discovery.v5.port",
            "9200",
            "--metrics",
            "127.0.0.1:6060",
            "--log.file.max-files",
            "0",
            "--color",
            "never",
            "--nat",
            "extip:198.51.100.7",
        ])
    );
    assert_eq!(plan[1].role, Role::Consensus);
    assert_eq!(plan[1].program, PathBuf::from("lighthouse"));
    assert_eq!(
        plan[1].args,
        v(&[
            "bn",
            "--network",
            "mainnet",
            "--datadir",
            "/data/lighthouse",
            "--execution-endpoint",
            "http://127.0.0.1:8551",
            "--execution-jwt",
            "/data/jwt.hex",
            "--http",
            "--http-address",
            "127.0.0.1",
            "--http-port",
            "5052",
            "--metrics",
            "--metrics-address",
            "127.0.0.1",
            "--metrics-port",
            "5054",
            "--port",
            "9000",
            "--quic-port",
            "9001",
            "--disable-upnp",
            "--logfile-max-number",
            "0",
            "--log-color",
            "false",
            "--checkpoint-sync-url",
            "https://mainnet.checkpoint.sigp.io",
            "--enr-address",
            "198.51.100.7",
            "--enr-tcp-port",
            "9000",
            "--enr-udp-port",
            "9000",
            "--enr-quic-port",
            "9001",
        ])
    );
}

#[test]
fn no_public_ip_means_no_nat_flags() {
    let plan = plan(&Config::default(), &HostFacts::default());
    assert!(!plan[0].args.iter().any(|a| a == "--nat"));
    // ENR fields all or none.
    assert!(!plan[1].args.iter().any(|a| a.starts_with("--enr-")));
}

#[test]
fn configured_values_reach_the_args() {
    let mut c = Config::default();
    c.node.network = Network::Hoodi;
    c.node.data_dir = "/mnt/chain".into();
    c.node.rpc_addr = [0, 0, 0, 0].into();
    c.execution.mode = ethnode_config::StorageMode::Archive;
    c.execution.binary = Some("/opt/reth".into());
    c.execution.extra_args = v(&["--engine.persistence-threshold", "0"]);
    c.consensus.checkpoint_sync_urls =
        vec!["https://cp.example".into(), "https://cp2.example".into()];
    c.consensus.data_dir = Some("/mnt/cl".into());
    c.ports.http = 18545;
    let plan = plan(&c, &HostFacts::default());
    let el = &plan[0];
    assert_eq!(el.program, PathBuf::from("/opt/reth"));
    assert_eq!(
        &el.args[..5],
        &v(&["node", "--chain", "hoodi", "--datadir", "/mnt/chain/reth"])[..]
    );
    assert!(
        !el.args
            .iter()
            .any(|a| a == "--full" || a.starts_with("--prune"))
    );
    assert!(el.args.windows(2).any(|w| w == ["--http.addr", "0.0.0.0"]));
    assert!(el.args.windows(2).any(|w| w == ["--http.port", "18545"]));
    assert!(
        el.args
            .windows(2)
            .any(|w| w == ["--authrpc.jwtsecret", "/mnt/chain/jwt.hex"])
    );
    assert_eq!(
        &el.args[el.args.len() - 2..],
        &v(&["--engine.persistence-threshold", "0"])[..]
    );
    let cl = &plan[1];
    assert!(
        cl.args
            .windows(2)
            .any(|w| w == ["--checkpoint-sync-url", "https://cp.example"])
    );
    assert!(cl.args.windows(2).any(|w| w == ["--datadir", "/mnt/cl"]));
    assert_eq!(execution_rpc_url(&c), "http://127.0.0.1:18545/");
}

#[test]
fn dev_is_one_anvil_with_persisted_state() {
    let mut c = Config::dev("/tmp/ethnode-dev".into());
    c.dev.block_time_secs = 3;
    c.ports.http = 28545;
    let plan = plan(
        &c,
        &HostFacts {
            public_ip: Some([1, 2, 3, 4].into()),
            ..HostFacts::default()
        },
    );
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].name, "anvil");
    assert_eq!(
        plan[0].args,
        v(&[
            "--host",
            "127.0.0.1",
            "--port",
            "28545",
            "--chain-id",
            "31337",
            "--block-time",
            "3",
            "--state",
            "/tmp/ethnode-dev/anvil/state.json",
            "--state-interval",
            "1",
        ])
    );
    assert_eq!(execution_ws_url(&c), "ws://127.0.0.1:28545/");
    assert_eq!(consensus_api_url(&c), None);
}

#[test]
fn every_storage_mode_has_its_exact_reth_flags() {
    let prune = |mode| {
        let mut c = Config::default();
        c.execution.mode = mode;
        plan(&c, &HostFacts::default())[0]
            .args
            .iter()
            .filter(|a| {
                a.starts_with("--full") || a.starts_with("--minimal") || a.starts_with("--prune")
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    use ethnode_config::StorageMode::*;
    assert_eq!(prune(Archive), Vec::<String>::new());
    assert_eq!(
        prune(PostMerge),
        v(&["--full", "--prune.receipts.pre-merge"])
    );
    assert_eq!(prune(Full), v(&["--full"]));
    assert_eq!(prune(Minimal), v(&["--minimal"]));
}

/// A flag the profile sets can be replaced from `extra_args` (Reth refuses a flag given twice), so that
/// e.g. `txpool` and `trace` can be enabled; the namespaces are also typed settings.
#[test]
fn extra_args_override_profile_flags_and_namespaces_are_settings() {
    let mut c = Config::default();
    c.execution.ws_api = v(&["eth", "net", "web3", "txpool"]);
    c.execution.extra_args = v(&["--http.api", "eth,net,web3,trace", "--color=auto"]);
    let args = &plan(&c, &HostFacts::default())[0].args;
    let count = |flag: &str| {
        args.iter()
            .filter(|a| a.split('=').next() == Some(flag))
            .count()
    };
    assert_eq!(count("--http.api"), 1, "{args:?}");
    assert_eq!(count("--color"), 1, "{args:?}");
    assert!(
        args.windows(2)
            .any(|w| w == ["--http.api", "eth,net,web3,trace"])
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--ws.api", "eth,net,web3,txpool"])
    );
    assert!(args.ends_with(&v(&["--http.api", "eth,net,web3,trace", "--color=auto"])));
}

#[test]
fn the_checkpoint_url_that_answered_is_used_else_the_first_listed() {
    let mut c = Config::default();
    c.node.network = Network::Sepolia;
    let cp = |host: &HostFacts| {
        let args = &plan(&c, host)[1].args;
        let i = args
            .iter()
            .position(|a| a == "--checkpoint-sync-url")
            .unwrap();
        args[i + 1].clone()
    };
    assert_eq!(cp(&HostFacts::default()), checkpoint_urls(&c)[0]);
    assert!(checkpoint_urls(&c).len() >= 3);
    let answered = HostFacts {
        checkpoint_sync_url: Some("https://sepolia.beaconstate.info".into()),
        ..HostFacts::default()
    };
    assert_eq!(cp(&answered), "https://sepolia.beaconstate.info");
    assert!(checkpoint_urls(&Config::dev("/tmp".into())).is_empty());
}
