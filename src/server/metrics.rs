//! `GET /metrics`: counters in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::export::ExportEvent;
use crate::release::Status;

#[derive(Default)]
struct Counters {
    exports_saved: BTreeMap<String, u64>,
    exports_failed: BTreeMap<String, u64>,
    last_success: BTreeMap<String, i64>,
    transitions: BTreeMap<&'static str, u64>,
    deploy_seconds: Vec<f64>,
    refusals: u64,
    token_failures: u64,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    c: Mutex<Counters>,
}

/// Upper bounds of the deploy duration histogram, in seconds.
const BUCKETS: [f64; 8] = [5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.c.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts export outcomes.
    pub fn export(&self, e: &ExportEvent) {
        let mut c = self.lock();
        match e {
            ExportEvent::Saved { group, .. } => {
                *c.exports_saved.entry(group.clone()).or_default() += 1;
                c.last_success
                    .insert(group.clone(), chrono::Utc::now().timestamp());
            }
            ExportEvent::Failed { group, .. } => {
                *c.exports_failed.entry(group.clone()).or_default() += 1;
            }
            _ => {}
        }
    }

    /// Counts a release transition.
    pub fn transition(&self, to: Status) {
        *self.lock().transitions.entry(to.as_str()).or_default() += 1;
    }

    /// Records a finished deploy or rollback.
    pub fn deploy_finished(&self, took: Duration) {
        self.lock().deploy_seconds.push(took.as_secs_f64());
    }

    /// Counts a refused request.
    pub fn refusal(&self) {
        self.lock().refusals += 1;
    }

    /// Counts a request on the TCP listener refused for its bearer token (none, unknown,
    /// revoked).
    pub fn token_failure(&self) {
        self.lock().token_failures += 1;
    }

    /// The text format, with the connected sessions and the uptime.
    pub fn render(&self, sessions: usize, uptime: Duration) -> String {
        let c = self.lock();
        let mut o = String::new();
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            "opsdeck_exports_saved_total",
            "counter",
            "Exports saved, per group.",
        );
        family(
            "opsdeck_exports_failed_total",
            "counter",
            "Exports that failed all attempts, per group.",
        );
        family(
            "opsdeck_export_last_success_timestamp_seconds",
            "gauge",
            "When each group was last saved.",
        );
        family(
            "opsdeck_release_transitions_total",
            "counter",
            "Release status changes, by new status.",
        );
        family(
            "opsdeck_deploy_duration_seconds",
            "histogram",
            "Deploy and rollback durations.",
        );
        family(
            "opsdeck_sessions",
            "gauge",
            "Connected dashboards and event streams.",
        );
        family(
            "opsdeck_refusals_total",
            "counter",
            "Requests refused by access control.",
        );
        family(
            "opsdeck_token_failures_total",
            "counter",
            "Requests on the TCP listener refused for a missing, unknown or revoked token.",
        );
        family(
            "opsdeck_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
        );
        for (g, n) in &c.exports_saved {
            let _ = writeln!(o, "opsdeck_exports_saved_total{{group=\"{}\"}} {n}", esc(g));
        }
        for (g, n) in &c.exports_failed {
            let _ = writeln!(
                o,
                "opsdeck_exports_failed_total{{group=\"{}\"}} {n}",
                esc(g)
            );
        }
        for (g, t) in &c.last_success {
            let _ = writeln!(
                o,
                "opsdeck_export_last_success_timestamp_seconds{{group=\"{}\"}} {t}",
                esc(g)
            );
        }
        for (s, n) in &c.transitions {
            let _ = writeln!(o, "opsdeck_release_transitions_total{{status=\"{s}\"}} {n}");
        }
        for b in BUCKETS {
            let n = c.deploy_seconds.iter().filter(|d| **d <= b).count();
            let _ = writeln!(
                o,
                "opsdeck_deploy_duration_seconds_bucket{{le=\"{b}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "opsdeck_deploy_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            c.deploy_seconds.len()
        );
        let _ = writeln!(
            o,
            "opsdeck_deploy_duration_seconds_sum {}",
            c.deploy_seconds.iter().sum::<f64>()
        );
        let _ = writeln!(
            o,
            "opsdeck_deploy_duration_seconds_count {}",
            c.deploy_seconds.len()
        );
        let _ = writeln!(o, "opsdeck_sessions {sessions}");
        let _ = writeln!(o, "opsdeck_refusals_total {}", c.refusals);
        let _ = writeln!(o, "opsdeck_token_failures_total {}", c.token_failures);
        let _ = writeln!(o, "opsdeck_uptime_seconds {}", uptime.as_secs());
        o
    }
}

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
