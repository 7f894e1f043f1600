//! `opsdeck notify log [--json]` and `opsdeck notify test SINK`: through the server when one
//! answers, else on this machine's outbox and sinks.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::{Cli, EXIT_USAGE, load};

/// `opsdeck notify ...`.
#[derive(Debug, Subcommand)]
pub enum NotifyCmd {
    /// Deliveries and failures, newest first, and the sinks that keep failing.
    Log {
        #[arg(long)]
        json: bool,
        /// How many deliveries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send a test message through SINK now (its `name`, default `<kind>-<index>`).
    Test {
        #[arg(value_name = "SINK")]
        sink: String,
    },
}

/// Runs a `notify` subcommand.
pub async fn run(cli: &Cli, cmd: &NotifyCmd) -> ExitCode {
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let remote = match super::server::remote_for(cli, Some(&cfg)).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    match (cmd, remote) {
        (NotifyCmd::Log { json, limit }, Some(r)) => {
            match r
                .http
                .get_json::<serde_json::Value>(&format!("/v1/notify/log?limit={limit}"))
                .await
            {
                Ok(v) => print_log(&v, *json),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        (NotifyCmd::Test { sink }, Some(r)) => {
            let path = format!("/v1/notify/test/{}", crate::client::urlenc(sink));
            match r
                .http
                .post_json::<serde_json::Value>(&path, &json!({}))
                .await
            {
                Ok(v) => {
                    println!("sent a test message through {sink} (delivery {})", v["id"]);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        (cmd, None) => {
            let data_dir = crate::paths::data_dir();
            let Some(n) = super::server::open_notifier(&cfg, &data_dir, None) else {
                eprintln!("error: cannot open the notification outbox");
                return ExitCode::FAILURE;
            };
            match cmd {
                NotifyCmd::Log { json, limit } => {
                    match crate::server::notify_log_json(&n, *limit) {
                        Ok(v) => print_log(&v, *json),
                        Err(e) => {
                            eprintln!("error: {e}");
                            ExitCode::FAILURE
                        }
                    }
                }
                NotifyCmd::Test { sink } => {
                    if !n.sinks().iter().any(|s| &s.name == sink) {
                        let known: Vec<&str> = n.sinks().iter().map(|s| s.name.as_str()).collect();
                        eprintln!(
                            "error: no sink `{}`; configured: {}",
                            crate::sanitize::clean_max(sink, 80),
                            if known.is_empty() {
                                "none (add [[notify]] entries)".to_string()
                            } else {
                                known.join(", ")
                            }
                        );
                        return ExitCode::from(EXIT_USAGE);
                    }
                    let me = crate::release::Actor::current();
                    match n.test(sink, &me.user).await {
                        Ok(id) => {
                            println!("sent a test message through {sink} (delivery {id})");
                            ExitCode::SUCCESS
                        }
                        Err(e) => {
                            eprintln!("error: sink {sink}: {}", crate::sanitize::clean(&e));
                            ExitCode::FAILURE
                        }
                    }
                }
            }
        }
    }
}

/// Prints `GET /v1/notify/log`'s answer: JSON as is, or one line per delivery.
fn print_log(v: &serde_json::Value, json: bool) -> ExitCode {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let c = |v: &serde_json::Value| crate::sanitize::clean_max(v.as_str().unwrap_or(""), 300);
    let sinks: Vec<String> = v["sinks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{} ({})", c(&s["name"]), c(&s["kind"])))
        .collect();
    println!(
        "sinks    {}",
        if sinks.is_empty() {
            "none configured".to_string()
        } else {
            sinks.join(", ")
        }
    );
    for f in v["failing"].as_array().into_iter().flatten() {
        println!(
            "FAILING  {}: {} attempt(s): {}",
            c(&f["sink"]),
            f["attempts"],
            c(&f["error"])
        );
    }
    for d in v["deliveries"].as_array().into_iter().flatten() {
        let at = d["created_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let event: Option<crate::notify::NotifyEvent> =
            serde_json::from_value(d["event"].clone()).ok();
        let what = event
            .map(|e| crate::sanitize::clean_max(&e.headline(), 200))
            .unwrap_or_default();
        let err = d["last_error"]
            .as_str()
            .filter(|_| d["state"] != "sent")
            .map(|e| format!(" ({})", crate::sanitize::clean_max(e, 300)))
            .unwrap_or_default();
        println!(
            "{:>6} {at} {:<12} {:<7} {:>2} {:<18} {what}{err}",
            d["id"],
            c(&d["sink"]),
            c(&d["state"]),
            d["attempts"],
            c(&d["event"]["kind"]),
        );
    }
    ExitCode::SUCCESS
}
