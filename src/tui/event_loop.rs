//! The event loop: terminal input, service events and effect results merged in one `select!`
//! (keys first), `update`, and a frame only when something visible changed, at most one per
//! frame interval. Generic over the input stream and the backend, so a test can drive the
//! whole dashboard with scripted keys into a `TestBackend`.

use std::time::{Duration, Instant};

use chrono::Utc;
use crossterm::event::Event as TermEvent;
use futures_util::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use super::app::{App, update};
use super::effects::{Effects, Suspend};
use super::msg::Msg;
use super::view;
use crate::events::EventRx;
use crate::logs::LogRx;

/// The shortest time between two frames (60 per second at most).
pub const FRAME: Duration = Duration::from_millis(16);

/// What the loop did, for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopStats {
    pub frames: u64,
    pub messages: u64,
}

/// The loop's inputs.
pub struct Inputs<S> {
    pub terminal: S,
    /// Control events of the services; the loop ends when this channel closes.
    pub events: EventRx,
    /// Log sources and lines, on their own channel so a flood of lines never delays or
    /// crowds out a control event; read after keys, results and events.
    pub logs: LogRx,
    pub results: mpsc::Receiver<Msg>,
}

/// Runs until `app.quit`. `suspend` performs what needs the real terminal (the pager); it
/// gets the input stream back so it can drop it while another program reads the keyboard.
pub async fn run<B, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    inputs: &mut Inputs<S>,
    effects: &mut Effects,
    mut suspend: impl FnMut(&mut Terminal<B>, &mut Inputs<S>, Suspend),
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<LoopStats>
where
    B: Backend,
    S: Stream<Item = std::io::Result<TermEvent>> + Unpin,
{
    let mut stats = LoopStats::default();
    let mut dirty = true;
    let mut last_frame: Option<Instant> = None;
    let mut batch: Vec<crate::events::Event> = Vec::with_capacity(256);
    let mut log_batch: Vec<crate::logs::LogEvent> = Vec::with_capacity(64);
    tokio::pin!(shutdown);
    let mut input_open = true;
    let mut logs_open = true;
    loop {
        // Quit first: after a hang-up the terminal is gone and drawing would fail.
        if app.quit {
            return Ok(stats);
        }
        if dirty {
            let since = last_frame.map_or(FRAME, |t| t.elapsed());
            if since >= FRAME {
                terminal
                    .draw(|f| view::draw(f, app))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                stats.frames += 1;
                last_frame = Some(Instant::now());
                dirty = false;
            }
        }
        let wake = next_wake(app, dirty, last_frame);
        let mut msgs: Vec<Msg> = Vec::new();
        tokio::select! {
            biased;
            () = &mut shutdown => msgs.push(Msg::Signal),
            ev = inputs.terminal.next(), if input_open => match ev {
                Some(Ok(TermEvent::Key(k))) => msgs.push(Msg::Key(k)),
                Some(Ok(TermEvent::Mouse(m))) => msgs.push(Msg::Mouse(m)),
                Some(Ok(TermEvent::Resize(w, h))) => msgs.push(Msg::Resize(w, h)),
                Some(Ok(_)) => {}
                // The terminal is gone (SSH dropped without a signal): leave.
                Some(Err(_)) | None => {
                    input_open = false;
                    msgs.push(Msg::Signal);
                }
            },
            Some(r) = inputs.results.recv() => msgs.push(r),
            n = inputs.events.recv_many(&mut batch, 256) => {
                if n == 0 {
                    msgs.push(Msg::Signal);
                }
                msgs.extend(batch.drain(..).map(Msg::Service));
            }
            // A closed log channel (no tailer) is no reason to leave.
            n = inputs.logs.recv_many(&mut log_batch, 64), if logs_open => {
                logs_open = n > 0;
                msgs.extend(log_batch.drain(..).map(Msg::Log));
            }
            () = tokio::time::sleep(wake) => msgs.push(Msg::Tick(Utc::now())),
        }
        // The clock moves before any message, not only on the loop's ticks (up to a minute
        // apart when idle): a toast counts its seconds from now, ages are current.
        if !matches!(msgs.first(), Some(Msg::Tick(_))) {
            let now = Utc::now();
            if now - app.now >= chrono::Duration::seconds(1) {
                msgs.insert(0, Msg::Tick(now));
            }
        }
        for msg in msgs {
            stats.messages += 1;
            let (cmds, changed) = update(app, msg);
            dirty |= changed;
            for cmd in cmds {
                if let Some(s) = effects.run(cmd) {
                    suspend(terminal, inputs, s);
                    terminal
                        .clear()
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    dirty = true;
                }
            }
        }
    }
}

/// How long the loop may sleep. Idle and nothing moving: until the status-bar clock's next
/// minute. Something animating: one second. A frame owed: the rest of the frame interval.
fn next_wake(app: &App, dirty: bool, last_frame: Option<Instant>) -> Duration {
    if dirty {
        return last_frame.map_or(Duration::ZERO, |t| FRAME.saturating_sub(t.elapsed()));
    }
    let now = Utc::now();
    let to_minute =
        Duration::from_millis((60_000 - (now.timestamp_millis().rem_euclid(60_000))) as u64);
    let mut wake = to_minute;
    if app.animating() {
        wake = wake.min(Duration::from_secs(1));
    }
    if let Some(t) = app.toasts.iter().map(|t| t.until).min() {
        wake = wake.min((t - now).to_std().unwrap_or_default() + Duration::from_millis(5));
    }
    wake
}
