//! The real terminal: raw mode, alternate screen, mouse; restored on every exit path,
//! including panics (the hook restores first, then reports).

use std::io::{Stdout, stdout};
use std::path::Path;
use std::sync::Once;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, EventStream};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use super::event_loop::Inputs;

static HOOK: Once = Once::new();

/// Enters raw mode and the alternate screen, with mouse reporting.
pub fn enter() -> std::io::Result<Terminal<CrosstermBackend<Stdout>>> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
    enable_raw_mode()?;
    execute!(stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    Terminal::new(CrosstermBackend::new(stdout()))
}

/// Leaves raw mode and the alternate screen. Safe to call more than once.
pub fn restore() {
    let _ = execute!(
        stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
}

/// Suspends the dashboard, runs `$PAGER` (default `less`) on `path`, and comes back. The
/// input stream is replaced so it cannot steal the pager's keys.
pub fn run_pager<S>(t: &mut Terminal<CrosstermBackend<Stdout>>, inputs: &mut Inputs<S>, path: &Path)
where
    S: From<EventStream>,
{
    restore();
    let pager = std::env::var("PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "less".into());
    let mut parts = pager.split_whitespace();
    let status = std::process::Command::new(parts.next().unwrap_or("less"))
        .args(parts)
        .arg(path)
        .status();
    if let Err(e) = status {
        eprintln!("cannot run {pager}: {e}");
    }
    let _ = enable_raw_mode();
    let _ = execute!(stdout(), EnterAlternateScreen, EnableMouseCapture);
    inputs.terminal = S::from(EventStream::new());
    let _ = t.clear();
}
