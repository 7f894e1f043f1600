//! Deployers: `swarm` (the Docker Engine API) or `command` (the team's deploy script).

pub mod child_env;
pub mod command;
pub mod health;
pub mod swarm;

pub use swarm::{ServiceState, SwarmDeployer};
