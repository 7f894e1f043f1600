//! `SwarmDeployer`: updates a Swarm service's image through the Docker Engine API (bollard,
//! local socket, `DOCKER_HOST` honoured) and watches the update until it completes, pauses,
//! rolls back or times out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{ListTasksOptions, UpdateServiceOptions};
use tokio_util::sync::CancellationToken;

/// The live state of a service, for the Releases tab.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ServiceState {
    /// The Swarm service's own name (`prod_api`), which may differ from the release's.
    #[serde(default)]
    pub name: String,
    pub image: String,
    pub running: u64,
    pub desired: u64,
    /// `updating`, `completed`, `paused`, `rollback_started`, ... or empty.
    pub update_state: String,
    pub update_message: String,
}

/// Swarm deployer.
pub struct SwarmDeployer {
    docker: Docker,
    pub poll: Duration,
}

impl SwarmDeployer {
    /// Connects to the local engine (or `DOCKER_HOST`) and negotiates the API version.
    pub async fn connect() -> Result<SwarmDeployer, String> {
        Ok(SwarmDeployer {
            docker: Self::docker().await?,
            poll: Duration::from_millis(500),
        })
    }

    /// A client of the local engine (or `DOCKER_HOST`), API version negotiated.
    pub async fn docker() -> Result<Docker, String> {
        let docker = Docker::connect_with_defaults()
            .map_err(|e| format!("cannot reach the Docker engine: {e}"))?;
        docker
            .negotiate_version()
            .await
            .map_err(|e| format!("cannot reach the Docker engine: {e}"))
    }

    /// Updates `service` to `image` and waits for the outcome; `Ok` holds the engine's message.
    pub async fn update_image(
        &self,
        service: &str,
        image: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        self.update_image_until(service, image, timeout, &CancellationToken::new())
            .await
    }

    /// `update_image` that gives up when `cancel` fires (someone cancelled the deploy).
    pub async fn update_image_until(
        &self,
        service: &str,
        image: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<String, String> {
        let started = Instant::now();
        self.apply(service, image).await?;
        tokio::select! {
            r = self.watch(service, image, started, timeout) => r,
            () = cancel.cancelled() => Err("cancelled while the update ran".into()),
        }
    }

    /// The engine's server-side rollback to the spec before the last update (as `docker
    /// service rollback`), watched until the service runs it again.
    pub async fn rollback_previous(
        &self,
        service: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let started = Instant::now();
        let svc = self
            .docker
            .inspect_service(service, None)
            .await
            .map_err(|e| format!("cannot inspect service {service}: {e}"))?;
        // The engine may be rolling back on its own (`--update-failure-action rollback`):
        // asking again would swap back to the failed spec, so only wait for it.
        let already = svc
            .update_status
            .as_ref()
            .and_then(|u| u.state.as_ref())
            .is_some_and(|s| {
                matches!(
                    s.to_string().as_str(),
                    "rollback_started" | "rollback_completed" | "rollback_paused"
                )
            });
        if !already {
            let version = svc
                .version
                .and_then(|v| v.index)
                .ok_or("the service has no version index")?;
            let spec = svc.spec.ok_or("the service has no spec")?;
            self.docker
                .update_service(
                    service,
                    spec,
                    UpdateServiceOptions {
                        version: version as i32,
                        rollback: Some("previous".into()),
                        ..Default::default()
                    },
                    None,
                )
                .await
                .map_err(|e| format!("the engine refused the rollback of {service}: {e}"))?;
        }
        loop {
            let state = self.state(service).await?;
            match state.update_state.as_str() {
                "rollback_completed" if state.running >= state.desired => {
                    return Ok(format!(
                        "{service} runs {} again ({}/{} tasks)",
                        state.image, state.running, state.desired
                    ));
                }
                "rollback_paused" => {
                    return Err(format!("rollback paused: {}", state.update_message));
                }
                _ => {}
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "the rollback timed out after {}s ({}/{} tasks running)",
                    timeout.as_secs(),
                    state.running,
                    state.desired
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Whether `image` can be found before anything changes: on this manager, or in its
    /// registry. A missing image is a deploy that never starts, not a failed one.
    pub async fn image_available(&self, image: &str) -> Result<(), String> {
        if self.docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        // Without a registry in reach this fails fast or hangs on DNS: bounded either way.
        match tokio::time::timeout(
            Duration::from_secs(15),
            self.docker
                .inspect_registry_image(image, credentials_for(image)),
        )
        .await
        .unwrap_or_else(|_| Err(bollard::errors::Error::RequestTimeoutError))
        {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "image {image} is neither on this manager nor in its registry ({e})"
            )),
        }
    }

    /// The engine client, for reading live state.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Watches an update someone else started (reconciliation after a restart).
    pub async fn update_image_watch_only(
        &self,
        service: &str,
        image: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let state = self.state(service).await?;
        if state.image != image {
            return Err(format!("{service} runs {} instead of {image}", state.image));
        }
        self.watch(service, image, Instant::now(), timeout).await
    }

    /// One service update with the current version index; a stale index is re-read and tried
    /// once more, then reported as a conflict.
    async fn apply(&self, service: &str, image: &str) -> Result<(), String> {
        for attempt in 0..2 {
            let svc = self
                .docker
                .inspect_service(service, None)
                .await
                .map_err(|e| format!("cannot inspect service {service}: {e}"))?;
            let version = svc
                .version
                .and_then(|v| v.index)
                .ok_or("the service has no version index")?;
            let mut spec = svc.spec.ok_or("the service has no spec")?;
            let task = spec.task_template.get_or_insert_with(Default::default);
            let container = task.container_spec.get_or_insert_with(Default::default);
            let same_image = container
                .image
                .as_deref()
                .is_some_and(|i| strip_digest(i) == image);
            container.image = Some(image.to_string());
            if same_image {
                // Redeploying the same tag: force new tasks so the image is pulled again.
                task.force_update = Some(task.force_update.unwrap_or(0) + 1);
            }
            let options = UpdateServiceOptions {
                version: version as i32,
                ..Default::default()
            };
            match self
                .docker
                .update_service(service, spec, options, credentials_for(image))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if attempt == 0 && e.to_string().contains("out of sequence") => {
                    tracing::info!(
                        service,
                        "service changed under us (stale version index); retrying once"
                    );
                }
                Err(e) if e.to_string().contains("out of sequence") => {
                    return Err(format!(
                        "conflict: service {service} keeps changing while we update it: {e}"
                    ));
                }
                Err(e) => return Err(format!("the engine refused the update of {service}: {e}")),
            }
        }
        unreachable!("the loop returns")
    }

    async fn watch(
        &self,
        service: &str,
        image: &str,
        started: Instant,
        timeout: Duration,
    ) -> Result<String, String> {
        loop {
            let state = self.state(service).await?;
            match state.update_state.as_str() {
                "completed" if state.running >= state.desired && state.image == image => {
                    return Ok(format!(
                        "{service} runs {image} ({}/{} tasks)",
                        state.running, state.desired
                    ));
                }
                "paused" | "rollback_started" | "rollback_paused" | "rollback_completed" => {
                    return Err(format!(
                        "update {}: {}",
                        state.update_state, state.update_message
                    ));
                }
                _ => {}
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "timed out after {}s (update state `{}`, {}/{} tasks running)",
                    timeout.as_secs(),
                    state.update_state,
                    state.running,
                    state.desired
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// The live state of a service.
    pub async fn state(&self, service: &str) -> Result<ServiceState, String> {
        let svc = self
            .docker
            .inspect_service(service, None)
            .await
            .map_err(|e| format!("cannot inspect service {service}: {e}"))?;
        let spec = svc.spec.unwrap_or_default();
        let image = spec
            .task_template
            .and_then(|t| t.container_spec)
            .and_then(|c| c.image)
            .map(|i| strip_digest(&i).to_string())
            .unwrap_or_default();
        let desired = spec
            .mode
            .and_then(|m| m.replicated)
            .and_then(|r| r.replicas)
            .unwrap_or(1) as u64;
        let (update_state, update_message) = svc
            .update_status
            .map(|u| {
                (
                    u.state.map(|s| s.to_string()).unwrap_or_default(),
                    u.message.unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        let mut filters = HashMap::new();
        filters.insert("service".to_string(), vec![service.to_string()]);
        filters.insert("desired-state".to_string(), vec!["running".to_string()]);
        let tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| format!("cannot list tasks of {service}: {e}"))?;
        let running = tasks
            .iter()
            .filter(|t| {
                t.status
                    .as_ref()
                    .and_then(|s| s.state.as_ref())
                    .map(|s| s.to_string())
                    .as_deref()
                    == Some("running")
                    && t.spec
                        .as_ref()
                        .and_then(|s| s.container_spec.as_ref())
                        .and_then(|c| c.image.as_deref())
                        .is_some_and(|i| strip_digest(i) == image)
            })
            .count() as u64;
        // A service that was never updated has no update status: its tasks tell.
        let update_state = if update_state.is_empty() && running >= desired {
            "completed".into()
        } else {
            update_state
        };
        Ok(ServiceState {
            name: service.to_string(),
            image,
            running,
            desired,
            update_state,
            update_message,
        })
    }
}

impl SwarmDeployer {
    /// Whether the engine answers and has `service`: checked before a release becomes
    /// deploying, so a deploy that cannot start leaves it approved.
    pub async fn can_update(&self, service: &str) -> Result<(), String> {
        self.docker
            .inspect_service(service, None)
            .await
            .map(drop)
            .map_err(|e| format!("the engine cannot update service {service}: {e}"))
    }

    /// Tags of `repository` the engine knows ran or could run on `service`: the current
    /// spec's image, the service's task history (with when each tag last ran; it holds the
    /// previous spec's tasks, as bollard's model has no `PreviousSpec`), and the repository's
    /// images present on this manager (which include what ran before opsdeck, since the
    /// engine keeps them).
    pub async fn known_tags(
        &self,
        service: &str,
        repository: &str,
    ) -> Vec<crate::release::targets::EngineTag> {
        use crate::release::targets::{EngineTag, TargetOrigin};
        let mut tags: Vec<EngineTag> = Vec::new();
        let mut add = |tag: String,
                       origin: TargetOrigin,
                       at: Option<chrono::DateTime<chrono::Utc>>,
                       running: bool| {
            match tags.iter_mut().find(|t| t.tag == tag) {
                Some(t) => {
                    t.origin = t.origin.min(origin);
                    t.last_ran = t.last_ran.max(at);
                    t.running |= running;
                }
                None => tags.push(EngineTag {
                    tag,
                    origin,
                    last_ran: at,
                    running,
                }),
            }
        };
        if let Ok(svc) = self.docker.inspect_service(service, None).await
            && let Some(t) = svc
                .spec
                .and_then(|s| s.task_template)
                .and_then(|t| t.container_spec)
                .and_then(|c| c.image)
                .and_then(|i| tag_of(&i, repository))
        {
            add(t, TargetOrigin::EngineSpec, None, false);
        }
        let mut filters = HashMap::new();
        filters.insert("service".to_string(), vec![service.to_string()]);
        if let Ok(tasks) = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
        {
            for t in tasks {
                let status = t.status.unwrap_or_default();
                let Some(tag) = t
                    .spec
                    .and_then(|s| s.container_spec)
                    .and_then(|c| c.image)
                    .and_then(|i| tag_of(&i, repository))
                else {
                    continue;
                };
                let at = status
                    .timestamp
                    .as_deref()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&chrono::Utc));
                let running = status.state == Some(bollard::models::TaskState::RUNNING);
                add(tag, TargetOrigin::TaskHistory, at, running);
            }
        }
        let mut filters = HashMap::new();
        filters.insert("reference".to_string(), vec![repository.to_string()]);
        if let Ok(images) = self
            .docker
            .list_images(Some(bollard::query_parameters::ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
        {
            for img in images {
                for t in img.repo_tags.iter().filter_map(|t| tag_of(t, repository)) {
                    add(t, TargetOrigin::Image, None, false);
                }
            }
        }
        tags
    }
}

/// The tag of `image` when it is of `repository`.
fn tag_of(image: &str, repository: &str) -> Option<String> {
    strip_digest(image)
        .strip_prefix(repository)
        .and_then(|t| t.strip_prefix(':'))
        .map(str::to_string)
}

/// `repo:tag@sha256:...` → `repo:tag` (the engine pins digests into the spec).
fn strip_digest(image: &str) -> &str {
    image.split('@').next().unwrap_or(image)
}

/// Registry credentials from the user's docker config (`~/.docker/config.json` or
/// `$DOCKER_CONFIG`), as `docker service update --with-registry-auth` sends them. Never logged.
fn credentials_for(image: &str) -> Option<DockerCredentials> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))?;
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).ok()?).ok()?;
    let first = image.split('/').next().unwrap_or("");
    let registry = if image.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        first.to_string()
    } else {
        "https://index.docker.io/v1/".to_string()
    };
    let auths = config.get("auths")?.as_object()?;
    let (server, entry) = auths.iter().find(|(k, _)| {
        k.trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            == registry
            || k.as_str() == registry
    })?;
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let (user, pass) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some(DockerCredentials {
        username: Some(user),
        password: Some(pass),
        serveraddress: Some(server.clone()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_docker_config_for_the_images_registry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths": {"registry.example.com": {"auth": "ZGVwbG95OnMzY3JldA=="}}}"#,
        )
        .unwrap();
        // SAFETY: this test alone reads DOCKER_CONFIG.
        unsafe { std::env::set_var("DOCKER_CONFIG", dir.path()) };
        let c = credentials_for("registry.example.com/team/api:v2").unwrap();
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("deploy"), Some("s3cret"))
        );
        assert!(credentials_for("other.example.com/api:v2").is_none());
        assert!(credentials_for("busybox:1").is_none());
        unsafe { std::env::remove_var("DOCKER_CONFIG") };
        assert_eq!(strip_digest("r/api:v1@sha256:abc"), "r/api:v1");
    }
}
