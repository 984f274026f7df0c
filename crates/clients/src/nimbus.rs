//! Nimbus (`nimbus_beacon_node`). Options: https://nimbus.guide/options.html; checkpoint sync:
//! https://nimbus.guide/trusted-node-sync.html; logging: https://nimbus.guide/logging.html. Read at
//! v24.9 (`beacon_chain/conf.nim`): check `nimbus_beacon_node --help` of the release you pin.

use crate::args::{Cmd, Style};
use crate::{ClientSpec, HostFacts, Prelude, Role, checkpoint, path_arg, program};
use ethnode_config::Config;

pub(crate) fn spec(config: &Config, host: &HostFacts) -> ClientSpec {
    let p = &config.ports;
    let net = config.node.network.as_str();
    let data_dir = config.consensus_data_dir();
    let mut c = Cmd::new(&[], Style::Joined);
    c.opt("--network", net)
        .opt("--data-dir", path_arg(&data_dir))
        // Explicit: relying on the implicit default URL has broken JWT auth (status-im/nimbus-eth2#5665).
        .opt("--el", format!("http://127.0.0.1:{}", p.authrpc))
        .opt("--jwt-secret", path_arg(&config.jwt_path()))
        .opt("--rest", "true")
        .opt("--rest-address", "127.0.0.1")
        .opt("--rest-port", p.consensus_http)
        .opt("--metrics", "true")
        .opt("--metrics-address", "127.0.0.1")
        .opt("--metrics-port", p.consensus_metrics)
        .opt("--tcp-port", p.consensus_p2p)
        .opt("--udp-port", p.consensus_p2p)
        // stdout without colour codes, and no terminal status bar.
        .opt("--log-format", "nocolors")
        .opt("--status-bar", "false")
        // The default `any` tries UPnP; on a cloud host the address is known or there is none.
        .opt(
            "--nat",
            host.public_ip
                .map_or_else(|| "none".to_string(), |ip| format!("extip:{ip}")),
        );
    // Checkpoint sync is a separate command that exits when done; run it while there is no database.
    let prelude = checkpoint(config, host).map(|url| Prelude {
        args: vec![
            "trustedNodeSync".into(),
            format!("--network={net}"),
            format!("--data-dir={}", path_arg(&data_dir)),
            format!("--trusted-node-url={url}"),
            // Backfill happens in the node itself; the sync step only needs the finalized state.
            "--backfill=false".into(),
        ],
        done_marker: data_dir.join(".ethnode-checkpoint-synced"),
        clean: vec![data_dir.join("db")],
    });
    ClientSpec {
        role: Role::Consensus,
        name: "nimbus",
        program: program(&config.consensus.binary, "nimbus_beacon_node"),
        args: c.finish(&config.consensus.extra_args),
        data_dir,
        prelude,
        files: Vec::new(),
        replaced: Vec::new(),
        install_hint: "download a release from https://github.com/status-im/nimbus-eth2/releases and put `nimbus_beacon_node` on PATH, or set consensus.binary",
    }
}
