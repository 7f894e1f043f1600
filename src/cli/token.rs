//! `opsdeck token create|list|revoke`: API tokens for the TCP listener, managed through the
//! running server's Unix socket (deployers only), so they work with `--server` too.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::Cli;
use crate::config::{Config, process_env};
use crate::server::tokens::TokenInfo;

/// The token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make a token; it is printed once (stdout, one line) and only its hash is kept.
    Create {
        name: String,
        /// ci, approvers, deployers or viewers.
        #[arg(long)]
        role: String,
    },
    /// Every token: name, role, created, last used (never the token).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it stops working at once.
    Revoke { name: String },
}

/// Runs a token subcommand against the server.
pub async fn run(cli: &Cli, cmd: &TokenCmd) -> ExitCode {
    let cfg = Config::load(cli.config.as_deref(), &process_env).ok();
    let remote = match super::server::remote_for(cli, cfg.as_ref()).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!(
                "error: no server answers: tokens live in the running server (`opsdeck run`); \
                 run this on its machine, or pass --server SOCKET"
            );
            return ExitCode::FAILURE;
        }
        Err(code) => return code,
    };
    let http = &remote.http;
    let result = match cmd {
        TokenCmd::Create { name, role } => http
            .post_json::<serde_json::Value>("/v1/tokens", &json!({"name": name, "role": role}))
            .await
            .map(|v| {
                // stdout gets the token alone, so `TOKEN=$(opsdeck token create ...)` works.
                println!("{}", v["token"].as_str().unwrap_or_default());
                eprintln!(
                    "created token `{}` with role {}: store it now (e.g. as a CI secret); it is not shown again",
                    v["name"].as_str().unwrap_or(name),
                    v["role"].as_str().unwrap_or(role)
                );
            }),
        TokenCmd::List { json } => http
            .get_json::<Vec<TokenInfo>>("/v1/tokens")
            .await
            .map(|list| print_list(&list, *json)),
        TokenCmd::Revoke { name } => http
            .post_json::<serde_json::Value>(
                &format!("/v1/tokens/{}/revoke", path_segment(name)),
                &json!({}),
            )
            .await
            .map(|_| println!("revoked token `{name}`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::sanitize::clean(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

fn print_list(list: &[TokenInfo], json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(list).unwrap_or_default());
        return;
    }
    if list.is_empty() {
        println!("no tokens; make one with `opsdeck token create NAME --role ci`");
        return;
    }
    println!(
        "{:<24} {:<10} {:<21} {:<21} STATE",
        "NAME", "ROLE", "CREATED", "LAST USED"
    );
    for t in list {
        println!(
            "{:<24} {:<10} {:<21} {:<21} {}",
            crate::sanitize::clean_max(&t.name, 64),
            t.role,
            t.created_at,
            t.last_used.as_deref().unwrap_or("never"),
            match &t.revoked_at {
                Some(at) => format!("revoked {at}"),
                None => format!(
                    "live (by {})",
                    crate::sanitize::clean_max(&t.created_by, 64)
                ),
            }
        );
    }
}

/// A name as one URL path segment: anything but `A-Z a-z 0-9 . _ -` percent-encoded.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
