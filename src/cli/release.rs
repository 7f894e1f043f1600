//! `opsdeck release ...`: the ledger from scripts and CI.

use std::process::ExitCode;

use clap::Subcommand;

use super::{Cli, EXIT_USAGE, load_logged};
use crate::logging::LogTarget;
use crate::release::{Actor, DeskError, Ledger, NewRelease, Release, ReleaseDesk, Status};

/// The release subcommands.
#[derive(Debug, Subcommand)]
pub enum ReleaseCmd {
    /// Register a release; prints its id.
    Create {
        #[arg(long)]
        service: String,
        #[arg(long)]
        tag: String,
        /// Image repository (default: the service's configured one).
        #[arg(long)]
        image: Option<String>,
        #[arg(long = "initiated-by")]
        initiated_by: Option<String>,
        #[arg(long = "github-run-id")]
        github_run_id: Option<String>,
        #[arg(long = "github-link")]
        github_link: Option<String>,
        #[arg(long = "github-ref")]
        github_ref: Option<String>,
        /// Start as building or manual_testing instead of initiated.
        #[arg(long)]
        status: Option<Status>,
    },
    /// CI's own steps: building, manual_testing, staging_failed.
    Status {
        id: i64,
        status: Status,
        #[arg(long)]
        note: Option<String>,
    },
    /// Releases, newest first.
    List {
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        status: Option<Status>,
        #[arg(long)]
        json: bool,
    },
    /// One release with its audit trail.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Approve a release waiting for manual testing, and deploy it.
    Approve { id: i64 },
    /// Reject a release waiting for manual testing.
    Reject {
        id: i64,
        #[arg(long)]
        reason: String,
    },
    /// Roll a deployed (or failed) release back to the previous deployed tag, or --to TAG.
    Rollback {
        id: i64,
        #[arg(long)]
        to: Option<String>,
        /// Roll back to a tag that is not known to have run (not in the ledger, the engine's
        /// current or previous spec, or the images on the manager).
        #[arg(long)]
        force: bool,
    },
    /// What a release could be rolled back to (`--to`), and when each tag last ran: the
    /// ledger's deployed tags, the engine's spec and task history, the images on the manager.
    Targets {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Settle releases left in deploying or rollback by a stopped process.
    Reconcile,
    /// Deploy an approved release (manual_test_passed) again: its deploy was cancelled while
    /// queued, or never reached the engine.
    Deploy { id: i64 },
    /// Drop a queued deploy (through the server); the release stays approved.
    Cancel { id: i64 },
    /// Check the audit hash chain and every release against its audit: exit 0 with a summary,
    /// 1 naming the first row that does not match.
    Verify,
}

/// Runs a release subcommand. Exit 0 on success, 2 on bad input (nothing written), 1 when a
/// valid action failed or was refused.
pub async fn run(cli: &Cli, cmd: &ReleaseCmd) -> ExitCode {
    let (cfg, _log) = match load_logged(cli, LogTarget::FileOnly) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match super::server::remote_for(cli, Some(&cfg)).await {
        Ok(Some(remote)) => return run_remote(&remote, cmd).await,
        Ok(None) => {}
        Err(code) => return code,
    }
    let data_dir = crate::paths::data_dir();
    let path = crate::storage::LedgerAt::of(&cfg, &data_dir);
    let mut ledger = match Ledger::open_at(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot open the ledger {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let ReleaseCmd::Verify = cmd {
        return verify(&ledger);
    }
    // Local mode notifies too: changes are queued in this machine's outbox and sent before
    // the command ends (or by whichever process delivers from it).
    let notifier = super::server::local_notifier(&cfg, &data_dir);
    if let Some(n) = &notifier {
        n.observe(&mut ledger);
    }
    let mut desk = ReleaseDesk {
        ledger,
        cfg: cfg.releases.clone(),
        actor: Actor::current(),
        data_dir,
        progress: Box::new(|line| eprintln!("{line}")),
        cancel: Default::default(),
    };
    let result: Result<(), DeskError> = match cmd {
        ReleaseCmd::Create {
            service,
            tag,
            image,
            initiated_by,
            github_run_id,
            github_link,
            github_ref,
            status,
        } => desk
            .create(NewRelease {
                service_name: service.clone(),
                release_tag: tag.clone(),
                image: image.clone(),
                initiated_by: initiated_by.clone(),
                github_run_id: github_run_id.clone(),
                github_action_link: github_link.clone(),
                github_ref: github_ref.clone(),
                status: *status,
            })
            .map(|r| println!("{}", r.id)),
        ReleaseCmd::Status { id, status, note } => desk
            .ci_status(*id, *status, note.as_deref())
            .map(|r| print_line(&r)),
        ReleaseCmd::List {
            service,
            status,
            json,
        } => desk
            .ledger
            .list(service.as_deref(), *status)
            .map_err(DeskError::from)
            .map(|list| print_list(&list, *json)),
        ReleaseCmd::Show { id, json } => show(&desk, *id, *json),
        ReleaseCmd::Targets { id, json } => {
            let engine = desk.engine_tags(*id).await;
            targets(&desk, *id, &engine).map(|t| print_targets(&t, *json))
        }
        ReleaseCmd::Approve { id } => desk.approve(*id).await.map(|r| print_line(&r)),
        ReleaseCmd::Reject { id, reason } => desk.reject(*id, reason).map(|r| print_line(&r)),
        ReleaseCmd::Rollback { id, to, force } => desk
            .rollback(*id, to.as_deref(), *force)
            .await
            .map(|r| print_line(&r)),
        ReleaseCmd::Deploy { id } => desk.deploy(*id).await.map(|r| print_line(&r)),
        ReleaseCmd::Cancel { .. } => Err(DeskError::Invalid(
            "only a server queues deploys; in local mode a deploy runs in its own process and \
             ends on its own (roll it back once it ends)"
                .into(),
        )),
        ReleaseCmd::Reconcile => desk.reconcile().await.map(|list| {
            for r in &list {
                print_line(r);
            }
        }),
        ReleaseCmd::Verify => Ok(()),
    };
    drop(desk);
    if let Some(n) = notifier {
        n.flush(std::time::Duration::from_secs(10)).await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ (DeskError::Invalid(_) | DeskError::NotFound(_) | DeskError::Conflict(_))) => {
            eprintln!("error: {}", crate::sanitize::clean_lines(&e.to_string()));
            ExitCode::from(EXIT_USAGE)
        }
        Err(e @ DeskError::Refused(_)) => {
            eprintln!("error: {}", crate::sanitize::clean_lines(&e.to_string()));
            ExitCode::from(super::server::EXIT_FORBIDDEN)
        }
        Err(e) => {
            eprintln!("error: {}", crate::sanitize::clean_lines(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// The same commands through the server: same output, `--json` shapes and exit codes.
async fn run_remote(remote: &crate::client::Remote, cmd: &ReleaseCmd) -> ExitCode {
    use serde_json::json;
    let progress = |line: &str| eprintln!("{}", crate::sanitize::clean_lines(line));
    let result: Result<(), crate::client::ClientError> = match cmd {
        ReleaseCmd::Create {
            service,
            tag,
            image,
            initiated_by,
            github_run_id,
            github_link,
            github_ref,
            status,
        } => remote
            .create(&NewRelease {
                service_name: service.clone(),
                release_tag: tag.clone(),
                image: image.clone(),
                initiated_by: initiated_by.clone(),
                github_run_id: github_run_id.clone(),
                github_action_link: github_link.clone(),
                github_ref: github_ref.clone(),
                status: *status,
            })
            .await
            .map(|r| println!("{}", r.id)),
        ReleaseCmd::Status { id, status, note } => remote
            .ci_status(*id, *status, note.as_deref())
            .await
            .map(|r| print_line(&r)),
        ReleaseCmd::List {
            service,
            status,
            json,
        } => remote.list(service.as_deref(), *status).await.map(|list| {
            print_list(&list, *json);
        }),
        ReleaseCmd::Show { id, json } => remote
            .show(*id)
            .await
            .map(|d| print_show(&d.release, d.audit, *json)),
        ReleaseCmd::Targets { id, json } => {
            remote.targets(*id).await.map(|t| print_targets(&t, *json))
        }
        ReleaseCmd::Approve { id } => remote
            .work(*id, "approve", json!({}), progress)
            .await
            .map(|r| print_line(&r)),
        ReleaseCmd::Reject { id, reason } => {
            if reason.trim().is_empty() {
                eprintln!("error: a rejection needs a reason (--reason TEXT)");
                return ExitCode::from(EXIT_USAGE);
            }
            remote.reject(*id, reason).await.map(|r| print_line(&r))
        }
        ReleaseCmd::Rollback { id, to, force } => remote
            .work(
                *id,
                "rollback",
                json!({ "to": to, "force": force }),
                progress,
            )
            .await
            .map(|r| print_line(&r)),
        ReleaseCmd::Deploy { id } => remote
            .work(*id, "deploy", json!({}), progress)
            .await
            .map(|r| print_line(&r)),
        ReleaseCmd::Cancel { id } => remote
            .http
            .post_json::<serde_json::Value>(&format!("/v1/releases/{id}/cancel"), &json!({}))
            .await
            .map(|_| println!("release {id}: queued deploy cancelled; it stays approved")),
        ReleaseCmd::Reconcile => {
            eprintln!("the server reconciles releases itself at start; nothing to do");
            Ok(())
        }
        ReleaseCmd::Verify => {
            return match remote
                .http
                .get_json::<VerifyReply>("/v1/ledger/verify")
                .await
            {
                Ok(v) if v.ok => {
                    println!("{}", crate::sanitize::clean(&v.message));
                    ExitCode::SUCCESS
                }
                Ok(v) => {
                    eprintln!("error: {}", crate::sanitize::clean(&v.message));
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("error: {}", crate::sanitize::clean_lines(&e.to_string()));
                    ExitCode::from(e.exit_code())
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::sanitize::clean_lines(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// `GET /v1/ledger/verify`.
#[derive(serde::Deserialize)]
struct VerifyReply {
    ok: bool,
    message: String,
}

/// `release verify` against the ledger file.
fn verify(ledger: &Ledger) -> ExitCode {
    match ledger.verify() {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", crate::sanitize::clean(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn print_list(list: &[Release], json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(list).unwrap_or_default());
    } else {
        println!(
            "{:>5}  {:<14} {:<16} {:<19} {:<12} created (UTC)",
            "id", "service", "tag", "status", "by"
        );
        for r in list {
            print_line(r);
        }
    }
}

fn print_line(r: &Release) {
    println!(
        "{:>5}  {:<14} {:<16} {:<19} {:<12} {}",
        r.id,
        s(&r.service_name),
        s(&r.release_tag),
        r.status.as_str(),
        s(r.initiated_by.as_deref().unwrap_or("-")),
        r.created_at.format("%Y-%m-%d %H:%M")
    );
}

fn targets(
    desk: &ReleaseDesk,
    id: i64,
    engine: &[crate::release::targets::EngineTag],
) -> Result<Vec<crate::release::targets::RollbackTarget>, DeskError> {
    let r = desk
        .ledger
        .get(id)?
        .ok_or(DeskError::NotFound(format!("no release with id {id}")))?;
    Ok(crate::release::targets::rollback_targets(
        &desk.ledger,
        &r,
        engine,
    )?)
}

/// One line per target: tag, when it last ran (local time), where it was found.
fn print_targets(targets: &[crate::release::targets::RollbackTarget], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(targets).unwrap_or_default()
        );
        return;
    }
    let local = *chrono::Local::now().offset();
    let w = targets.iter().map(|t| s(&t.tag).len()).max().unwrap_or(0);
    for t in targets {
        println!(
            "{:w$}  {:26}  {}",
            s(&t.tag),
            t.when(&local),
            t.origin.label()
        );
    }
}

fn show(desk: &ReleaseDesk, id: i64, json: bool) -> Result<(), DeskError> {
    let r = desk
        .ledger
        .get(id)?
        .ok_or(DeskError::NotFound(format!("no release with id {id}")))?;
    let audit = desk.ledger.audit(id)?;
    print_show(&r, audit, json);
    Ok(())
}

fn print_show(r: &Release, audit: Vec<crate::release::AuditEntry>, json: bool) {
    if json {
        let v = serde_json::json!({ "release": r, "audit": audit });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!(
        "release {}: {} {} — {}",
        r.id,
        s(&r.service_name),
        s(&r.release_tag),
        r.status
    );
    let opt = |v: &Option<String>| s(v.as_deref().unwrap_or("-"));
    println!(
        "  image          {}",
        s(&format!(
            "{}:{}",
            r.image.as_deref().unwrap_or(&r.service_name),
            r.release_tag
        ))
    );
    println!("  initiated by   {}", opt(&r.initiated_by));
    println!("  rollback to    {}", opt(&r.rollback_to_tag));
    println!(
        "  GitHub run     {} {}",
        opt(&r.github_run_id),
        opt(&r.github_action_link)
    );
    println!("  GitHub ref     {}", opt(&r.github_ref));
    println!("  created        {}", r.created_at.to_rfc3339());
    println!(
        "  started        {}",
        r.started_at.map_or("-".into(), |t| t.to_rfc3339())
    );
    println!(
        "  completed      {}",
        r.completed_at.map_or("-".into(), |t| t.to_rfc3339())
    );
    println!("audit:");
    for a in audit {
        println!(
            "  {}  {:<18} -> {:<18} {}{}{}  {}",
            a.at.format("%Y-%m-%d %H:%M:%S"),
            a.from.as_deref().unwrap_or("-"),
            a.to,
            s(&a.actor),
            a.sudo_user
                .map(|u| format!(" (sudo {})", s(&u)))
                .unwrap_or_default(),
            a.ssh_client
                .map(|c| format!(" from {}", s(&c)))
                .unwrap_or_default(),
            s(&a.note.unwrap_or_default())
        );
    }
}

/// Fields set by CI or people reach the terminal only sanitized (no escapes, no secrets).
fn s(v: &str) -> String {
    crate::sanitize::clean(v)
}
