//! anvil, the dev network's single process. Flags: https://getfoundry.sh/anvil/reference/anvil (`anvil --help`).

use crate::args::{Cmd, Style};
use crate::{ClientSpec, Role, path_arg, program};
use ethnode_config::Config;

pub(crate) fn spec(config: &Config) -> ClientSpec {
    let data_dir = config.execution_data_dir();
    let mut c = Cmd::new(&[], Style::Separate);
    c.opt("--host", config.node.rpc_addr)
        .opt("--port", config.ports.http)
        .opt("--chain-id", config.dev.chain_id)
        .opt("--block-time", config.dev.block_time_secs)
        // --state loads on start and dumps on graceful exit; the interval bounds what a SIGKILL loses.
        .opt("--state", path_arg(&data_dir.join("state.json")))
        .opt("--state-interval", config.dev.state_interval_secs);
    ClientSpec {
        role: Role::Execution,
        name: "anvil",
        program: program(&config.execution.binary, "anvil"),
        args: c.finish(&config.execution.extra_args),
        data_dir,
        prelude: None,
        files: Vec::new(),
        replaced: Vec::new(),
        install_hint: "run `npm install --prefix .tools @foundry-rs/anvil-linux-amd64` (scripts/dev.sh does it), or set execution.binary",
    }
}
