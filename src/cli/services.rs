//! `opsdeck services [--json]`: what the engine runs for each configured service, with its
//! tasks and any drift from the ledger. Through the server when one answers.

use std::process::ExitCode;
use std::sync::Arc;

use crate::release::engine::ServiceLive;

use super::{Cli, load};

/// Runs `opsdeck services`.
pub async fn run(cli: &Cli, json: bool) -> ExitCode {
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let remote = match super::server::remote_for(cli, Some(&cfg)).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let (deployer, services): (String, Vec<ServiceLive>) = match remote {
        Some(r) => match r.http.get_json::<serde_json::Value>("/v1/services").await {
            Ok(v) => (
                v["deployer"].as_str().unwrap_or("swarm").to_string(),
                serde_json::from_value(v["services"].clone()).unwrap_or_default(),
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(e.exit_code());
            }
        },
        None if cfg.releases.deployer != crate::config::DeployerKind::Swarm => {
            ("command".into(), Vec::new())
        }
        None => {
            let path = crate::storage::LedgerAt::of(&cfg, &crate::paths::data_dir());
            let open: crate::release::engine::watch::OpenLedger =
                Arc::new(move || crate::release::Ledger::open_at(&path).ok());
            (
                "swarm".into(),
                crate::release::engine::watch::read_once(&cfg.releases, &open).await,
            )
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"deployer": deployer, "services": services})
        );
    } else if deployer != "swarm" {
        println!("the command deployer has no live state (releases.deployer = \"command\")");
    } else if services.is_empty() {
        println!("no [[releases.services]] configured");
    } else {
        let local = *chrono::Local::now().offset();
        for s in &services {
            print!("{}", render(s, &local));
        }
    }
    if services.iter().any(|s| s.error.is_some()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The text of one service: its line, drift, update message and tasks.
pub fn render(s: &ServiceLive, offset: &chrono::FixedOffset) -> String {
    let clean = |t: &str| crate::sanitize::clean_max(t, 300);
    let name = if s.service == s.swarm_service {
        s.service.clone()
    } else {
        format!("{} ({})", s.service, s.swarm_service)
    };
    if let Some(e) = &s.error {
        return format!("{name}  unknown: {}\n", clean(e));
    }
    let since = s
        .updated_at
        .map(|t| format!("  since {}", t.with_timezone(offset).format("%m-%d %H:%M")))
        .unwrap_or_default();
    let mut out = format!(
        "{name}  {} {}  {}/{}  {}{since}\n",
        s.status_word(),
        if s.tag.is_empty() { &s.image } else { &s.tag },
        s.running,
        s.desired,
        if s.healthy() { "✔" } else { "✖" },
    );
    if let Some(d) = &s.drift {
        out.push_str(&format!("  {}\n", d.text(offset)));
    }
    if !s.update_message.is_empty() && !s.healthy() {
        out.push_str(&format!(
            "  update {}: {}\n",
            s.update_state,
            clean(&s.update_message)
        ));
    }
    for t in &s.tasks {
        let mut line = format!(
            "  {}  slot {}  {}  {}  {}",
            t.id,
            t.slot.map_or("-".into(), |n| n.to_string()),
            if t.node.is_empty() { "-" } else { &t.node },
            t.state,
            t.tag
        );
        if let Some(h) = &t.health {
            line.push_str(&format!("  {h}"));
        }
        if t.failed() {
            line.push_str(&format!(
                "  {}",
                clean(if t.error.is_empty() {
                    &t.message
                } else {
                    &t.error
                })
            ));
            if let Some(c) = t.exit_code.filter(|c| *c != 0) {
                line.push_str(&format!(" (exit code {c})"));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}
