//! What the engine runs for each configured service: the data `opsdeck services`,
//! `GET /v1/services` and the Releases tab show.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The live state of one configured service, read from the engine.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceLive {
    /// The release service's name (`api`), as in `[[releases.services]]`.
    pub service: String,
    /// The Swarm service's own name (`prod_api`).
    pub swarm_service: String,
    /// `repository:tag` of the service spec (what the engine runs or is moving to).
    pub image: String,
    /// The tag of `image` (empty when it has none).
    pub tag: String,
    pub desired: u64,
    /// Running tasks on the spec's image.
    pub running: u64,
    /// `updating`, `completed`, `paused`, `rollback_started`, `rollback_paused`,
    /// `rollback_completed`, or empty when the service was never updated.
    pub update_state: String,
    pub update_message: String,
    /// When the spec last changed (the engine's `UpdatedAt`): "since".
    pub updated_at: Option<DateTime<Utc>>,
    /// Tasks, newest first per slot: the current one and a few before it.
    pub tasks: Vec<TaskLive>,
    /// What the ledger deployed last on this service.
    pub ledger_tag: Option<String>,
    /// The engine runs something the ledger did not deploy last.
    pub drift: Option<Drift>,
    /// The engine did not answer or has no such service; everything above is then empty.
    pub error: Option<String>,
    /// When this was read.
    pub observed_at: DateTime<Utc>,
}

/// One task of a service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskLive {
    /// The first 12 characters of the task id.
    pub id: String,
    pub slot: Option<u64>,
    /// The node's host name (its id when the node is gone).
    pub node: String,
    pub tag: String,
    /// `new`, `pending`, ..., `running`, `complete`, `failed`, `rejected`, `shutdown`.
    pub state: String,
    pub desired_state: String,
    /// The engine's error (`task: non-zero exit (1)`, `No such image: …`).
    pub error: String,
    pub message: String,
    pub exit_code: Option<i64>,
    /// The container's HEALTHCHECK status (`starting`, `healthy`, `unhealthy`) when it has one.
    pub health: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

/// The engine runs `engine_tag` while the ledger says `ledger_tag` was deployed last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub engine_tag: String,
    pub ledger_tag: String,
    pub since: Option<DateTime<Utc>>,
}

impl Drift {
    /// "drift: engine runs v1, ledger says v2, since 14:02" (times in `offset`).
    pub fn text(&self, offset: &chrono::FixedOffset) -> String {
        let since = self
            .since
            .map(|t| format!(", since {}", t.with_timezone(offset).format("%m-%d %H:%M")))
            .unwrap_or_default();
        format!(
            "drift: engine runs {}, ledger says {}{since}",
            self.engine_tag, self.ledger_tag
        )
    }
}

impl TaskLive {
    /// A task that ended badly: failed or rejected (a task shut down by an update exits 137
    /// and is not a failure).
    pub fn failed(&self) -> bool {
        matches!(self.state.as_str(), "failed" | "rejected")
    }

    /// "task 3f2a… (slot 1) on node1: non-zero exit (1), exit code 1": the reason a person
    /// needs, from the engine's own words.
    pub fn reason(&self) -> String {
        let mut s = format!("task {}", self.id);
        if let Some(slot) = self.slot {
            s.push_str(&format!(" (slot {slot})"));
        }
        if !self.node.is_empty() {
            s.push_str(&format!(" on {}", self.node));
        }
        s.push_str(&format!(" {}", self.state));
        let error = if self.error.is_empty() {
            &self.message
        } else {
            &self.error
        };
        if !error.is_empty() {
            s.push_str(&format!(": {error}"));
        }
        if let Some(code) = self.exit_code.filter(|c| *c != 0) {
            s.push_str(&format!(", exit code {code}"));
        }
        if self.health.as_deref() == Some("unhealthy") {
            s.push_str(", health check unhealthy");
        }
        s
    }
}

impl ServiceLive {
    /// The state of a service the engine could not be asked about.
    pub fn unreachable(service: &str, swarm_service: &str, error: String) -> ServiceLive {
        ServiceLive {
            service: service.into(),
            swarm_service: swarm_service.into(),
            error: Some(error),
            observed_at: Utc::now(),
            ..Default::default()
        }
    }

    /// A rollout or rollback is under way.
    pub fn in_motion(&self) -> bool {
        matches!(self.update_state.as_str(), "updating" | "rollback_started")
    }

    /// Every desired task runs the spec's image and no update is stuck.
    pub fn healthy(&self) -> bool {
        self.error.is_none()
            && self.running >= self.desired
            && !matches!(
                self.update_state.as_str(),
                "paused" | "rollback_paused" | "updating" | "rollback_started"
            )
    }

    /// The tasks the engine wants running now (desired state running), one per slot.
    pub fn current_tasks(&self) -> impl Iterator<Item = &TaskLive> {
        self.tasks.iter().filter(|t| t.desired_state == "running")
    }

    /// The newest failed task of `tag` (the reason a rollout failed).
    pub fn failure_of(&self, tag: &str) -> Option<&TaskLive> {
        self.tasks
            .iter()
            .filter(|t| t.tag == tag && t.failed())
            .max_by_key(|t| t.since)
    }

    /// What the service line says after the name: "running v1.4.0  2/2  ✔" or the problem.
    pub fn status_word(&self) -> &'static str {
        if self.error.is_some() {
            "unknown"
        } else {
            match self.update_state.as_str() {
                "updating" => "updating",
                "rollback_started" => "rolling back",
                "paused" => "paused",
                "rollback_paused" => "rollback paused",
                _ if self.running < self.desired => "degraded",
                _ => "running",
            }
        }
    }
}

/// `repo:tag@sha256:…` → `repo:tag` (the engine pins digests into the spec).
pub fn strip_digest(image: &str) -> &str {
    image.split('@').next().unwrap_or(image)
}

/// The tag of an image reference (`registry:5000/team/api:v1` → `v1`), empty without one.
pub fn tag_of_image(image: &str) -> String {
    let image = strip_digest(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':')
        .map(|(_, t)| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_from_the_last_path_part() {
        assert_eq!(tag_of_image("registry:5000/team/api:v1@sha256:ab"), "v1");
        assert_eq!(tag_of_image("registry:5000/team/api"), "");
        assert_eq!(tag_of_image("busybox:1.36"), "1.36");
    }

    #[test]
    fn a_failed_task_says_its_error_and_exit_code() {
        let t = TaskLive {
            id: "3f2a9c1b0d4e".into(),
            slot: Some(1),
            node: "node1".into(),
            tag: "v2".into(),
            state: "failed".into(),
            desired_state: "shutdown".into(),
            error: "task: non-zero exit (1)".into(),
            exit_code: Some(1),
            ..Default::default()
        };
        assert!(t.failed());
        assert_eq!(
            t.reason(),
            "task 3f2a9c1b0d4e (slot 1) on node1 failed: task: non-zero exit (1), exit code 1"
        );
        let s = ServiceLive {
            tasks: vec![t.clone()],
            ..Default::default()
        };
        assert_eq!(s.failure_of("v2"), Some(&t));
        assert_eq!(s.failure_of("v1"), None);
    }
}
