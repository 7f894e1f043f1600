//! The health gate of a deploy: the containers' Docker HEALTHCHECK and the service's
//! optional `health_url`, both within `health_timeout` after the engine says the update is
//! complete.

use std::time::{Duration, Instant};

use crate::config::ReleaseService;
use crate::release::engine::read;

use super::SwarmDeployer;

/// Passes when every current task of `tag` is healthy (or has no HEALTHCHECK) and
/// `health_url` answered 2xx `health_retries` times in a row; `Err` holds the reason.
pub async fn gate(
    swarm: &SwarmDeployer,
    svc: &ReleaseService,
    tag: &str,
) -> Result<String, String> {
    let deadline = Instant::now() + svc.health_timeout;
    let mut said = Vec::new();
    loop {
        let live = read::read(swarm.client(), &svc.name, &svc.swarm_service).await;
        if let Some(e) = live.error {
            return Err(e);
        }
        let current: Vec<_> = live.current_tasks().filter(|t| t.tag == tag).collect();
        if let Some(bad) = current
            .iter()
            .find(|t| t.health.as_deref() == Some("unhealthy"))
        {
            return Err(format!("health check failed: {}", bad.reason()));
        }
        let checked = current.iter().filter(|t| t.health.is_some()).count();
        if current
            .iter()
            .all(|t| t.health.as_deref() != Some("starting"))
        {
            if checked > 0 {
                said.push(format!("{checked} container(s) healthy"));
            }
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "health check still starting after {}s",
                svc.health_timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(url) = &svc.health_url {
        said.push(http(url, svc.health_retries, deadline, svc.health_timeout).await?);
    }
    Ok(said.join("; "))
}

/// `retries` 2xx answers in a row from `url` before `deadline`.
async fn http(
    url: &str,
    retries: u32,
    deadline: Instant,
    budget: Duration,
) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let shown = crate::sanitize::clean_max(url, 120);
    let mut streak = 0;
    let mut last = String::from("no answer yet");
    loop {
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => {
                streak += 1;
                if streak >= retries {
                    return Ok(format!("{shown} answered 2xx {retries} times in a row"));
                }
            }
            Ok(r) => {
                streak = 0;
                last = format!("HTTP {}", r.status().as_u16());
            }
            Err(e) => {
                streak = 0;
                last = crate::sanitize::clean_max(&e.without_url().to_string(), 200);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "health check failed: {shown} did not answer 2xx {retries} times in a row within {}s (last: {last})",
                budget.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
