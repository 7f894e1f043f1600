//! Notifications: what happened (a release waits for approval, a deploy failed, an export
//! failed all its attempts ...), said once per configured sink (Telegram, a webhook, a
//! command), delivered at least once from a durable outbox in the server's SQLite.
//!
//! Producers call `Notifier::enqueue` (a quick local insert that never fails the caller);
//! `deliver.rs` runs one task per sink that sends its rows in order, with backoff.

pub mod deliver;
pub mod outbox;
pub mod sinks;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use deliver::{Notifier, SinkHealth};
pub use outbox::{Delivery, Outbox};

use crate::release::{LedgerChange, Status};

/// What a notification is about; the names are those of the `events` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A release reached `manual_testing`: someone has to approve or reject it.
    ReleaseWaiting,
    ReleaseApproved,
    ReleaseRejected,
    ReleaseDeployed,
    /// `production_failed` or `rollback_failed`.
    ReleaseFailed,
    /// A failed deploy rolled back by opsdeck itself (fires once automatic rollback exists).
    RollbackAutomatic,
    /// The engine runs something the ledger did not deploy (fires once drift checks exist).
    DriftFound,
    /// An export of a group failed all its attempts.
    ExportFailed,
    /// The next export of that group that succeeded again.
    ExportRecovered,
    /// The ledger failed verification (fires once tamper checking exists).
    LedgerTampered,
    /// `opsdeck notify test SINK`: passes every filter.
    Test,
}

impl EventKind {
    /// Every kind a filter may name.
    pub const ALL: [EventKind; 11] = [
        EventKind::ReleaseWaiting,
        EventKind::ReleaseApproved,
        EventKind::ReleaseRejected,
        EventKind::ReleaseDeployed,
        EventKind::ReleaseFailed,
        EventKind::RollbackAutomatic,
        EventKind::DriftFound,
        EventKind::ExportFailed,
        EventKind::ExportRecovered,
        EventKind::LedgerTampered,
        EventKind::Test,
    ];

    /// The filter name, e.g. `release_waiting`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ReleaseWaiting => "release_waiting",
            EventKind::ReleaseApproved => "release_approved",
            EventKind::ReleaseRejected => "release_rejected",
            EventKind::ReleaseDeployed => "release_deployed",
            EventKind::ReleaseFailed => "release_failed",
            EventKind::RollbackAutomatic => "rollback_automatic",
            EventKind::DriftFound => "drift_found",
            EventKind::ExportFailed => "export_failed",
            EventKind::ExportRecovered => "export_recovered",
            EventKind::LedgerTampered => "ledger_tampered",
            EventKind::Test => "test",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened, with what a person needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEvent {
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_id: Option<i64>,
    /// Who did it (approved, rejected, set the status), when a person did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The reason: a rejection's, a failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The CI run's link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The export group, for export events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl NotifyEvent {
    /// An event of `kind` now, with nothing else set.
    pub fn new(kind: EventKind) -> NotifyEvent {
        NotifyEvent {
            kind,
            at: Utc::now(),
            service: None,
            tag: None,
            release_id: None,
            actor: None,
            reason: None,
            link: None,
            group: None,
        }
    }

    /// The event a ledger change means, if any (refusals and intermediate steps mean none).
    pub fn from_change(c: &LedgerChange) -> Option<NotifyEvent> {
        let kind = match (c.kind(), c.to) {
            (crate::release::AuditKind::ExternalChange, _) => EventKind::DriftFound,
            (crate::release::AuditKind::AutomaticRollback, _) => EventKind::RollbackAutomatic,
            (crate::release::AuditKind::Refusal | crate::release::AuditKind::NotDeployed, _) => {
                return None;
            }
            (crate::release::AuditKind::Transition, to) => match to {
                Status::ManualTesting => EventKind::ReleaseWaiting,
                Status::ManualTestPassed => EventKind::ReleaseApproved,
                Status::ManualTestFailed => EventKind::ReleaseRejected,
                Status::Deployed => EventKind::ReleaseDeployed,
                Status::ProductionFailed | Status::RollbackFailed => EventKind::ReleaseFailed,
                _ => return None,
            },
        };
        let r = &c.release;
        Some(NotifyEvent {
            kind,
            at: Utc::now(),
            service: Some(r.service_name.clone()),
            tag: Some(r.release_tag.clone()),
            release_id: Some(r.id),
            actor: Some(c.actor.clone()),
            reason: c
                .note
                .as_deref()
                .map(|n| {
                    n.trim_start_matches("external_change: ")
                        .trim_start_matches("automatic_rollback: ")
                        .to_string()
                })
                .filter(|n| !n.trim().is_empty()),
            link: r.github_action_link.clone(),
            group: None,
        })
    }

    /// One line saying what happened.
    pub fn headline(&self) -> String {
        let what = match (&self.service, &self.tag) {
            (Some(s), Some(t)) => format!("{s} {t}"),
            (Some(s), None) => s.clone(),
            _ => String::new(),
        };
        let by = self
            .actor
            .as_deref()
            .map(|a| format!(" by {a}"))
            .unwrap_or_default();
        let group = self.group.as_deref().unwrap_or("?");
        match self.kind {
            EventKind::ReleaseWaiting => format!("{what} waits for approval (manual testing)"),
            EventKind::ReleaseApproved => format!("{what} approved{by}"),
            EventKind::ReleaseRejected => format!("{what} rejected{by}"),
            EventKind::ReleaseDeployed => format!("{what} deployed"),
            EventKind::ReleaseFailed => format!("{what} failed"),
            EventKind::RollbackAutomatic => format!("{what} rolled back automatically"),
            EventKind::DriftFound => format!("drift on {what}"),
            EventKind::ExportFailed => format!("export of {group} failed all its attempts"),
            EventKind::ExportRecovered => format!("export of {group} succeeded again"),
            EventKind::LedgerTampered => "the release ledger failed verification".into(),
            EventKind::Test => "test message from opsdeck".into(),
        }
    }

    /// What acts on it: the command (and dashboard key).
    pub fn action(&self) -> Option<String> {
        let id = self.release_id?;
        Some(match self.kind {
            EventKind::ReleaseWaiting => format!(
                "opsdeck release approve {id} | opsdeck release reject {id} --reason ... (keys a / x in the Releases tab)"
            ),
            EventKind::ReleaseFailed | EventKind::ReleaseDeployed => {
                format!("opsdeck release show {id}; opsdeck release rollback {id} (key r)")
            }
            _ => format!("opsdeck release show {id}"),
        })
    }

    /// The message as plain text lines: what, reason, who, link, action. Outside text is
    /// cleaned (secrets masked, control characters escaped).
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        // Short enough that the escaped HTML stays under Telegram's 4 096 characters even
        // when every character escapes to `&amp;`.
        let c = |s: &str| crate::sanitize::clean_max(s, 120);
        let mut out = vec![("", c(&self.headline()))];
        if let Some(r) = &self.reason {
            out.push(("reason", crate::sanitize::clean_max(r, 250)));
        }
        if let Some(a) = &self.actor
            && !matches!(
                self.kind,
                EventKind::ReleaseApproved | EventKind::ReleaseRejected
            )
        {
            out.push(("by", c(a)));
        }
        if let Some(l) = &self.link {
            out.push(("CI run", crate::sanitize::clean_max(l, 200)));
        }
        if let Some(a) = self.action() {
            out.push(("act", a));
        }
        out
    }

    /// The message as plain text.
    pub fn text(&self) -> String {
        self.lines()
            .into_iter()
            .map(|(k, v)| if k.is_empty() { v } else { format!("{k}: {v}") })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The message as Telegram HTML: the headline bold, everything escaped.
    pub fn html(&self) -> String {
        self.lines()
            .into_iter()
            .map(|(k, v)| {
                if k.is_empty() {
                    format!("<b>{}</b>", html_escape(&v))
                } else if k == "act" {
                    format!("{k}: <code>{}</code>", html_escape(&v))
                } else {
                    format!("{k}: {}", html_escape(&v))
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Escapes `&`, `<` and `>` for Telegram's HTML parse mode.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A webhook's body shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The event with `id` and `text`.
    Json,
    /// `{"text": ...}` for Slack and Mattermost incoming webhooks.
    Slack,
}

/// Where a sink sends.
#[derive(Clone)]
pub enum SinkTarget {
    Telegram {
        chat_id: String,
        token: SecretString,
        api_url: String,
    },
    Webhook {
        url: SecretString,
        format: WebhookFormat,
        secret: Option<SecretString>,
    },
    Command {
        argv: Vec<String>,
    },
}

impl SinkTarget {
    /// "telegram", "webhook" or "command".
    pub fn kind(&self) -> &'static str {
        match self {
            SinkTarget::Telegram { .. } => "telegram",
            SinkTarget::Webhook { .. } => "webhook",
            SinkTarget::Command { .. } => "command",
        }
    }
}

/// Never prints a token, a hook URL or a signing secret.
impl std::fmt::Debug for SinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkTarget::Telegram {
                chat_id, api_url, ..
            } => f
                .debug_struct("Telegram")
                .field("chat_id", chat_id)
                .field("api_url", &crate::sanitize::url(api_url))
                .finish_non_exhaustive(),
            SinkTarget::Webhook { format, secret, .. } => f
                .debug_struct("Webhook")
                .field("format", format)
                .field("signed", &secret.is_some())
                .finish_non_exhaustive(),
            SinkTarget::Command { argv } => f.debug_struct("Command").field("argv", argv).finish(),
        }
    }
}

/// A configured `[[notify]]` entry.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The `name` key, default `<kind>-<index>` (1-based).
    pub name: String,
    pub target: SinkTarget,
    /// Kinds this sink wants; `None`: all.
    pub events: Option<BTreeSet<EventKind>>,
    /// Services this sink wants; `None`: all. Events without a service always pass.
    pub services: Option<BTreeSet<String>>,
    /// Longest pause between two attempts of one message.
    pub retry_max: Duration,
    /// A message still not delivered after this long is given up (`failed`).
    pub give_up_after: Duration,
    /// One attempt's time limit.
    pub timeout: Duration,
}

impl SinkConfig {
    /// Whether this sink wants `ev`.
    pub fn wants(&self, ev: &NotifyEvent) -> bool {
        if ev.kind == EventKind::Test {
            return true;
        }
        let kind_ok = self.events.as_ref().is_none_or(|k| k.contains(&ev.kind));
        let service_ok = match (&self.services, &ev.service) {
            (Some(list), Some(s)) => list.contains(s),
            _ => true,
        };
        kind_ok && service_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::Release;

    fn change(from: Option<Status>, to: Status, note: Option<&str>) -> LedgerChange {
        LedgerChange {
            release: Release {
                id: 7,
                service_name: "api".into(),
                release_tag: "v1.5.0".into(),
                rollback_to_tag: None,
                image: None,
                status: to,
                initiated_by: Some("ci".into()),
                github_run_id: Some("42".into()),
                github_action_link: Some("https://ci.example/run/42".into()),
                github_ref: None,
                created_at: Utc::now(),
                started_at: None,
                completed_at: None,
            },
            actor: "alice".into(),
            from,
            to,
            note: note.map(str::to_string),
        }
    }

    #[test]
    fn ledger_changes_map_to_events() {
        use Status::*;
        let k = |from, to| NotifyEvent::from_change(&change(from, to, None)).map(|e| e.kind);
        assert_eq!(k(None, ManualTesting), Some(EventKind::ReleaseWaiting));
        assert_eq!(
            k(Some(Building), ManualTesting),
            Some(EventKind::ReleaseWaiting)
        );
        assert_eq!(
            k(Some(ManualTesting), ManualTestPassed),
            Some(EventKind::ReleaseApproved)
        );
        assert_eq!(
            k(Some(Deploying), ProductionFailed),
            Some(EventKind::ReleaseFailed)
        );
        assert_eq!(
            k(Some(Rollback), RollbackFailed),
            Some(EventKind::ReleaseFailed)
        );
        assert_eq!(
            k(Some(Deploying), Deployed),
            Some(EventKind::ReleaseDeployed)
        );
        assert_eq!(k(Some(ManualTestPassed), Deploying), None);
        assert_eq!(k(None, Building), None);
        // A refusal is audited with from == to: no message.
        assert_eq!(k(Some(ManualTesting), ManualTesting), None);
        // Entries that change no status but say something happened to production do.
        let drift = NotifyEvent::from_change(&change(
            Some(Deployed),
            Deployed,
            Some("external_change: engine runs v1, ledger says v1.5.0 (service prod_api)"),
        ))
        .unwrap();
        assert_eq!(drift.kind, EventKind::DriftFound);
        assert_eq!(
            drift.reason.as_deref(),
            Some("engine runs v1, ledger says v1.5.0 (service prod_api)")
        );
        let back = NotifyEvent::from_change(&change(
            Some(Deploying),
            Deploying,
            Some("automatic_rollback: put prod_api back on v1"),
        ))
        .unwrap();
        assert_eq!(back.kind, EventKind::RollbackAutomatic);
        assert!(
            back.text()
                .starts_with("api v1.5.0 rolled back automatically")
        );
    }

    #[test]
    fn the_message_says_what_who_why_where_and_how_to_act() {
        let ev = NotifyEvent::from_change(&change(
            Some(Status::ManualTesting),
            Status::ManualTestFailed,
            Some("checkout <broken> & slow"),
        ))
        .unwrap();
        let t = ev.text();
        assert!(t.starts_with("api v1.5.0 rejected by alice\n"), "{t}");
        assert!(t.contains("reason: checkout <broken> & slow"), "{t}");
        assert!(t.contains("CI run: https://ci.example/run/42"), "{t}");
        assert!(t.contains("opsdeck release show 7"), "{t}");
        let h = ev.html();
        assert!(h.contains("<b>api v1.5.0 rejected by alice</b>"), "{h}");
        assert!(h.contains("checkout &lt;broken&gt; &amp; slow"), "{h}");
        assert!(!h.contains("<broken>"), "{h}");
        let mut long = ev.clone();
        long.reason = Some("&".repeat(10_000));
        long.actor = Some("<".repeat(10_000));
        long.link = Some(">".repeat(10_000));
        long.service = Some("&".repeat(10_000));
        assert!(long.html().chars().count() < 4096, "{}", long.html().len());
        let w = NotifyEvent::from_change(&change(None, Status::ManualTesting, None)).unwrap();
        assert!(
            w.text().contains("opsdeck release approve 7"),
            "{}",
            w.text()
        );
    }

    #[test]
    fn filters_by_kind_and_service() {
        let sink = SinkConfig {
            name: "t".into(),
            target: SinkTarget::Command {
                argv: vec!["true".into()],
            },
            events: Some([EventKind::ReleaseWaiting].into()),
            services: Some(["api".to_string()].into()),
            retry_max: Duration::from_secs(1),
            give_up_after: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
        };
        let mut ev = NotifyEvent::new(EventKind::ReleaseWaiting);
        ev.service = Some("api".into());
        assert!(sink.wants(&ev));
        ev.service = Some("web".into());
        assert!(!sink.wants(&ev));
        ev.kind = EventKind::ReleaseDeployed;
        ev.service = Some("api".into());
        assert!(!sink.wants(&ev));
        assert!(sink.wants(&NotifyEvent::new(EventKind::Test)));
    }

    #[test]
    fn every_kind_round_trips_its_name() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
    }
}
