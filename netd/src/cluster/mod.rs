//! The cluster store (etcd, through etcd-client): overlay networks, their address
//! allocations, and the endpoint records every host needs to reach the others' sandboxes.
//! Local-scope state never goes there; it stays in the embedded store.
//!
//! - `records`: the keys and values.
//! - `session`: this daemon's lease, and the watch that keeps the host in step.
//!
//! Every call here is one etcd request or transaction, bounded by [`REQUEST_TIMEOUT`]; a
//! failure is [`Unreachable`], which the front doors report as "try again later".
mod records;
mod session;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};

pub use records::{ClusterNetwork, EndpointRecord, HostRecord, Key};
pub use session::{run_session, Change};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The store could not answer; nothing was changed by the failed call.
#[derive(Debug, thiserror::Error)]
#[error("cluster store unreachable ({url}): {reason}")]
pub struct Unreachable {
    url: String,
    reason: String,
}

pub type Result<T> = std::result::Result<T, Unreachable>;

/// What the daemon was told about its cluster.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// `etcd://HOST:PORT[,HOST:PORT...]` as given.
    pub url: String,
    /// This host's underlay address: the outer source of its VXLAN packets.
    pub vtep: Ipv4Addr,
    /// MTU of the interface holding `vtep`.
    pub underlay_mtu: u32,
    /// MTU of overlay sandboxes: `--mtu`, or the underlay's minus the VXLAN overhead.
    pub overlay_mtu: u32,
    /// Lifetime of this host's records when it stops renewing them.
    pub ttl: Duration,
}

/// A connection to the cluster store (made lazily: the daemon starts without it).
pub struct Cluster {
    client: Client,
    pub settings: ClusterSettings,
    pub host: String,
    /// This daemon's current lease; `None` while the store is out of reach.
    lease: Mutex<Option<i64>>,
}

/// Everything under the root at one revision.
pub struct Snapshot {
    pub revision: i64,
    pub networks: Vec<ClusterNetwork>,
    pub endpoints: Vec<(String, Ipv4Addr, EndpointRecord)>,
}

/// The outcome of trying to take an address.
pub enum Claim {
    Claimed,
    /// Another endpoint holds it (the record says which).
    Taken(EndpointRecord),
    /// The network is gone from the cluster.
    NoNetwork,
}

impl Cluster {
    /// Parses `etcd://HOST:PORT[,HOST:PORT]`; the first request opens the connection.
    pub async fn connect(settings: ClusterSettings) -> anyhow::Result<Self> {
        let endpoints = parse_url(&settings.url)?;
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| anyhow::anyhow!("invalid cluster store {}: {e}", settings.url))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Ok(Self {
            client,
            settings,
            host,
            lease: Mutex::new(None),
        })
    }

    fn unreachable(&self, err: etcd_client::Error) -> Unreachable {
        // A gRPC status's own message reads best ("tcp connect error"); its Display adds
        // several layers of transport detail.
        let reason = match &err {
            etcd_client::Error::GRpcStatus(status) => status.message().to_owned(),
            other => other.to_string(),
        };
        Unreachable {
            url: self.settings.url.clone(),
            reason,
        }
    }

    fn set_lease(&self, lease: Option<i64>) {
        *self.lease.lock().expect("lease lock") = lease;
    }

    /// The lease this host's records hang on.
    fn lease(&self) -> Result<i64> {
        self.lease
            .lock()
            .expect("lease lock")
            .ok_or_else(|| Unreachable {
                url: self.settings.url.clone(),
                reason: "not connected".into(),
            })
    }

    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.client
            .clone()
            .txn(txn)
            .await
            .map_err(|e| self.unreachable(e))
    }

    async fn get_prefix(&self, prefix: &str) -> Result<etcd_client::GetResponse> {
        self.client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.unreachable(e))
    }

    /// Every network and endpoint record, at one revision.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let response = self.get_prefix(records::ROOT).await?;
        let revision = response.header().map_or(0, |h| h.revision());
        let mut snapshot = Snapshot {
            revision,
            networks: Vec::new(),
            endpoints: Vec::new(),
        };
        for kv in response.kvs() {
            match Key::parse(kv.key()) {
                Key::Network(_) => snapshot.networks.extend(decode(kv.value())),
                Key::Endpoint { network_id, ip } => {
                    if let Some(record) = decode(kv.value()) {
                        snapshot.endpoints.push((network_id, ip, record));
                    }
                }
                Key::Host(_) | Key::Other => {}
            }
        }
        Ok(snapshot)
    }

    /// The overlay networks, and the revision they were read at (for [`Self::create_network`]).
    pub async fn networks(&self) -> Result<(Vec<ClusterNetwork>, i64)> {
        let response = self.get_prefix(&records::network_key("")).await?;
        let revision = response.header().map_or(0, |h| h.revision());
        let networks = response.kvs().iter().filter_map(|kv| decode(kv.value()));
        Ok((networks.collect(), revision))
    }

    /// Writes a new network, only if no network was created or removed after revision
    /// `seen` (the view its name, VNI and subnet were chosen from). `false`: choose again.
    pub async fn create_network(&self, network: &ClusterNetwork, seen: i64) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::mod_revision(
                records::EPOCH,
                CompareOp::Less,
                seen + 1,
            )])
            .and_then([
                TxnOp::put(records::network_key(&network.id), encode(network), None),
                TxnOp::put(records::EPOCH, network.id.as_bytes(), None),
            ]);
        Ok(self.txn(txn).await?.succeeded())
    }

    /// Removes a network no host has an endpoint on. `false`: some host has one.
    pub async fn remove_network(&self, id: &str) -> Result<bool> {
        let no_endpoints =
            Compare::create_revision(records::endpoints_prefix(id), CompareOp::Equal, 0)
                .with_prefix();
        let txn = Txn::new().when([no_endpoints]).and_then([
            TxnOp::delete(records::network_key(id), None),
            TxnOp::put(records::EPOCH, id.as_bytes(), None),
        ]);
        Ok(self.txn(txn).await?.succeeded())
    }

    /// The addresses of a network that some host holds.
    pub async fn holders(&self, network_id: &str) -> Result<BTreeMap<Ipv4Addr, EndpointRecord>> {
        let response = self
            .get_prefix(&records::endpoints_prefix(network_id))
            .await?;
        Ok(response
            .kvs()
            .iter()
            .filter_map(|kv| match Key::parse(kv.key()) {
                Key::Endpoint { ip, .. } => Some((ip, decode(kv.value())?)),
                _ => None,
            })
            .collect())
    }

    /// Takes `ip` for `record`'s endpoint, atomically: nobody else can hold it afterwards.
    /// Taking an address the same endpoint already holds renews it under the current lease.
    pub async fn claim(
        &self,
        network_id: &str,
        ip: Ipv4Addr,
        record: &EndpointRecord,
    ) -> Result<Claim> {
        let key = records::endpoint_key(network_id, ip);
        let lease = self.lease()?;
        let put = TxnOp::put(
            key.as_str(),
            encode(record),
            Some(PutOptions::new().with_lease(lease)),
        );
        let network_exists =
            Compare::version(records::network_key(network_id), CompareOp::Greater, 0);
        let free = Compare::create_revision(key.as_str(), CompareOp::Equal, 0);
        let txn = Txn::new()
            .when([network_exists.clone(), free])
            .and_then([put.clone()])
            .or_else([
                TxnOp::get(key.as_str(), None),
                TxnOp::get(records::network_key(network_id), None),
            ]);
        let response = self.txn(txn).await?;
        if response.succeeded() {
            return Ok(Claim::Claimed);
        }
        let gets: Vec<_> = response
            .op_responses()
            .into_iter()
            .filter_map(|op| match op {
                TxnOpResponse::Get(get) => Some(get),
                _ => None,
            })
            .collect();
        let holder = gets.first().and_then(|g| g.kvs().first().cloned());
        if gets.get(1).is_none_or(|g| g.kvs().is_empty()) {
            return Ok(Claim::NoNetwork);
        }
        let Some(holder) = holder else {
            // Released between the two reads: try once more.
            return Box::pin(self.claim(network_id, ip, record)).await;
        };
        match decode::<EndpointRecord>(holder.value()) {
            Some(current) if current.endpoint_id == record.endpoint_id => {
                let unchanged =
                    Compare::mod_revision(key.as_str(), CompareOp::Equal, holder.mod_revision());
                let renew = Txn::new().when([network_exists, unchanged]).and_then([put]);
                match self.txn(renew).await?.succeeded() {
                    true => Ok(Claim::Claimed),
                    false => Box::pin(self.claim(network_id, ip, record)).await,
                }
            }
            Some(current) => Ok(Claim::Taken(current)),
            None => Ok(Claim::Taken(EndpointRecord {
                endpoint_id: String::new(),
                mac: [0; 6],
                vtep: Ipv4Addr::UNSPECIFIED,
                host: "?".into(),
            })),
        }
    }

    /// Gives `ip` back, if `endpoint_id` still holds it.
    pub async fn release(&self, network_id: &str, ip: Ipv4Addr, endpoint_id: &str) -> Result<()> {
        let key = records::endpoint_key(network_id, ip);
        let response = self
            .client
            .clone()
            .get(key.as_str(), None)
            .await
            .map_err(|e| self.unreachable(e))?;
        let Some(kv) = response.kvs().first() else {
            return Ok(());
        };
        if decode::<EndpointRecord>(kv.value()).is_some_and(|r| r.endpoint_id != endpoint_id) {
            return Ok(());
        }
        let unchanged = Compare::mod_revision(key.as_str(), CompareOp::Equal, kv.mod_revision());
        let txn = Txn::new()
            .when([unchanged])
            .and_then([TxnOp::delete(key.as_str(), None::<DeleteOptions>)]);
        self.txn(txn).await?;
        Ok(())
    }

    /// Announces this host under its lease.
    async fn register_host(&self) -> Result<()> {
        let record = HostRecord {
            name: self.host.clone(),
            vtep: self.settings.vtep,
        };
        let lease = self.lease()?;
        self.client
            .clone()
            .put(
                records::host_key(self.settings.vtep),
                encode(&record),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(())
    }

    /// The record this host writes for one of its endpoints.
    pub fn record(&self, endpoint_id: &str, mac: [u8; 6]) -> EndpointRecord {
        EndpointRecord {
            endpoint_id: endpoint_id.to_owned(),
            mac,
            vtep: self.settings.vtep,
            host: self.host.clone(),
        }
    }
}

/// `etcd://a:2379,b:2379` as the client's `http://` endpoints.
fn parse_url(url: &str) -> anyhow::Result<Vec<String>> {
    let hosts = url.strip_prefix("etcd://").ok_or_else(|| {
        anyhow::anyhow!("invalid cluster store {url:?}: expected etcd://HOST:PORT")
    })?;
    let endpoints: Vec<String> = hosts
        .split(',')
        .map(|host| match host.rsplit_once(':') {
            Some((name, port)) if !name.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(format!("http://{host}"))
            }
            _ => Err(anyhow::anyhow!(
                "invalid cluster store {url:?}: expected etcd://HOST:PORT"
            )),
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(endpoints)
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

/// A record, or `None` (with a warning) for one this build cannot read.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes)
        .inspect_err(|e| tracing::warn!("ignoring unreadable cluster record: {e}"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls_name_etcd_endpoints() {
        assert_eq!(
            parse_url("etcd://10.0.0.1:2379,etcd-b:2379").unwrap(),
            ["http://10.0.0.1:2379", "http://etcd-b:2379"]
        );
        for bad in [
            "http://x:1",
            "etcd://",
            "etcd://x",
            "etcd://x:port",
            "etcd://:1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
