//! This daemon's presence in the cluster: a lease that its endpoint records hang on, and
//! a watch on the whole root that brings other hosts' changes into the dataplane.
//!
//! A session starts with a fresh lease and a resync (the host's records are claimed again
//! under it, the dataplane is set to one snapshot), then watches from that snapshot's
//! revision, so no change falls between the two. Whatever ends it (the store gone, the
//! lease expired, the watch compacted) starts a new one: that is the recovery path.
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use etcd_client::{EventType, WatchOptions};

use super::{decode, records, Cluster, ClusterNetwork, EndpointRecord, Key};
use crate::service::Service;

/// Pause between a failed session and the next attempt.
const RETRY: Duration = Duration::from_secs(1);

/// One change another daemon (or this one) made to the store.
#[derive(Clone, Debug)]
pub enum Change {
    Network(ClusterNetwork),
    NetworkRemoved(String),
    Endpoint {
        network_id: String,
        ip: Ipv4Addr,
        record: EndpointRecord,
    },
    EndpointRemoved {
        network_id: String,
        ip: Ipv4Addr,
    },
}

/// Keeps this host in the cluster for as long as the daemon runs.
pub async fn run_session(cluster: Arc<Cluster>, service: Arc<Service>) {
    let mut failures = 0u64;
    loop {
        let started = Instant::now();
        let result = session(&cluster, &service).await;
        cluster.set_lease(None);
        // A session that lasted was a success that ended: count the outage afresh.
        if started.elapsed() > cluster.settings.ttl {
            failures = 0;
        }
        failures += 1;
        if let Err(err) = result {
            // Once per outage, not once per retry.
            if failures == 1 {
                tracing::warn!("cluster store session ended, reconnecting: {err:#}");
            } else {
                tracing::debug!("cluster store still out of reach: {err:#}");
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn session(cluster: &Cluster, service: &Service) -> anyhow::Result<()> {
    let mut client = cluster.client.clone();
    let ttl = cluster.settings.ttl;
    let lease = client
        .lease_grant(ttl.as_secs() as i64, None)
        .await
        .context("cannot take a lease")?
        .id();
    cluster.set_lease(Some(lease));
    cluster.register_host().await?;
    let revision = service.resync_cluster().await?;
    tracing::info!(lease, revision, "joined the cluster store");

    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut watch = client
        .watch(records::ROOT, Some(options))
        .await
        .context("cannot watch")?;
    let (mut keeper, mut renewals) = client
        .lease_keep_alive(lease)
        .await
        .context("cannot renew the lease")?;
    let mut tick = tokio::time::interval(ttl / 3);
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // A store that stops answering (paused, partitioned) errs nowhere: notice
                // it by the missing renewals, before the lease could have run out.
                if renewed.elapsed() > ttl {
                    bail!("no lease renewal for {:?}", renewed.elapsed());
                }
                keeper.keep_alive().await?;
            }
            renewal = renewals.message() => match renewal? {
                Some(r) if r.ttl() > 0 => renewed = Instant::now(),
                _ => bail!("lease {lease} expired"),
            },
            message = watch.message() => {
                let Some(response) = message? else { bail!("watch closed") };
                if response.canceled() {
                    bail!("watch cancelled (compacted at {})", response.compact_revision());
                }
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    if let Some(change) = change(event.event_type(), kv) {
                        service.apply_cluster_change(change).await?;
                    }
                }
            }
        }
    }
}

fn change(kind: EventType, kv: &etcd_client::KeyValue) -> Option<Change> {
    let put = kind == EventType::Put;
    match Key::parse(kv.key()) {
        Key::Network(_) if put => decode(kv.value()).map(Change::Network),
        Key::Network(id) => Some(Change::NetworkRemoved(id)),
        Key::Endpoint { network_id, ip } if put => Some(Change::Endpoint {
            network_id,
            ip,
            record: decode(kv.value())?,
        }),
        Key::Endpoint { network_id, ip } => Some(Change::EndpointRemoved { network_id, ip }),
        Key::Host(_) | Key::Other => None,
    }
}
