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
    assert_eq!(
        plan(&c, &HostFacts::default())[0].replaced,
        v(&["--http.api", "--color"])
    );
    assert!(
        plan(&Config::default(), &HostFacts::default())[0]
            .replaced
            .is_empty()
    );
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

fn pair(el: ExecutionClient, cl: ConsensusClient) -> Config {
    let mut c = Config::default();
    c.execution.client = Some(el);
    c.consensus.client = Some(cl);
    c
}

fn public() -> HostFacts {
    HostFacts {
        public_ip: Some([198, 51, 100, 7].into()),
        private_ip: Some([10, 0, 1, 5].into()),
        checkpoint_sync_url: None,
    }
}

use ethnode_config::{ConsensusClient, ExecutionClient, StorageMode};

#[test]
fn geth_exact_args_and_modes() {
    let c = pair(ExecutionClient::Geth, ConsensusClient::Lighthouse);
    let el = &plan(&c, &public())[0];
    assert_eq!((el.name, el.program.to_str().unwrap()), ("geth", "geth"));
    assert_eq!(
        el.args,
        v(&[
            "--mainnet",
            "--datadir",
            "/data/geth",
            "--history.chain",
            "postmerge",
            "--history.logs",
            "0",
            "--history.transactions",
            "0",
            "--http",
            "--http.addr",
            "127.0.0.1",
            "--http.port",
            "8545",
            "--http.api",
            "eth,net,web3",
            "--http.vhosts",
            "*",
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
            "--metrics",
            "--metrics.addr",
            "127.0.0.1",
            "--metrics.port",
            "6060",
            "--log.format",
            "logfmt",
            "--nat",
            "extip:198.51.100.7",
        ])
    );
    let history = |mode, net| {
        let mut c = pair(ExecutionClient::Geth, ConsensusClient::Lighthouse);
        c.execution.mode = mode;
        c.node.network = net;
        plan(&c, &HostFacts::default())[0]
            .args
            .iter()
            .filter(|a| {
                a.starts_with("--history")
                    || a.starts_with("--gcmode")
                    || a.starts_with("--syncmode")
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        history(StorageMode::Archive, Network::Mainnet),
        v(&["--syncmode", "--gcmode", "--history.state"])
    );
    assert_eq!(
        history(StorageMode::Full, Network::Mainnet),
        Vec::<String>::new()
    );
    // Hoodi began after the Merge; geth refuses `postmerge` there.
    assert_eq!(
        history(StorageMode::PostMerge, Network::Hoodi),
        v(&["--history.logs", "--history.transactions"])
    );
    // No public address: no UPnP either.
    let args = &plan(&c, &HostFacts::default())[0].args;
    assert!(args.ends_with(&v(&["--nat", "none"])));
}

#[test]
fn nethermind_exact_args_and_its_logger_config() {
    let c = pair(ExecutionClient::Nethermind, ConsensusClient::Teku);
    let el = &plan(&c, &public())[0];
    assert_eq!(
        el.args,
        v(&[
            "--config",
            "mainnet",
            "--data-dir",
            "/data/nethermind",
            "--Sync.AncientBodiesBarrier",
            "15537394",
            "--Sync.AncientReceiptsBarrier",
            "15537394",
            "--History.Pruning",
            "Disabled",
            "--Receipt.TxLookupLimit",
            "0",
            "--JsonRpc.Enabled",
            "true",
            "--JsonRpc.Host",
            "127.0.0.1",
            "--JsonRpc.Port",
            "8545",
            "--JsonRpc.EnabledModules",
            "[eth,net,web3]",
            "--Init.WebSocketsEnabled",
            "true",
            "--JsonRpc.WebSocketsPort",
            "8546",
            "--JsonRpc.EngineHost",
            "127.0.0.1",
            "--JsonRpc.EnginePort",
            "8551",
            "--JsonRpc.JwtSecretFile",
            "/data/jwt.hex",
            "--Network.P2PPort",
            "30303",
            "--Network.DiscoveryPort",
            "30303",
            "--Metrics.Enabled",
            "true",
            "--Metrics.ExposeHost",
            "127.0.0.1",
            "--Metrics.ExposePort",
            "6060",
            "--logger-config",
            "/data/nethermind/NLog.ethnode.config",
            "--Network.ExternalIp",
            "198.51.100.7",
        ])
    );
    let (path, content) = &el.files[0];
    assert_eq!(path, &PathBuf::from("/data/nethermind/NLog.ethnode.config"));
    assert!(content.contains("xsi:type=\"Console\"") && !content.contains("File"));
    let mut archive = c.clone();
    archive.execution.mode = StorageMode::Archive;
    assert_eq!(
        &plan(&archive, &public())[0].args[..2],
        &v(&["--config", "mainnet_archive"])[..]
    );
}

#[test]
fn teku_exact_args() {
    let c = pair(ExecutionClient::Reth, ConsensusClient::Teku);
    let cl = &plan(&c, &public())[1];
    assert_eq!(
        cl.args,
        v(&[
            "--network=mainnet",
            "--data-path=/data/teku",
            "--ee-endpoint=http://127.0.0.1:8551",
            "--ee-jwt-secret-file=/data/jwt.hex",
            "--rest-api-enabled=true",
            "--rest-api-interface=127.0.0.1",
            "--rest-api-port=5052",
            "--metrics-enabled=true",
            "--metrics-interface=127.0.0.1",
            "--metrics-port=5054",
            "--p2p-port=9000",
            "--p2p-quic-port=9001",
            "--log-destination=CONSOLE",
            "--log-color-enabled=false",
            "--checkpoint-sync-url=https://mainnet.checkpoint.sigp.io",
            "--p2p-advertised-ip=198.51.100.7",
            "--p2p-advertised-port=9000",
            "--p2p-advertised-udp-port=9000",
            "--p2p-advertised-quic-port=9001",
        ])
    );
    assert!(
        !plan(&c, &HostFacts::default())[1]
            .args
            .iter()
            .any(|a| a.starts_with("--p2p-advertised"))
    );
}

#[test]
fn nimbus_exact_args_with_its_checkpoint_sync_step() {
    let c = pair(ExecutionClient::Reth, ConsensusClient::Nimbus);
    let cl = &plan(&c, &public())[1];
    assert_eq!(cl.program, PathBuf::from("nimbus_beacon_node"));
    assert_eq!(
        cl.args,
        v(&[
            "--network=mainnet",
            "--data-dir=/data/nimbus",
            "--el=http://127.0.0.1:8551",
            "--jwt-secret=/data/jwt.hex",
            "--rest=true",
            "--rest-address=127.0.0.1",
            "--rest-port=5052",
            "--metrics=true",
            "--metrics-address=127.0.0.1",
            "--metrics-port=5054",
            "--tcp-port=9000",
            "--udp-port=9000",
            "--log-format=nocolors",
            "--status-bar=false",
            "--nat=extip:198.51.100.7",
        ])
    );
    let prelude = cl.prelude.as_ref().unwrap();
    assert_eq!(
        prelude.args,
        v(&[
            "trustedNodeSync",
            "--network=mainnet",
            "--data-dir=/data/nimbus",
            "--trusted-node-url=https://mainnet.checkpoint.sigp.io",
            "--backfill=false",
        ])
    );
    assert_eq!(
        prelude.done_marker,
        PathBuf::from("/data/nimbus/.ethnode-checkpoint-synced")
    );
    assert_eq!(prelude.clean, vec![PathBuf::from("/data/nimbus/db")]);
}

#[test]
fn lodestar_exact_args() {
    let c = pair(ExecutionClient::Reth, ConsensusClient::Lodestar);
    let cl = &plan(&c, &public())[1];
    assert_eq!(
        cl.args,
        v(&[
            "beacon",
            "--network",
            "mainnet",
            "--dataDir",
            "/data/lodestar",
            "--execution.urls",
            "http://127.0.0.1:8551",
            "--jwtSecret",
            "/data/jwt.hex",
            "--rest",
            "--rest.address",
            "127.0.0.1",
            "--rest.port",
            "5052",
            "--metrics",
            "--metrics.address",
            "127.0.0.1",
            "--metrics.port",
            "5054",
            "--port",
            "9000",
            "--discoveryPort",
            "9000",
            "--logFile",
            "none",
            "--checkpointSyncUrl",
            "https://mainnet.checkpoint.sigp.io",
            "--enr.ip",
            "198.51.100.7",
            "--enr.tcp",
            "9000",
            "--enr.udp",
            "9000",
        ])
    );
}

/// Every pair: two processes, the same JWT on both sides, the Engine API and the beacon API on loopback,
/// and readiness reading the same standard beacon API.
#[test]
fn every_pair_shares_the_jwt_and_serves_the_beacon_api() {
    for el in [
        ExecutionClient::Reth,
        ExecutionClient::Geth,
        ExecutionClient::Nethermind,
    ] {
        for cl in [
            ConsensusClient::Lighthouse,
            ConsensusClient::Teku,
            ConsensusClient::Nimbus,
            ConsensusClient::Lodestar,
        ] {
            let c = pair(el, cl);
            c.validate()
                .unwrap_or_else(|e| panic!("{el:?}+{cl:?}: {e}"));
            let p = plan(&c, &public());
            assert_eq!(p.len(), 2);
            for spec in &p {
                assert!(
                    spec.args.iter().any(|a| a.contains("/data/jwt.hex")),
                    "{}: {:?}",
                    spec.name,
                    spec.args
                );
                assert!(
                    spec.args.iter().any(|a| a.contains("8551")),
                    "{}",
                    spec.name
                );
            }
            assert_eq!(
                consensus_api_url(&c).as_deref(),
                Some("http://127.0.0.1:5052")
            );
            assert_eq!(
                p[1].data_dir,
                PathBuf::from(format!("/data/{}", cl.as_str()))
            );
        }
    }
}
