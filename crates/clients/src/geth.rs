//! Geth. Flags: `cmd/utils/flags.go` at v1.17.5 and https://geth.ethereum.org/docs/fundamentals/command-line-options;
//! history: https://geth.ethereum.org/docs/fundamentals/historypruning; archive:
//! https://geth.ethereum.org/docs/fundamentals/archive.

use crate::args::{Cmd, Style};
use crate::{ClientSpec, HostFacts, Role, path_arg, program};
use ethnode_config::{Config, Network, StorageMode};

pub(crate) fn spec(config: &Config, host: &HostFacts) -> ClientSpec {
    let p = &config.ports;
    let e = &config.execution;
    let net = config.node.network;
    let rpc = config.node.rpc_addr;
    let data_dir = config.execution_data_dir();
    let mut c = Cmd::new(&[], Style::Separate);
    // Networks are boolean flags (`--mainnet`, `--sepolia`, `--hoodi`).
    c.flag(&format!("--{}", net.as_str()))
        .opt("--datadir", path_arg(&data_dir));
    match e.mode {
        // The path-based archive the docs recommend: every state, full sync.
        StorageMode::Archive => {
            c.opt("--syncmode", "full")
                .opt("--gcmode", "archive")
                .opt("--history.state", 0);
        }
        // Bodies and receipts from the Merge on, and the log and transaction indexes over all of them
        // (both default to the last 2,350,000 blocks, about a year). Hoodi began after the Merge: geth has
        // no `postmerge` cut-off for it and refuses the value there.
        StorageMode::PostMerge => {
            if net != Network::Hoodi {
                c.opt("--history.chain", "postmerge");
            }
            c.opt("--history.logs", 0).opt("--history.transactions", 0);
        }
        // Geth's defaults: snap sync, every body and receipt, logs and transactions indexed for a year.
        StorageMode::Full | StorageMode::Minimal => {}
    }
    c.flag("--http")
        .opt("--http.addr", rpc)
        .opt("--http.port", p.http)
        .opt("--http.api", e.http_api.join(","))
        // The Host header is checked against a localhost-only list by default; the security group, not
        // the Host header, decides who reaches the port.
        .opt("--http.vhosts", "*")
        .flag("--ws")
        .opt("--ws.addr", rpc)
        .opt("--ws.port", p.ws)
        .opt("--ws.api", e.ws_api.join(","))
        .flag("--ipcdisable")
        .opt("--authrpc.addr", "127.0.0.1")
        .opt("--authrpc.port", p.authrpc)
        .opt("--authrpc.jwtsecret", path_arg(&config.jwt_path()))
        // discv4 and discv5 share this UDP port.
        .opt("--port", p.p2p)
        .opt("--discovery.port", p.p2p)
        // `--metrics` only collects; the server starts with `--metrics.addr`.
        .flag("--metrics")
        .opt("--metrics.addr", "127.0.0.1")
        .opt("--metrics.port", p.execution_metrics)
        // Geth logs to stderr, to no file by default; logfmt never carries colour codes.
        .opt("--log.format", "logfmt");
    // The default `any` tries UPnP and NAT-PMP; on a cloud host the address is known or there is none.
    c.opt(
        "--nat",
        host.public_ip
            .map_or_else(|| "none".to_string(), |ip| format!("extip:{ip}")),
    );
    ClientSpec {
        role: Role::Execution,
        name: "geth",
        program: program(&e.binary, "geth"),
        args: c.finish(&e.extra_args),
        data_dir,
        prelude: None,
        files: Vec::new(),
        replaced: Vec::new(),
        install_hint: "download a release from https://geth.ethereum.org/downloads and put `geth` on PATH, or set execution.binary",
    }
}
