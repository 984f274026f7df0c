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
            "127.0.0.1:6060",
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
            "--checkpoint-sync-url",
            "https://mainnet.checkpoint.sigp.io",
            "--enr-address",
            "198.51.100.7",
        ])
    );
}

#[test]
fn no_public_ip_means_no_nat_flags() {
    let plan = plan(&Config::default(), &HostFacts::default());
    assert!(!plan[0].args.iter().any(|a| a == "--nat"));
    assert!(!plan[1].args.iter().any(|a| a == "--enr-address"));
}

#[test]
fn configured_values_reach_the_args() {
    let mut c = Config::default();
    c.node.network = Network::Hoodi;
    c.node.data_dir = "/mnt/chain".into();
    c.node.rpc_addr = [0, 0, 0, 0].into();
    c.execution.full = Some(false);
    c.execution.binary = Some("/opt/reth".into());
    c.execution.extra_args = v(&["--engine.persistence-threshold", "0"]);
    c.consensus.checkpoint_sync_url = Some("https://cp.example".into());
    c.consensus.data_dir = Some("/mnt/cl".into());
    c.ports.http = 18545;
    let plan = plan(&c, &HostFacts::default());
    let el = &plan[0];
    assert_eq!(el.program, PathBuf::from("/opt/reth"));
    assert_eq!(
        &el.args[..5],
        &v(&["node", "--chain", "hoodi", "--datadir", "/mnt/chain/reth"])[..]
    );
    assert!(!el.args.contains(&"--full".to_string()));
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
            private_ip: None,
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
