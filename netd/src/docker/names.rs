//! Docker's names for the networks it creates: CreateNetwork carries only an id, so the
//! daemon asks Docker's API once Docker has recorded the network.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::cli::client::Client;
use crate::cli::error::CliError;
use crate::service::Service;

/// Docker records a network right after CreateNetwork answers; give it this long.
const ATTEMPTS: u32 = 50;
const INTERVAL: Duration = Duration::from_millis(200);

#[derive(Deserialize)]
struct DockerNetwork {
    #[serde(rename = "Name")]
    name: String,
}

/// Asks Docker again for the names it could not give before (at start-up).
pub async fn adopt_missing_names(service: Arc<Service>, docker_socket: PathBuf) {
    for id in service.docker_networks_without_name().await {
        adopt_docker_name(service.clone(), docker_socket.clone(), id).await;
    }
}

/// Renames the netd network `id` after Docker's network of that id. Best effort: without
/// an answer the network keeps its short id as name.
pub async fn adopt_docker_name(service: Arc<Service>, docker_socket: PathBuf, id: String) {
    let docker = Client::new(docker_socket).with_timeout(Duration::from_secs(2));
    for _ in 0..ATTEMPTS {
        tokio::time::sleep(INTERVAL).await;
        match docker
            .get::<DockerNetwork>(&format!("/networks/{id}"))
            .await
        {
            Ok(network) => {
                if let Err(err) = service.docker_name_network(&id, &network.name).await {
                    tracing::warn!(network = id, "cannot take Docker's name: {err}");
                }
                return;
            }
            // Not recorded by Docker yet.
            Err(CliError::Daemon { status: 404, .. }) => continue,
            Err(err) => {
                tracing::info!(
                    network = id,
                    "cannot ask Docker for the network's name: {err}"
                );
                return;
            }
        }
    }
    tracing::info!(network = id, "Docker did not report the network's name");
}
