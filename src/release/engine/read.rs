//! Reading a service's live state from the engine: its spec, update status and tasks with
//! their node, error, exit code and container health.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListNodesOptions, ListTasksOptions};
use chrono::{DateTime, Utc};

use super::live::{ServiceLive, TaskLive, strip_digest, tag_of_image};

/// Tasks kept per service: the engine keeps a few old tasks per slot (task history); more
/// than this is noise on a screen.
const MAX_TASKS: usize = 40;

fn time(s: Option<&String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Node ids to host names (one call per read; a node that is gone keeps its id).
async fn node_names(docker: &Docker) -> HashMap<String, String> {
    docker
        .list_nodes(None::<ListNodesOptions>)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| {
            Some((
                n.id?,
                n.description.and_then(|d| d.hostname).unwrap_or_default(),
            ))
        })
        .collect()
}

/// Reads `swarm_service` for the release service `service`.
pub async fn read(docker: &Docker, service: &str, swarm_service: &str) -> ServiceLive {
    let svc = match docker.inspect_service(swarm_service, None).await {
        Ok(s) => s,
        Err(e) => {
            return ServiceLive::unreachable(
                service,
                swarm_service,
                format!("cannot inspect service {swarm_service}: {e}"),
            );
        }
    };
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
    filters.insert("service".to_string(), vec![swarm_service.to_string()]);
    let raw = match docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(filters),
        }))
        .await
    {
        Ok(t) => t,
        Err(e) => {
            return ServiceLive::unreachable(
                service,
                swarm_service,
                format!("cannot list tasks of {swarm_service}: {e}"),
            );
        }
    };
    let nodes = node_names(docker).await;
    let mut tasks: Vec<(TaskLive, Option<String>)> = raw
        .into_iter()
        .map(|t| {
            let status = t.status.unwrap_or_default();
            let node_id = t.node_id.unwrap_or_default();
            let container = status
                .container_status
                .as_ref()
                .and_then(|c| c.container_id.clone());
            let task = TaskLive {
                id: t.id.unwrap_or_default().chars().take(12).collect(),
                slot: t.slot.map(|s| s as u64),
                node: nodes.get(&node_id).cloned().unwrap_or(node_id),
                tag: t
                    .spec
                    .and_then(|s| s.container_spec)
                    .and_then(|c| c.image)
                    .map(|i| tag_of_image(&i))
                    .unwrap_or_default(),
                state: status.state.map(|s| s.to_string()).unwrap_or_default(),
                desired_state: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
                error: status.err.unwrap_or_default(),
                message: status.message.unwrap_or_default(),
                exit_code: status.container_status.and_then(|c| c.exit_code),
                health: None,
                since: time(status.timestamp.as_ref()).or(time(t.updated_at.as_ref())),
            };
            (task, container)
        })
        .collect();
    // Current tasks first (by slot), then the older ones newest first.
    tasks.sort_by(|(a, _), (b, _)| {
        (a.desired_state != "running")
            .cmp(&(b.desired_state != "running"))
            .then(a.slot.cmp(&b.slot))
            .then(b.since.cmp(&a.since))
    });
    tasks.truncate(MAX_TASKS);
    // HEALTHCHECK status lives on the container; the engine answers for its own node's.
    for (task, container) in &mut tasks {
        if task.state != "running" {
            continue;
        }
        if let Some(id) = container
            && let Ok(c) = docker
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
        {
            task.health = c
                .state
                .and_then(|s| s.health)
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none");
        }
    }
    let tag = tag_of_image(&image);
    let tasks: Vec<TaskLive> = tasks.into_iter().map(|(t, _)| t).collect();
    let running = tasks
        .iter()
        .filter(|t| t.desired_state == "running" && t.state == "running" && t.tag == tag)
        .count() as u64;
    // A service that was never updated has no update status: its tasks tell.
    let update_state = if update_state.is_empty() && running >= desired {
        "completed".into()
    } else {
        update_state
    };
    ServiceLive {
        service: service.to_string(),
        swarm_service: swarm_service.to_string(),
        image,
        tag,
        desired,
        running,
        update_state,
        update_message,
        updated_at: time(svc.updated_at.as_ref()),
        tasks,
        ledger_tag: None,
        drift: None,
        error: None,
        observed_at: Utc::now(),
    }
}
