//! Nethermind. Options: https://docs.nethermind.io/fundamentals/configuration (1.39); JSON-RPC and Engine
//! API: https://docs.nethermind.io/interacting/json-rpc-server; history:
//! https://docs.nethermind.io/fundamentals/history-pruning.

use crate::args::{Cmd, Style};
use crate::{ClientSpec, HostFacts, Role, path_arg, program};
use ethnode_config::{Config, Network, StorageMode};

/// Console-only logging without colour: Nethermind has no flag to turn its log file off; its maintainers
/// point to a logger config without the file target (NethermindEth/nethermind#4095). NLog's `Console`
/// target writes plain text (`ColoredConsole` is the coloured one).
pub(crate) const NLOG_CONFIG: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<nlog xmlns="http://www.nlog-project.org/schemas/NLog.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" autoReload="false">
  <targets>
    <target xsi:type="Console" name="console" layout="${date:universalTime=true:format=yyyy-MM-ddTHH\:mm\:ss.fffZ} ${level:uppercase=true} ${logger} ${message} ${exception:format=toString}" />
  </targets>
  <rules>
    <logger name="*" minlevel="Info" writeTo="console" />
  </rules>
</nlog>
"#;

/// The Merge's block, where post-Merge history begins (geth's `postmerge` cut-offs: mainnet 15537393 is
/// the last PoW block; Sepolia 1450409).
fn merge_block(net: Network) -> u64 {
    match net {
        Network::Mainnet => 15_537_394,
        Network::Sepolia => 1_450_409,
        Network::Hoodi | Network::Dev => 0,
    }
}

pub(crate) fn spec(config: &Config, host: &HostFacts) -> ClientSpec {
    let p = &config.ports;
    let e = &config.execution;
    let net = config.node.network;
    let data_dir = config.execution_data_dir();
    let logger = data_dir.join("NLog.ethnode.config");
    let mut c = Cmd::new(&[], Style::Separate);
    // The preset picks the chain spec; `<network>_archive` is the archive preset (no state pruning,
    // every transaction indexed, full sync).
    let preset = match e.mode {
        StorageMode::Archive => format!("{}_archive", net.as_str()),
        _ => net.as_str().to_string(),
    };
    c.opt("--config", preset)
        .opt("--data-dir", path_arg(&data_dir));
    if e.mode == StorageMode::PostMerge {
        // Bodies and receipts from the Merge on (the mainnet preset sets the same barriers; being
        // explicit keeps it true on every network), never pruned afterwards, and every transaction
        // indexed (TxLookupLimit defaults to the last 2,350,000 blocks).
        let merge = merge_block(net);
        c.opt("--Sync.AncientBodiesBarrier", merge)
            .opt("--Sync.AncientReceiptsBarrier", merge)
            .opt("--History.Pruning", "Disabled")
            .opt("--Receipt.TxLookupLimit", 0);
    }
    c.opt("--JsonRpc.Enabled", "true")
        .opt("--JsonRpc.Host", config.node.rpc_addr)
        .opt("--JsonRpc.Port", p.http)
        // One module list serves HTTP and WebSocket.
        .opt(
            "--JsonRpc.EnabledModules",
            format!("[{}]", e.http_api.join(",")),
        )
        .opt("--Init.WebSocketsEnabled", "true")
        .opt("--JsonRpc.WebSocketsPort", p.ws)
        // EngineHost without EnginePort is refused; both on loopback with the JWT.
        .opt("--JsonRpc.EngineHost", "127.0.0.1")
        .opt("--JsonRpc.EnginePort", p.authrpc)
        .opt("--JsonRpc.JwtSecretFile", path_arg(&config.jwt_path()))
        .opt("--Network.P2PPort", p.p2p)
        .opt("--Network.DiscoveryPort", p.p2p)
        .opt("--Metrics.Enabled", "true")
        .opt("--Metrics.ExposeHost", "127.0.0.1")
        .opt("--Metrics.ExposePort", p.execution_metrics)
        .opt("--logger-config", path_arg(&logger));
    // UPnP is off by default; there is no IPC socket unless JsonRpc.IpcUnixDomainSocketPath is set.
    if let Some(ip) = host.public_ip {
        c.opt("--Network.ExternalIp", ip);
    }
    ClientSpec {
        role: Role::Execution,
        name: "nethermind",
        program: program(&e.binary, "nethermind"),
        args: c.finish(&e.extra_args),
        files: vec![(logger, NLOG_CONFIG.to_string())],
        replaced: Vec::new(),
        data_dir,
        prelude: None,
        install_hint: "download a release from https://downloads.nethermind.io and put `nethermind` on PATH, or set execution.binary",
    }
}
