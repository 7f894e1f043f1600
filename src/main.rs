use std::process::ExitCode;

use clap::Parser;
use opsdeck::cli::{self, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Export { groups }) => cli::export(&cli, groups).await,
        Some(Command::Run) => cli::server::run(&cli).await,
        Some(Command::Health) => cli::server::health(&cli).await,
        Some(Command::Whoami { json }) => cli::server::whoami(&cli, *json).await,
        Some(Command::Check) => cli::check(&cli).await,
        Some(Command::Demo) => cli::demo(&cli).await,
        Some(Command::Release { cmd }) => cli::release::run(&cli, cmd).await,
        Some(Command::Token { cmd }) => cli::token::run(&cli, cmd).await,
        Some(Command::Services { json }) => cli::services::run(&cli, *json).await,
        Some(Command::Notify { cmd }) => cli::notify::run(&cli, cmd).await,
        Some(Command::Storage { cmd }) => cli::storage::run(&cli, cmd).await,
        Some(Command::Logs { sources, print }) if print.print => {
            cli::logs::print(&cli, sources, print).await
        }
        Some(Command::Logs { sources, .. }) => cli::tui_on(&cli, sources).await,
        Some(Command::Tui) | None => cli::tui(&cli).await,
    }
}
