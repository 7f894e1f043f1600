use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use opsdeck::cli::{self, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Export { groups }) => cli::export(&cli, groups).await,
        Some(Command::Run) => cli::run(&cli).await,
        Some(Command::Check) => cli::check(&cli).await,
        None => {
            let _ = Cli::command().print_help();
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}
