//! Lighthouse (`lighthouse bn`). Flags: https://lighthouse-book.sigmaprime.io/help_bn.html (the book's
//! `book/src/help_bn.md`, v8).

use crate::args::{Cmd, Style};
use crate::{ClientSpec, HostFacts, Role, checkpoint, path_arg, program};
use ethnode_config::Config;

pub(crate) fn spec(config: &Config, host: &HostFacts) -> ClientSpec {
    let p = &config.ports;
    let data_dir = config.consensus_data_dir();
    let mut c = Cmd::new(&["bn"], Style::Separate);
    c.opt("--network", config.node.network.as_str())
        .opt("--datadir", path_arg(&data_dir))
        .opt(
            "--execution-endpoint",
            format!("http://127.0.0.1:{}", p.authrpc),
        )
        .opt("--execution-jwt", path_arg(&config.jwt_path()))
        .flag("--http")
        .opt("--http-address", "127.0.0.1")
        .opt("--http-port", p.consensus_http)
        .flag("--metrics")
        .opt("--metrics-address", "127.0.0.1")
        .opt("--metrics-port", p.consensus_metrics)
        .opt("--port", p.consensus_p2p)
        .opt("--quic-port", p.consensus_quic)
        // No UPnP on a cloud host: the security group, not the router, opens the ports.
        .flag("--disable-upnp")
        // stdout is the log: no debug log files on the chain volume (10 by default, copied into every
        // snapshot), no colour codes.
        .opt("--logfile-max-number", 0)
        .opt("--log-color", "false");
    if let Some(url) = checkpoint(config, host) {
        c.opt("--checkpoint-sync-url", url);
    }
    // All ENR fields or none: with the address alone the record has no UDP discovery port until
    // auto-update fills it in, and peers cannot find the node meanwhile.
    if let Some(ip) = host.public_ip {
        c.opt("--enr-address", ip)
            .opt("--enr-tcp-port", p.consensus_p2p)
            .opt("--enr-udp-port", p.consensus_p2p)
            .opt("--enr-quic-port", p.consensus_quic);
    }
    ClientSpec {
        role: Role::Consensus,
        name: "lighthouse",
        program: program(&config.consensus.binary, "lighthouse"),
        args: c.finish(&config.consensus.extra_args),
        data_dir,
        prelude: None,
        files: Vec::new(),
        replaced: Vec::new(),
        install_hint: "download a release from https://github.com/sigp/lighthouse/releases and put `lighthouse` on PATH, or set consensus.binary",
    }
}
