//! netd's Docker IPAM driver: pools and the addresses given from them. Docker asks for a
//! pool before it creates the network and for each address before the endpoint, so both
//! are recorded here, each request in one transaction: an address is never given twice.
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Error, Inner, Result, Service};
use crate::ipam::{self, PoolRequest};
use crate::model::{AddressPool, IpamPool};
use crate::store::Change;

impl Service {
    /// A pool for a new network: `subnet` if given and free, else the first free default
    /// pool. `range` narrows where dynamic addresses come from (`--ip-range`).
    pub async fn request_pool(
        &self,
        subnet: Option<Ipv4Net>,
        range: Option<Ipv4Net>,
    ) -> Result<AddressPool> {
        let mut inner = self.inner.lock().await;
        // The checks and the choice of `netd network create`, against netd's networks and
        // the pools already given.
        let mut taken = inner.subnets();
        taken.extend(inner.state.address_pools.values().map(|p| p.subnet));
        let host_prefixes = inner.netlink.host_prefixes().await?;
        let request = PoolRequest {
            subnet,
            ip_range: range,
            ..Default::default()
        };
        let plan = ipam::plan_pool(&request, &taken, &host_prefixes).map_err(Error::Invalid)?;
        let (subnet, range) = (plan.subnet, plan.ip_range);
        let pool = AddressPool {
            id: subnet.to_string(),
            subnet,
            ip_range: range,
            allocated: BTreeSet::new(),
        };
        inner.store.commit(&[Change::PutAddressPool(&pool)])?;
        inner
            .state
            .address_pools
            .insert(pool.id.clone(), pool.clone());
        Ok(pool)
    }

    /// Idempotent: Docker retries releases.
    pub async fn release_pool(&self, id: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        if inner.state.address_pools.contains_key(id) {
            inner.store.commit(&[Change::DeleteAddressPool(id)])?;
            inner.state.address_pools.remove(id);
        }
        Ok(())
    }

    /// `address` if given and free; else the lowest free address of the pool's range, or of
    /// the whole pool for a `gateway`.
    pub async fn request_address(
        &self,
        pool_id: &str,
        address: Option<Ipv4Addr>,
        gateway: bool,
    ) -> Result<Ipv4Net> {
        let mut inner = self.inner.lock().await;
        let mut pool = inner.address_pool(pool_id)?.clone();
        let used = inner.addresses_in(&pool);
        let plan = IpamPool {
            subnet: pool.subnet,
            // The network address is never handed out anyway.
            gateway: pool.subnet.network(),
            ip_range: if gateway { None } else { pool.ip_range },
            aux_addresses: Default::default(),
        };
        let ip = match address {
            Some(ip) => {
                ipam::check_static(&plan, ip, &used).map_err(Error::Invalid)?;
                ip
            }
            None => ipam::allocate(&plan, &used).map_err(Error::Conflict)?,
        };
        pool.allocated.insert(ip);
        inner.store.commit(&[Change::PutAddressPool(&pool)])?;
        inner.state.address_pools.insert(pool.id.clone(), pool);
        Ok(Ipv4Net::new(ip, plan.subnet.prefix_len()).expect("prefix of a subnet"))
    }

    /// Idempotent: releasing an address not given out succeeds.
    pub async fn release_address(&self, pool_id: &str, address: Ipv4Addr) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let mut pool = inner.address_pool(pool_id)?.clone();
        if pool.allocated.remove(&address) {
            inner.store.commit(&[Change::PutAddressPool(&pool)])?;
            inner.state.address_pools.insert(pool.id.clone(), pool);
        }
        Ok(())
    }
}

impl Inner {
    fn address_pool(&self, id: &str) -> Result<&AddressPool> {
        self.state
            .address_pools
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("address pool {id} not found")))
    }

    /// Addresses of the pool that are taken: given to Docker, or held by endpoints that
    /// netd's own API connected to a network on the pool's subnet.
    fn addresses_in(&self, pool: &AddressPool) -> BTreeSet<Ipv4Addr> {
        let mut used = pool.allocated.clone();
        for network in self.state.networks.values() {
            if network
                .ipam
                .as_ref()
                .is_some_and(|p| p.subnet == pool.subnet)
            {
                used.extend(self.endpoint_ips(&network.id));
            }
        }
        used
    }
}
