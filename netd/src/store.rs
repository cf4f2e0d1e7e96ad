//! The embedded transactional store (redb) under `--state-dir`. Records are JSON values
//! keyed by id; every change is one transaction, so a crash leaves the old or the new
//! state, never a mix.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

use crate::model::{AddressPool, Endpoint, Network, Sandbox};

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("endpoints");
const SANDBOXES: TableDefinition<&str, &[u8]> = TableDefinition::new("sandboxes");
const ADDRESS_POOLS: TableDefinition<&str, &[u8]> = TableDefinition::new("address_pools");

/// Everything the store holds, keyed by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub networks: BTreeMap<String, Network>,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub sandboxes: BTreeMap<String, Sandbox>,
    /// Pools of netd's Docker IPAM driver.
    pub address_pools: BTreeMap<String, AddressPool>,
}

pub struct Store {
    db: Database,
}

/// One change to the store; a batch of them commits atomically.
pub enum Change<'a> {
    PutNetwork(&'a Network),
    DeleteNetwork(&'a str),
    PutEndpoint(&'a Endpoint),
    DeleteEndpoint(&'a str),
    PutSandbox(&'a Sandbox),
    DeleteSandbox(&'a str),
    PutAddressPool(&'a AddressPool),
    DeleteAddressPool(&'a str),
}

impl Store {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create state dir {}", dir.display()))?;
        let path = dir.join("netd.redb");
        let db = Database::create(&path)
            .with_context(|| format!("cannot open state store {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(NETWORKS)?;
        txn.open_table(ENDPOINTS)?;
        txn.open_table(SANDBOXES)?;
        txn.open_table(ADDRESS_POOLS)?;
        txn.commit()?;
        Ok(Self { db })
    }

    pub fn load(&self) -> anyhow::Result<State> {
        let txn = self.db.begin_read()?;
        Ok(State {
            networks: read_table(&txn.open_table(NETWORKS)?)?,
            endpoints: read_table(&txn.open_table(ENDPOINTS)?)?,
            sandboxes: read_table(&txn.open_table(SANDBOXES)?)?,
            address_pools: read_table(&txn.open_table(ADDRESS_POOLS)?)?,
        })
    }

    /// Commits `changes` atomically and durably.
    pub fn commit(&self, changes: &[Change<'_>]) -> anyhow::Result<()> {
        self.commit_with(changes, Durability::Immediate)
    }

    /// Commits without waiting for the disk: for intent records whose loss a restart
    /// repairs anyway (a lost `Pending` endpoint leaves an orphan veth that reconcile removes).
    pub fn commit_intent(&self, changes: &[Change<'_>]) -> anyhow::Result<()> {
        self.commit_with(changes, Durability::None)
    }

    fn commit_with(&self, changes: &[Change<'_>], durability: Durability) -> anyhow::Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability)?;
        {
            let mut networks = txn.open_table(NETWORKS)?;
            let mut endpoints = txn.open_table(ENDPOINTS)?;
            let mut sandboxes = txn.open_table(SANDBOXES)?;
            let mut pools = txn.open_table(ADDRESS_POOLS)?;
            for change in changes {
                match change {
                    Change::PutNetwork(n) => {
                        networks.insert(n.id.as_str(), serde_json::to_vec(n)?.as_slice())?;
                    }
                    Change::DeleteNetwork(id) => {
                        networks.remove(*id)?;
                    }
                    Change::PutEndpoint(e) => {
                        endpoints.insert(e.id.as_str(), serde_json::to_vec(e)?.as_slice())?;
                    }
                    Change::DeleteEndpoint(id) => {
                        endpoints.remove(*id)?;
                    }
                    Change::PutSandbox(s) => {
                        sandboxes.insert(s.id.as_str(), serde_json::to_vec(s)?.as_slice())?;
                    }
                    Change::DeleteSandbox(id) => {
                        sandboxes.remove(*id)?;
                    }
                    Change::PutAddressPool(p) => {
                        pools.insert(p.id.as_str(), serde_json::to_vec(p)?.as_slice())?;
                    }
                    Change::DeleteAddressPool(id) => {
                        pools.remove(*id)?;
                    }
                }
            }
        }
        txn.commit().context("state store commit failed")?;
        Ok(())
    }
}

fn read_table<T: DeserializeOwned + Serialize>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> anyhow::Result<BTreeMap<String, T>> {
    let mut out = BTreeMap::new();
    for row in table.iter()? {
        let (key, value) = row?;
        let record = serde_json::from_slice(value.value())
            .with_context(|| format!("corrupt record {} in state store", key.value()))?;
        out.insert(key.value().to_string(), record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Driver, Sandbox};

    fn network(name: &str) -> Network {
        Network {
            id: crate::model::new_id(),
            name: name.into(),
            driver: Driver::Null,
            net_id: 0,
            created: "2026-01-01T00:00:00Z".into(),
            ipam: None,
            internal: false,
            icc: true,
            masquerade: true,
            mtu: 1500,
            options: Default::default(),
            predefined: true,
            docker: false,
            docker_id: None,
            vni: None,
        }
    }

    #[test]
    fn changes_commit_atomically_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let n = network("none");
        let s = Sandbox {
            id: "s1".into(),
            name: "a".into(),
            path: "/run/netns/a".into(),
            identity: (1, 2),
            owned: true,
            mode: None,
            docker: false,
        };
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .commit(&[Change::PutNetwork(&n), Change::PutSandbox(&s)])
                .unwrap();
            store.commit(&[Change::DeleteSandbox("s1")]).unwrap();
        }
        let state = Store::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(state.networks.get(&n.id), Some(&n));
        assert!(state.sandboxes.is_empty());
    }
}
