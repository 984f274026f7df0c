//! Reth (`reth node`). Flags: https://reth.rs/cli/reth/node (reth v2.5.1); pruning presets:
//! https://reth.rs/run/storage/pruning and `crates/node/core/src/args/pruning.rs`.

use crate::args::{Cmd, Style};
use crate::{ClientSpec, HostFacts, Role, path_arg, program};
use ethnode_config::{Config, StorageMode};

pub(crate) fn spec(config: &Config, host: &HostFacts) -> ClientSpec {
    let p = &config.ports;
    let e = &config.execution;
    let rpc = config.node.rpc_addr;
    let data_dir = config.execution_data_dir();
    let mut c = Cmd::new(&["node"], Style::Separate);
    c.opt("--chain", config.node.network.as_str())
        .opt("--datadir", path_arg(&data_dir));
    match e.mode {
        // Archive is Reth's default: no pruning flag.
        StorageMode::Archive => {}
        // `--full` keeps receipts for 10,064 blocks; an explicit receipts rule replaces that part of the
        // preset (`PruningArgs::prune_config` applies the preset first), keeping every post-Merge receipt.
        StorageMode::PostMerge => {
            c.flag("--full").flag("--prune.receipts.pre-merge");
        }
        StorageMode::Full => {
            c.flag("--full");
        }
        StorageMode::Minimal => {
            c.flag("--minimal");
        }
    }
    c.flag("--http")
        .opt("--http.addr", rpc)
        .opt("--http.port", p.http)
        .opt("--http.api", e.http_api.join(","))
        .flag("--ws")
        .opt("--ws.addr", rpc)
        .opt("--ws.port", p.ws)
        .opt("--ws.api", e.ws_api.join(","))
        // The IPC socket serves every namespace to anyone who can reach the file.
        .flag("--ipcdisable")
        .opt("--authrpc.addr", "127.0.0.1")
        .opt("--authrpc.port", p.authrpc)
        .opt("--authrpc.jwtsecret", path_arg(&config.jwt_path()))
        .opt("--port", p.p2p)
        .opt("--discovery.port", p.p2p)
        // discv5 runs by default since reth 2.2 on UDP 9200: set it explicitly so that the security
        // group, the Dockerfile and the argv name the same port.
        .opt("--discovery.v5.port", p.discv5)
        .opt("--metrics", format!("127.0.0.1:{}", p.execution_metrics))
        // stdout is the log: file logging (5 x 200 MB at debug level by default) off, no colour codes.
        .opt("--log.file.max-files", 0)
        .opt("--color", "never");
    if let Some(ip) = host.public_ip {
        c.opt("--nat", format!("extip:{ip}"));
    }
    ClientSpec {
        role: Role::Execution,
        name: "reth",
        program: program(&e.binary, "reth"),
        args: c.finish(&e.extra_args),
        data_dir,
        prelude: None,
        files: Vec::new(),
        replaced: Vec::new(),
        install_hint: "download a release from https://github.com/paradigmxyz/reth/releases and put `reth` on PATH, or set execution.binary",
    }
}
