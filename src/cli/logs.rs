//! `opsdeck logs --print ...`: the Logs tab's parsing (formats, levels, multi-line messages)
//! headless, for scripts and pipes.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Cli, EXIT_USAGE, load};
use crate::logs::Level;
use crate::logs::print::{Options, Source};

/// The flags of `opsdeck logs` that print instead of opening the dashboard.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PrintArgs {
    /// Print the sources' messages (continuation lines included) instead of opening the
    /// dashboard; `-` reads standard input.
    #[arg(long)]
    pub print: bool,
    /// One JSON object per message: source, ts (RFC 3339 UTC or null), level (trace, debug,
    /// info, notice, warn, error, fatal or null), format, text.
    #[arg(long, requires = "print")]
    pub json: bool,
    /// Only messages at least this severe (trace, debug, info, notice, warn, error, fatal).
    #[arg(long, value_name = "LEVEL", requires = "print")]
    pub level: Option<String>,
    /// Only messages with a line matching this regex (smart case, as the tab's search).
    #[arg(long, value_name = "REGEX", requires = "print")]
    pub grep: Option<String>,
    /// Print only the number of matching messages.
    #[arg(long, requires = "print")]
    pub count: bool,
    /// Only messages of the last DURATION (e.g. 15m, 2h); an untimed message has the time of
    /// the message before it in its source.
    #[arg(long, value_name = "DURATION", requires = "print")]
    pub since: Option<String>,
    /// Keep printing new messages, like `tail -F`, until SIGTERM or Ctrl-C.
    #[arg(long, requires = "print")]
    pub follow: bool,
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// Checks the flags into options; a bad value is an error that names it.
pub fn options(a: &PrintArgs, now: chrono::DateTime<chrono::Utc>) -> Result<Options, String> {
    let level = match &a.level {
        Some(l) => Some(Level::parse(l).ok_or_else(|| {
            format!("--level {l}: not a level (trace, debug, info, notice, warn, error, fatal)")
        })?),
        None => None,
    };
    let grep = match &a.grep {
        Some(g) => Some(
            crate::tui::tabs::logs::smart_regex(g)
                .map_err(|e| format!("--grep: not a regex: {e}"))?,
        ),
        None => None,
    };
    let since = match &a.since {
        Some(d) => {
            let d = humantime::parse_duration(d.trim())
                .map_err(|e| format!("--since {d}: not a duration ({e}); e.g. 15m, 2h"))?;
            Some(now - chrono::Duration::from_std(d).map_err(|e| format!("--since: {e}"))?)
        }
        None => None,
    };
    Ok(Options {
        json: a.json,
        level,
        grep,
        count: a.count,
        since,
        follow: a.follow,
    })
}

/// `opsdeck logs --print [...] SOURCE...`.
pub async fn print(cli: &Cli, names: &[String], args: &PrintArgs) -> ExitCode {
    let opts = match options(args, chrono::Utc::now()) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    if names.is_empty() {
        return usage("--print needs at least one SOURCE (a configured name, a path, or -)");
    }
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let configured = cfg.logs.sources.clone().unwrap_or_default();
    let mut sources = Vec::new();
    for n in names {
        match configured.iter().find(|s| &s.name == n) {
            Some(s) => match (&s.path, &s.service) {
                (Some(p), _) => sources.push(Source {
                    name: n.clone(),
                    path: p.clone(),
                }),
                _ => {
                    return usage(format!(
                        "{n} is a Swarm service; --print reads files: \
                         docker service logs -t {} | opsdeck logs --print -",
                        s.service.as_deref().unwrap_or(n)
                    ));
                }
            },
            None => sources.push(Source {
                name: n.clone(),
                path: n.clone(),
            }),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut err = std::io::stderr();
            crate::logs::print::run(&sources, &opts, &mut out, &mut err, &stop)
        })
    };
    let shutdown = crate::shutdown::signal();
    tokio::pin!(worker);
    let res = tokio::select! {
        r = &mut worker => r,
        () = shutdown => {
            stop.store(true, Ordering::Relaxed);
            // The printer stops at its next poll; standard input read to its end (no
            // --follow) may never end, and the runtime would wait for it: exit instead.
            match tokio::time::timeout(std::time::Duration::from_secs(2), &mut worker).await {
                Ok(r) => r,
                Err(_) => std::process::exit(0),
            }
        }
    };
    match res {
        // Like `cat`: the readable sources were printed, and a missing one fails the run
        // (following, a file may still appear).
        Ok(Ok(p)) if p.unreadable > 0 && !args.follow => ExitCode::FAILURE,
        Ok(Ok(_)) => ExitCode::SUCCESS,
        // `| head` closed the pipe: what was wanted was printed.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
