//! Named sandboxes (network namespaces) for users without a container runtime.
use super::networks::check_name;
use super::{Error, Inner, Result, Service};
use crate::api::types::SandboxInfo;
use crate::model::{new_id, Driver, Endpoint, Sandbox};
use crate::netlink::netns;
use crate::store::Change;

/// Where named network namespaces live, as with `ip netns`.
const NETNS_DIR: &str = "/run/netns";

/// The daemon's own network namespace: what a `host` sandbox shares.
const HOST_NETNS: &str = "/proc/thread-self/ns/net";

/// Identity of a sandbox recorded before its netns exists (see `create_sandbox`).
pub(super) const UNKNOWN_IDENTITY: (u64, u64) = (0, 0);

impl Service {
    /// `network`: `host` (share the daemon's netns) or `none` (loopback only, for good).
    pub async fn create_sandbox(&self, name: &str, network: Option<&str>) -> Result<SandboxInfo> {
        let mut inner = self.inner.lock().await;
        check_name("sandbox", name)?;
        let mode = match network {
            None => None,
            Some(net) => match inner.network(net)?.driver {
                Driver::Bridge => {
                    return Err(Error::Invalid(format!(
                        "sandbox create --network takes host or none; connect bridge network {net} with `netd network connect`"
                    )))
                }
                driver => Some(driver),
            },
        };
        if inner.state.sandboxes.values().any(|s| s.name == name) || netns::resolve(name).is_ok() {
            return Err(Error::Conflict(format!(
                "network namespace {name} already exists"
            )));
        }
        // Record first, then make the netns: a crash in between leaves a record that
        // reconcile recognises by its unknown identity, never a netns nobody owns.
        let mut sandbox = Sandbox {
            id: new_id(),
            name: name.to_string(),
            path: std::path::Path::new(NETNS_DIR).join(name),
            identity: UNKNOWN_IDENTITY,
            owned: true,
            mode,
            docker: false,
        };
        inner.store.commit(&[Change::PutSandbox(&sandbox)])?;
        let created = match mode {
            Some(Driver::Host) => netns::bind_named(name, HOST_NETNS),
            _ => netns::create_named(name),
        }
        .and_then(|path| netns::identity(&path));
        match created {
            Ok(identity) => sandbox.identity = identity,
            Err(err) => {
                inner.store.commit(&[Change::DeleteSandbox(&sandbox.id)])?;
                return Err(err.into());
            }
        }
        inner.store.commit(&[Change::PutSandbox(&sandbox)])?;
        inner
            .state
            .sandboxes
            .insert(sandbox.id.clone(), sandbox.clone());
        Ok(inner.sandbox_info(&sandbox))
    }

    /// Disconnects the sandbox from every network; deletes its netns if netd made it.
    pub async fn remove_sandbox(&self, name: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let sandbox = inner
            .state
            .sandboxes
            .values()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("sandbox {name} not found")))?;
        inner.forget_sandbox(&sandbox).await?;
        if sandbox.owned {
            netns::delete_named(&sandbox.name)?;
        }
        Ok(())
    }

    pub async fn list_sandboxes(&self) -> Vec<SandboxInfo> {
        let inner = self.inner.lock().await;
        let mut list: Vec<SandboxInfo> = inner
            .state
            .sandboxes
            .values()
            .map(|s| inner.sandbox_info(s))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

impl Inner {
    /// Disconnects the sandbox from every network and drops its record. Its netns is left
    /// to the caller.
    pub(super) async fn forget_sandbox(&mut self, sandbox: &Sandbox) -> Result<()> {
        let endpoints: Vec<Endpoint> = self
            .state
            .endpoints
            .values()
            .filter(|e| e.sandbox_id == sandbox.id)
            .cloned()
            .collect();
        for endpoint in &endpoints {
            self.remove_endpoint(endpoint).await?;
        }
        // A sandbox netd did not make went with its last endpoint; others are dropped here.
        if self.state.sandboxes.contains_key(&sandbox.id) {
            self.store.commit(&[Change::DeleteSandbox(&sandbox.id)])?;
            self.state.sandboxes.remove(&sandbox.id);
        }
        Ok(())
    }

    pub(super) fn sandbox_info(&self, sandbox: &Sandbox) -> SandboxInfo {
        let mut networks: Vec<String> = self
            .state
            .endpoints
            .values()
            .filter(|e| e.sandbox_id == sandbox.id)
            .filter_map(|e| self.state.networks.get(&e.network_id))
            .map(|n| n.name.clone())
            .collect();
        if let Some(mode) = sandbox.mode {
            networks.extend(
                self.state
                    .networks
                    .values()
                    .filter(|n| n.driver == mode)
                    .map(|n| n.name.clone()),
            );
        }
        networks.sort();
        SandboxInfo {
            name: sandbox.name.clone(),
            id: sandbox.id.clone(),
            path: sandbox.path.display().to_string(),
            networks,
        }
    }
}
