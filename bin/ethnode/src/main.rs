//! `ethnode`: your own Ethereum node on AWS. The binary is thin: parse, run, print the error chain.

mod cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // On AWS Lambda (provided.al2023) the binary is shipped as `bootstrap` and started without arguments.
    let invoked_as = std::env::args_os()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_owned()));
    let cli = if invoked_as.as_deref() == Some(std::ffi::OsStr::new("bootstrap")) {
        cmd::Cli::parse_from(["ethnode", "monitor", "lambda"])
    } else {
        cmd::Cli::parse()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        // A config that cannot be used exits 2, wherever in a command it was loaded.
        Err(e) if e.downcast_ref::<ethnode_config::ConfigError>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(cmd::EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
