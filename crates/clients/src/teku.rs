//! Teku (beacon node). Options: https://docs.teku.consensys.io/reference/cli (26.x) and
//! `teku/src/main/java/tech/pegasys/teku/cli/options` at 26.8.0.

use crate::args::{Cmd, Style};
use crate::{ClientSpec, HostFacts, Role, checkpoint, path_arg, program};
use ethnode_config::Config;

pub(crate) fn spec(config: &Config, host: &HostFacts) -> ClientSpec {
    let p = &config.ports;
    let data_dir = config.consensus_data_dir();
    let mut c = Cmd::new(&[], Style::Joined);
    c.opt("--network", config.node.network.as_str())
        .opt("--data-path", path_arg(&data_dir))
        .opt("--ee-endpoint", format!("http://127.0.0.1:{}", p.authrpc))
        .opt("--ee-jwt-secret-file", path_arg(&config.jwt_path()))
        // Loopback: the default Host allowlist (127.0.0.1, localhost) then fits.
        .opt("--rest-api-enabled", "true")
        .opt("--rest-api-interface", "127.0.0.1")
        .opt("--rest-api-port", p.consensus_http)
        .opt("--metrics-enabled", "true")
        .opt("--metrics-interface", "127.0.0.1")
        .opt("--metrics-port", p.consensus_metrics)
        .opt("--p2p-port", p.consensus_p2p)
        // QUIC is on by default since 26.x, on UDP 9001 unless told.
        .opt("--p2p-quic-port", p.consensus_quic)
        // The default also writes <data-path>/logs/teku.log.
        .opt("--log-destination", "CONSOLE")
        .opt("--log-color-enabled", "false");
    if let Some(url) = checkpoint(config, host) {
        c.opt("--checkpoint-sync-url", url);
    }
    // Advertised address and ports together, or none (UPnP is off by default).
    if let Some(ip) = host.public_ip {
        c.opt("--p2p-advertised-ip", ip)
            .opt("--p2p-advertised-port", p.consensus_p2p)
            .opt("--p2p-advertised-udp-port", p.consensus_p2p)
            .opt("--p2p-advertised-quic-port", p.consensus_quic);
    }
    ClientSpec {
        role: Role::Consensus,
        name: "teku",
        program: program(&config.consensus.binary, "teku"),
        args: c.finish(&config.consensus.extra_args),
        data_dir,
        prelude: None,
        files: Vec::new(),
        replaced: Vec::new(),
        install_hint: "download a release from https://github.com/Consensys/teku/releases and put `teku` on PATH, or set consensus.binary",
    }
}
