//! Lodestar (`lodestar beacon`). Options: https://chainsafe.github.io/lodestar/run/beacon-management/beacon-cli
//! (1.40).

use crate::args::{Cmd, Style};
use crate::{ClientSpec, HostFacts, Role, checkpoint, path_arg, program};
use ethnode_config::Config;

pub(crate) fn spec(config: &Config, host: &HostFacts) -> ClientSpec {
    let p = &config.ports;
    let data_dir = config.consensus_data_dir();
    let mut c = Cmd::new(&["beacon"], Style::Separate);
    c.opt("--network", config.node.network.as_str())
        .opt("--dataDir", path_arg(&data_dir))
        .opt(
            "--execution.urls",
            format!("http://127.0.0.1:{}", p.authrpc),
        )
        .opt("--jwtSecret", path_arg(&config.jwt_path()))
        // REST is on by default on 9596; ethnode's port for every consensus client.
        .flag("--rest")
        .opt("--rest.address", "127.0.0.1")
        .opt("--rest.port", p.consensus_http)
        .flag("--metrics")
        .opt("--metrics.address", "127.0.0.1")
        .opt("--metrics.port", p.consensus_metrics)
        .opt("--port", p.consensus_p2p)
        .opt("--discoveryPort", p.consensus_p2p)
        // The default writes a debug-level beacon.log into the data dir (and so into every snapshot).
        .opt("--logFile", "none");
    if let Some(url) = checkpoint(config, host) {
        c.opt("--checkpointSyncUrl", url);
    }
    // ENR fields together, or none. (Lodestar has no UPnP.)
    if let Some(ip) = host.public_ip {
        c.opt("--enr.ip", ip)
            .opt("--enr.tcp", p.consensus_p2p)
            .opt("--enr.udp", p.consensus_p2p);
    }
    ClientSpec {
        role: Role::Consensus,
        name: "lodestar",
        program: program(&config.consensus.binary, "lodestar"),
        args: c.finish(&config.consensus.extra_args),
        data_dir,
        prelude: None,
        files: Vec::new(),
        replaced: Vec::new(),
        install_hint: "download a release from https://github.com/ChainSafe/lodestar/releases and put `lodestar` on PATH, or set consensus.binary",
    }
}
