//! `Notifier`: enqueue (a quick insert into the outbox that never fails its caller) and one
//! delivery task per sink, sending that sink's messages in order, with exponential backoff
//! capped at the sink's `retry_max`, a receiver's `Retry-After` honoured.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::outbox::{Outbox, StoreError};
use super::sinks::{self, SendError};
use super::{Delivery, EventKind, NotifyEvent, SinkConfig};
use crate::export::ExportEvent;
use crate::storage::leader::Role;

/// A sink counts as failing after this many failed attempts of one message in a row.
pub const FAILING_AFTER: u32 = 3;

/// A failing sink, for the status bar and `check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkHealth {
    pub sink: String,
    pub attempts: u32,
    pub error: String,
}

/// Called with every failing sink whenever that set changes.
pub type HealthObserver = Arc<dyn Fn(Vec<SinkHealth>) + Send + Sync>;

/// Who sends from the outbox.
enum Deliverer {
    /// SQLite: the one process holding `notify.db.lock` (taken when free).
    FileLock {
        path: std::path::PathBuf,
        held: Mutex<Option<std::fs::File>>,
    },
    /// PostgreSQL, in a server: the leader among the servers. `leading` is true once this
    /// server has requeued what a previous leader left `sending`.
    Leader {
        role: tokio::sync::watch::Receiver<Role>,
        leading: Mutex<bool>,
    },
    /// PostgreSQL, outside a server (a local command or dashboard): queue only; the leading
    /// server delivers.
    Never,
}

/// The notification service.
pub struct Notifier {
    outbox: Outbox,
    deliverer: Deliverer,
    sinks: Vec<SinkConfig>,
    wake: Vec<tokio::sync::Notify>,
    failing: Mutex<BTreeMap<String, SinkHealth>>,
    on_health: Mutex<Option<HealthObserver>>,
    stop: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("sinks", &self.sinks)
            .finish_non_exhaustive()
    }
}

/// `<dir>/notify.db`: the outbox beside the ledger.
pub fn outbox_path(dir: &Path) -> std::path::PathBuf {
    dir.join("notify.db")
}

impl Notifier {
    /// Queues a notification for every change written through `ledger` that means one.
    pub fn observe(self: &Arc<Self>, ledger: &mut crate::release::Ledger) {
        let n = self.clone();
        ledger.observe(Arc::new(move |change| {
            if let Some(ev) = super::NotifyEvent::from_change(&change) {
                n.enqueue(&ev);
            }
        }));
    }

    /// Opens the SQLite outbox at `path` for `sinks` (nothing is sent until `start` or
    /// `flush`); the process holding `notify.db.lock` delivers.
    pub fn open(path: &Path, sinks: Vec<SinkConfig>) -> Result<Arc<Notifier>, String> {
        let outbox =
            Outbox::open(path).map_err(|e| format!("the outbox {}: {e}", path.display()))?;
        let deliverer = Deliverer::FileLock {
            path: path.with_extension("db.lock"),
            held: Mutex::new(None),
        };
        Ok(Self::with_outbox(outbox, deliverer, sinks))
    }

    /// Opens the outbox in PostgreSQL, shared by every server on the database. With
    /// `leadership` (a server) this process delivers while it leads; without (a local
    /// command), it only queues.
    pub fn open_shared(
        pg: &crate::storage::PgConfig,
        sinks: Vec<SinkConfig>,
        leadership: Option<tokio::sync::watch::Receiver<Role>>,
    ) -> Result<Arc<Notifier>, String> {
        let outbox = Outbox::open_pg(pg).map_err(|e| format!("the outbox in {pg}: {e}"))?;
        let deliverer = match leadership {
            Some(role) => Deliverer::Leader {
                role,
                leading: Mutex::new(false),
            },
            None => Deliverer::Never,
        };
        Ok(Self::with_outbox(outbox, deliverer, sinks))
    }

    fn with_outbox(outbox: Outbox, deliverer: Deliverer, sinks: Vec<SinkConfig>) -> Arc<Notifier> {
        let failing = outbox
            .failing(FAILING_AFTER)
            .unwrap_or_default()
            .into_iter()
            .filter(|(s, _, _)| sinks.iter().any(|k| &k.name == s))
            .map(|(sink, attempts, error)| {
                (
                    sink.clone(),
                    SinkHealth {
                        sink,
                        attempts,
                        error,
                    },
                )
            })
            .collect();
        Arc::new(Notifier {
            outbox,
            deliverer,
            wake: sinks.iter().map(|_| tokio::sync::Notify::new()).collect(),
            sinks,
            failing: Mutex::new(failing),
            on_health: Mutex::new(None),
            stop: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The configured sinks.
    pub fn sinks(&self) -> &[SinkConfig] {
        &self.sinks
    }

    fn db<T>(&self, f: impl FnOnce(&Outbox) -> Result<T, StoreError>) -> Result<T, StoreError> {
        f(&self.outbox)
    }

    /// Queues `ev` for every sink that wants it. Never fails: a problem is logged and the
    /// caller (a deploy, an export) goes on.
    pub fn enqueue(&self, ev: &NotifyEvent) {
        let wanted: Vec<usize> = (0..self.sinks.len())
            .filter(|&i| self.sinks[i].wants(ev))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let names: Vec<String> = wanted.iter().map(|&i| self.sinks[i].name.clone()).collect();
        match self.db(|o| o.enqueue(ev, &names)) {
            Ok(_) => {
                for i in wanted {
                    self.wake[i].notify_one();
                }
            }
            Err(e) => tracing::warn!(
                kind = ev.kind.as_str(),
                "notify: cannot queue a message ({}): {e}",
                ev.headline()
            ),
        }
    }

    /// The notification an export event means, queued (failed all attempts; the next
    /// success after a failure).
    pub fn export(&self, e: &ExportEvent) {
        match e {
            ExportEvent::Failed {
                group,
                error,
                attempts,
                ..
            } => self.export_result(group, Err(format!("{error} (after {attempts} attempt(s))"))),
            ExportEvent::Saved { group, .. } => self.export_result(group, Ok(())),
            _ => {}
        }
    }

    /// Records how an export of `group` ended and queues what it means: every failure is
    /// `export_failed`; the first success after one is `export_recovered`. A run stopped by
    /// a shutdown ("cancelled ...") is neither.
    pub fn export_result(&self, group: &str, result: Result<(), String>) {
        if let Err(e) = &result
            && e.starts_with("cancelled")
        {
            return;
        }
        match self.db(|o| o.export_outcome(group, result.is_ok())) {
            Ok(Some(kind)) => {
                let mut ev = NotifyEvent::new(kind);
                ev.group = Some(group.to_string());
                ev.reason = result.err();
                self.enqueue(&ev);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%group, "notify: cannot record the export outcome: {e}"),
        }
    }

    /// The last `limit` deliveries, newest first.
    pub fn log(&self, limit: usize) -> Result<Vec<Delivery>, String> {
        self.db(|o| o.log(limit)).map_err(|e| e.to_string())
    }

    /// The failing sinks now.
    pub fn failing(&self) -> Vec<SinkHealth> {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Calls `f` now and whenever the failing sinks change.
    pub fn on_health(&self, f: HealthObserver) {
        f(self.failing());
        *self.on_health.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    fn set_health(&self, sink: &str, bad: Option<(u32, String)>) {
        let changed = {
            let mut g = self.failing.lock().unwrap_or_else(|p| p.into_inner());
            match bad {
                Some((attempts, error)) => {
                    let new = SinkHealth {
                        sink: sink.to_string(),
                        attempts,
                        error,
                    };
                    let was = g.insert(sink.to_string(), new.clone());
                    was.is_none_or(|w| w.error != new.error)
                }
                None => g.remove(sink).is_some(),
            }
        };
        if changed {
            let list = self.failing();
            if let Some(f) = self
                .on_health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                f(list);
            }
        }
    }

    /// Sends a test message to `sink` now (not through the queue), recorded in the log.
    pub async fn test(&self, sink: &str, actor: &str) -> Result<i64, String> {
        let Some(cfg) = self.sinks.iter().find(|s| s.name == sink) else {
            let known: Vec<&str> = self.sinks.iter().map(|s| s.name.as_str()).collect();
            return Err(if known.is_empty() {
                "no [[notify]] sinks are configured".to_string()
            } else {
                format!("no sink `{sink}`; configured: {}", known.join(", "))
            });
        };
        let mut ev = NotifyEvent::new(EventKind::Test);
        ev.actor = Some(actor.to_string());
        let id = self
            .db(|o| o.start_direct(&ev, sink))
            .map_err(|e| e.to_string())?;
        let d = Delivery {
            id,
            event_id: 0,
            sink: sink.to_string(),
            state: "sending".into(),
            attempts: 1,
            next_at: Utc::now(),
            created_at: Utc::now(),
            updated_at: None,
            last_error: None,
            event: ev,
        };
        let client = sinks::http_client(cfg);
        match sinks::send(cfg, &client, &d).await {
            Ok(()) => {
                let _ = self.db(|o| o.sent(id));
                Ok(id)
            }
            Err(e) => {
                let _ = self.db(|o| o.failed(id, e.message()));
                Err(e.message().to_string())
            }
        }
    }

    /// Starts one delivery task per sink.
    pub fn start(self: &Arc<Self>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for i in 0..self.sinks.len() {
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.worker(i).await }));
        }
    }

    /// Stops the tasks between two messages; a send under way may finish for up to `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.cancel();
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(grace, t).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Sleeps `d`, or until stopped: false when stopped.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.stop.cancelled() => false,
        }
    }

    async fn worker(&self, i: usize) {
        let client = sinks::http_client(&self.sinks[i]);
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            match self.step(i, &client).await {
                Step::Progress => {}
                Step::Wait(d) => {
                    if !self.pause(d).await {
                        return;
                    }
                }
                Step::Idle => {
                    tokio::select! {
                        () = self.wake[i].notified() => {}
                        () = self.stop.cancelled() => return,
                        // Another process (a local command, another server) may have
                        // queued into the outbox.
                        () = tokio::time::sleep(self.poll()) => {}
                    }
                }
            }
        }
    }

    /// How often an idle queue looks for messages other processes queued: more often when
    /// the outbox is shared by servers, whose requests all queue there.
    fn poll(&self) -> Duration {
        match self.deliverer {
            Deliverer::FileLock { .. } => Duration::from_secs(5),
            _ => Duration::from_secs(2),
        }
    }

    /// Whether this process delivers now. At most one process sends from an outbox, so
    /// nothing goes out twice or out of order: with SQLite, the holder of `notify.db.lock`
    /// (taken when free); with PostgreSQL, the leading server. The one that starts
    /// delivering first queues again what a dead deliverer left `sending`.
    pub fn lead(&self) -> bool {
        match &self.deliverer {
            Deliverer::Never => false,
            Deliverer::FileLock { path, held } => {
                let mut g = held.lock().unwrap_or_else(|p| p.into_inner());
                if g.is_some() {
                    return true;
                }
                use std::os::unix::fs::OpenOptionsExt;
                let Ok(f) = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .mode(0o600)
                    .open(path)
                else {
                    return false;
                };
                if f.try_lock().is_err() {
                    return false;
                }
                *g = Some(f);
                drop(g);
                self.requeue_interrupted();
                true
            }
            Deliverer::Leader { role, leading } => {
                // Held while requeueing, so no sink's worker sends before its interrupted
                // message is back at the head of its queue.
                let mut g = leading.lock().unwrap_or_else(|p| p.into_inner());
                let now = role.borrow().is_leader();
                if now && !*g {
                    self.requeue_interrupted();
                }
                *g = now;
                now
            }
        }
    }

    fn requeue_interrupted(&self) {
        match self.db(|o| o.recover()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "notify: {n} message(s) interrupted while sending are queued again (a receiver may see one twice)"
            ),
            Err(e) => tracing::warn!("notify: cannot requeue interrupted messages: {e}"),
        }
    }

    /// Sends what is due now, for a short-lived local command: only when no other process
    /// delivers from this outbox, within `limit`; retries are left for the next deliverer
    /// (the server, a dashboard, the next command).
    pub async fn flush(&self, limit: Duration) {
        if self.sinks.is_empty() || !self.lead() {
            return;
        }
        let all = (0..self.sinks.len()).map(|i| async move {
            let client = sinks::http_client(&self.sinks[i]);
            while let Step::Progress = self.step(i, &client).await {}
        });
        if tokio::time::timeout(limit, futures_util::future::join_all(all))
            .await
            .is_err()
        {
            tracing::warn!(
                "notify: messages left queued after {}",
                humantime::format_duration(limit)
            );
        }
    }

    /// One step of sink `i`'s queue: send its oldest due message, or say how long to wait.
    async fn step(&self, i: usize, client: &reqwest::Client) -> Step {
        let sink = &self.sinks[i];
        if !self.lead() {
            return Step::Wait(match self.deliverer {
                // A new leader starts delivering within a second of taking over.
                Deliverer::Leader { .. } => Duration::from_secs(1),
                _ => Duration::from_secs(5),
            });
        }
        let d = match self.db(|o| o.next(&sink.name)) {
            Err(e) => {
                tracing::warn!(sink = %sink.name, "notify: the outbox: {e}");
                return Step::Wait(Duration::from_secs(5));
            }
            Ok(None) => return Step::Idle,
            Ok(Some(d)) => d,
        };
        let now = Utc::now();
        if d.next_at > now {
            // The head of the queue waits: later messages must not overtake it.
            return Step::Wait((d.next_at - now).to_std().unwrap_or_default());
        }
        if d.attempts > 0 && (now - d.created_at).to_std().unwrap_or_default() > sink.give_up_after
        {
            let error = format!(
                "given up after {} attempt(s) over {}: {}",
                d.attempts,
                humantime::format_duration(sink.give_up_after),
                d.last_error.as_deref().unwrap_or("")
            );
            tracing::warn!(sink = %sink.name, id = d.id, "notify: {error}");
            let _ = self.db(|o| o.failed(d.id, &error));
            self.set_health(&sink.name, Some((d.attempts, error)));
            return Step::Progress;
        }
        match self.db(|o| o.claim(d.id)) {
            Ok(true) => {}
            // Another deliverer took it (two servers leading for a moment): look again.
            Ok(false) => return Step::Progress,
            Err(e) => {
                tracing::warn!(sink = %sink.name, "notify: the outbox: {e}");
                return Step::Wait(Duration::from_secs(5));
            }
        }
        let attempts = d.attempts + 1;
        // Not cancelled mid-send: `shutdown` gives a send under way its grace.
        match sinks::send(sink, client, &d).await {
            Ok(()) => {
                // Marked in the same step as the receiver's 2xx: nothing else runs between.
                if let Err(e) = self.db(|o| o.sent(d.id)) {
                    tracing::error!(sink = %sink.name, id = d.id, "notify: sent, but cannot mark it sent (it may be sent again): {e}");
                }
                tracing::info!(sink = %sink.name, id = d.id, kind = d.event.kind.as_str(), "notify: delivered");
                self.set_health(&sink.name, None);
            }
            Err(SendError::Retry { error, after }) => {
                let delay = match after {
                    Some(a) => a.min(Duration::from_secs(3600)),
                    None => backoff(attempts, sink.retry_max),
                };
                let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                tracing::warn!(sink = %sink.name, id = d.id, "notify: attempt {attempts} failed, next in {}: {error}", humantime::format_duration(delay));
                let _ = self.db(|o| o.retry(d.id, at, &error));
                if attempts >= FAILING_AFTER {
                    self.set_health(&sink.name, Some((attempts, error)));
                }
            }
            Err(SendError::Permanent(error)) => {
                tracing::warn!(sink = %sink.name, id = d.id, "notify: refused, given up: {error}");
                let _ = self.db(|o| o.failed(d.id, &error));
                self.set_health(&sink.name, Some((attempts, error)));
            }
        }
        Step::Progress
    }
}

/// What one step of a queue did.
enum Step {
    /// Nothing queued.
    Idle,
    /// The head waits this long (a retry's time, or another process delivers).
    Wait(Duration),
    /// A message was sent, retried or given up.
    Progress,
}

/// 1 s, 2 s, 4 s ... up to `max`.
pub fn backoff(attempts: u32, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    Duration::from_secs(1u64 << exp).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(300);
        let got: Vec<u64> = (1..=11).map(|a| backoff(a, max).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(40, max), max);
    }

    /// Export outcomes through a real command sink: a failure, then the success after it
    /// (and no message for a success after a success, or for a shutdown's cancel).
    #[tokio::test]
    async fn export_outcomes_reach_a_command_sink_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got.jsonl");
        let sink = SinkConfig {
            name: "cmd".into(),
            target: crate::notify::SinkTarget::Command {
                argv: vec![
                    "sh".into(),
                    "-c".into(),
                    format!("cat >> '{}'", out.display()),
                ],
            },
            events: None,
            services: None,
            retry_max: Duration::from_secs(1),
            give_up_after: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
        };
        let n = Notifier::open(&dir.path().join("notify.db"), vec![sink]).unwrap();
        n.start();
        let saved = |g: &str| ExportEvent::Saved {
            run_id: 1,
            group: g.into(),
            path: "/x.csv".into(),
            bytes: 1,
            rows: 1,
            attempts: 1,
        };
        let failed = |g: &str, e: &str| ExportEvent::Failed {
            run_id: 1,
            group: g.into(),
            error: e.into(),
            attempts: 3,
        };
        n.export(&saved("API"));
        n.export(&failed("API", "HTTP 503"));
        n.export(&failed("UI", "cancelled while waiting to retry"));
        n.export(&saved("API"));
        n.export(&saved("API"));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let lines = loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= 2 {
                break lines;
            }
            assert!(std::time::Instant::now() < deadline, "got {text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(lines[0]["kind"], "export_failed");
        assert_eq!(lines[0]["group"], "API");
        assert_eq!(lines[0]["reason"], "HTTP 503 (after 3 attempt(s))");
        assert_eq!(lines[1]["kind"], "export_recovered");
        assert!(lines[1]["id"].as_i64().unwrap() > lines[0]["id"].as_i64().unwrap());
        n.shutdown(Duration::from_secs(2)).await;
        let log = n.log(10).unwrap();
        assert_eq!(log.len(), 2);
        assert!(log.iter().all(|d| d.state == "sent"));
    }
}
