//! Typed handles on the dataplane's maps. Writes are `pub(super)` (only [`super::Dataplane`]
//! changes state); reads are public so tests can assert on a pinned dataplane's contents.
//! The endpoint caches in front of the endpoint hashes live in `cache`.

mod cache;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    path::Path,
};

use anyhow::{bail, Context as _};
use aya::{
    maps::{
        lpm_trie::Key, Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuValues,
    },
    util::nr_cpus,
    Ebpf,
};
use ipnet::Ipv4Net;
use netd_common::{
    delivery_slot, drop_slot, Counter, Delivery, DropReason, EndpointInfo, MemberKey, NetworkInfo,
    MAP_ENDPOINTS_BY_IFINDEX, MAP_ENDPOINTS_BY_IP, MAP_EP_CACHE_BY_IFINDEX, MAP_EP_CACHE_BY_IP,
    MAP_MEMBERS, MAP_NETWORKS, MAP_STATS, MAP_SUBNETS, MAX_FLOOD_MEMBERS, MAX_NETWORKS,
    NET_FLAG_ICC, NET_FLAG_INTERNAL, NET_FLAG_NO_MASQUERADE,
};

use self::cache::{EndpointCache, Keyed};
use super::{overlay::OverlayMaps, NetworkEntry, StatKind, StatRow};

/// Every map of the dataplane, typed. Keys holding IPv4 addresses are the address bytes
/// in wire order read as a native u32, exactly as the program reads them off the packet.
pub struct Maps {
    /// Host-side veth ifindex -> endpoint (who is sending).
    ep_by_ifindex: HashMap<MapData, u32, EndpointInfo>,
    /// Sandbox IPv4 -> endpoint (where to deliver).
    ep_by_ip: HashMap<MapData, u32, EndpointInfo>,
    /// Copies of `ep_by_ifindex` entries the program reads before the hash.
    ifindex_cache: EndpointCache,
    /// Copies of `ep_by_ip` entries the program reads before the hash.
    ip_cache: EndpointCache,
    /// Network id -> settings; an all-zero slot is "no network".
    networks: Array<MapData, NetworkInfo>,
    /// Subnet -> network id.
    subnets: LpmTrie<MapData, u32, u32>,
    /// (network id, slot) -> member's host ifindex.
    members: HashMap<MapData, MemberKey, u32>,
    /// Per-CPU counters, `delivery_slot`/`drop_slot`.
    stats: PerCpuArray<MapData, Counter>,
    /// Remote endpoints, VNIs and the tunnel address (written through `Dataplane`).
    pub(super) overlay: OverlayMaps,
}

/// Moves map `name` out of a loaded object, for a typed wrapper to own.
pub(super) fn take_map(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<Map> {
    ebpf.take_map(name)
        .with_context(|| format!("map {name} missing from the object"))
}

pub(super) fn ip_key(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

fn subnet_key(net: Ipv4Net) -> Key<u32> {
    Key::new(u32::from(net.prefix_len()), ip_key(net.network()))
}

/// A lookup's miss, or a delete's (aya reports the latter as the syscall's ENOENT).
fn not_found(err: &MapError) -> bool {
    match err {
        MapError::KeyNotFound => true,
        MapError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// Treats "no such key" as success: removals are idempotent.
pub(super) fn ignore_missing(result: Result<(), MapError>) -> anyhow::Result<()> {
    match result {
        Err(err) if !not_found(&err) => Err(err.into()),
        _ => Ok(()),
    }
}

fn network_info(net: &NetworkEntry, member_count: u32) -> NetworkInfo {
    let mut flags = 0;
    if net.icc {
        flags |= NET_FLAG_ICC;
    }
    if net.internal {
        flags |= NET_FLAG_INTERNAL;
    }
    if !net.masquerade {
        flags |= NET_FLAG_NO_MASQUERADE;
    }
    NetworkInfo {
        gateway_ip: net.gateway.octets(),
        flags,
        member_count,
        gateway_mac: net.gateway_mac,
        prefix_len: net.subnet.prefix_len(),
        _pad: [0],
    }
}

const EMPTY_NETWORK: NetworkInfo = NetworkInfo {
    gateway_ip: [0; 4],
    flags: 0,
    member_count: 0,
    gateway_mac: [0; 6],
    prefix_len: 0,
    _pad: [0],
};

impl Maps {
    /// Moves the maps out of a freshly loaded object.
    pub(super) fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        let mut take = |name: &str| take_map(ebpf, name);
        Ok(Self {
            ep_by_ifindex: take(MAP_ENDPOINTS_BY_IFINDEX)?.try_into()?,
            ep_by_ip: take(MAP_ENDPOINTS_BY_IP)?.try_into()?,
            ifindex_cache: EndpointCache::new(
                take(MAP_EP_CACHE_BY_IFINDEX)?.try_into()?,
                Keyed::ByIfindex,
            ),
            ip_cache: EndpointCache::new(take(MAP_EP_CACHE_BY_IP)?.try_into()?, Keyed::ByIp),
            networks: take(MAP_NETWORKS)?.try_into()?,
            subnets: take(MAP_SUBNETS)?.try_into()?,
            members: take(MAP_MEMBERS)?.try_into()?,
            stats: take(MAP_STATS)?.try_into()?,
            overlay: OverlayMaps::from_maps(take)?,
        })
    }

    /// Opens the maps pinned in `dir` (`<bpffs>/maps`).
    pub(super) fn from_pins(dir: &Path) -> anyhow::Result<Self> {
        let open = |name: &str| -> anyhow::Result<Map> {
            let path = dir.join(name);
            let data = MapData::from_pin(&path)
                .with_context(|| format!("opening pinned map {}", path.display()))?;
            Ok(Map::from_map_data(data)?)
        };
        Ok(Self {
            ep_by_ifindex: open(MAP_ENDPOINTS_BY_IFINDEX)?.try_into()?,
            ep_by_ip: open(MAP_ENDPOINTS_BY_IP)?.try_into()?,
            ifindex_cache: EndpointCache::new(
                open(MAP_EP_CACHE_BY_IFINDEX)?.try_into()?,
                Keyed::ByIfindex,
            ),
            ip_cache: EndpointCache::new(open(MAP_EP_CACHE_BY_IP)?.try_into()?, Keyed::ByIp),
            networks: open(MAP_NETWORKS)?.try_into()?,
            subnets: open(MAP_SUBNETS)?.try_into()?,
            members: open(MAP_MEMBERS)?.try_into()?,
            stats: open(MAP_STATS)?.try_into()?,
            overlay: OverlayMaps::from_maps(open)?,
        })
    }

    // ---- reads -------------------------------------------------------------------------

    /// Every endpoint, from EP_BY_IFINDEX.
    pub fn endpoints(&self) -> anyhow::Result<Vec<EndpointInfo>> {
        let mut eps = Vec::new();
        for entry in self.ep_by_ifindex.iter() {
            eps.push(entry?.1);
        }
        Ok(eps)
    }

    /// Keys of EP_BY_IP.
    pub fn endpoint_ips(&self) -> anyhow::Result<Vec<Ipv4Addr>> {
        let mut ips = Vec::new();
        for key in self.ep_by_ip.keys() {
            ips.push(Ipv4Addr::from(key?.to_ne_bytes()));
        }
        ips.sort();
        Ok(ips)
    }

    /// Keys of EP_BY_IFINDEX.
    pub fn endpoint_ifindexes(&self) -> anyhow::Result<Vec<u32>> {
        let mut ifindexes = self.ep_by_ifindex.keys().collect::<Result<Vec<_>, _>>()?;
        ifindexes.sort_unstable();
        Ok(ifindexes)
    }

    /// The network at `net_id`, if its slot is in use.
    pub fn network(&self, net_id: u32) -> anyhow::Result<Option<NetworkInfo>> {
        if net_id >= MAX_NETWORKS {
            return Ok(None);
        }
        let info = self.networks.get(&net_id, 0)?;
        Ok((info != EMPTY_NETWORK).then_some(info))
    }

    /// Every REMOTE_EPS entry (endpoints on other hosts), by address.
    pub fn remote_endpoints(&self) -> anyhow::Result<Vec<(Ipv4Addr, netd_common::RemoteEndpoint)>> {
        self.overlay.remote_endpoints()
    }

    /// Every VNIS entry: (VNI, network id).
    pub fn vnis(&self) -> anyhow::Result<Vec<(u32, u32)>> {
        self.overlay.vnis()
    }

    /// Ids of the NETWORKS slots in use.
    pub fn network_ids(&self) -> anyhow::Result<Vec<u32>> {
        let mut ids = Vec::new();
        for (net_id, info) in (0u32..).zip(self.networks.iter()) {
            if info? != EMPTY_NETWORK {
                ids.push(net_id);
            }
        }
        Ok(ids)
    }

    /// SUBNETS entries: subnet -> network id.
    pub fn subnets(&self) -> anyhow::Result<Vec<(Ipv4Net, u32)>> {
        let mut subnets = Vec::new();
        for entry in self.subnets.iter() {
            let (key, net_id) = entry?;
            let addr = Ipv4Addr::from(key.data().to_ne_bytes());
            subnets.push((Ipv4Net::new(addr, key.prefix_len() as u8)?, net_id));
        }
        subnets.sort();
        Ok(subnets)
    }

    /// Every MEMBERS entry: (key, host ifindex).
    pub fn member_entries(&self) -> anyhow::Result<Vec<(MemberKey, u32)>> {
        let mut entries = self.members.iter().collect::<Result<Vec<_>, _>>()?;
        entries.sort_by_key(|(k, _)| (k.net_id, k.slot));
        Ok(entries)
    }

    /// The network's flood list: slots `0..member_count` in order.
    pub fn members(&self, net_id: u32) -> anyhow::Result<Vec<u32>> {
        let count = self.network(net_id)?.map_or(0, |n| n.member_count);
        let mut out = Vec::with_capacity(count as usize);
        for slot in 0..count {
            match self.members.get(&MemberKey { net_id, slot }, 0) {
                Ok(ifindex) => out.push(ifindex),
                Err(err) if not_found(&err) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(out)
    }

    /// Non-zero counters summed over CPUs, for network 0 (unknown senders) and every
    /// network in use. Removed networks have their counters cleared.
    pub fn stats(&self) -> anyhow::Result<Vec<StatRow>> {
        let mut net_ids = BTreeSet::from([0]);
        net_ids.extend(self.network_ids()?);
        let kinds = Delivery::ALL
            .iter()
            .map(|&d| (StatKind::Delivery(d), delivery_slot(0, d)))
            .chain(
                DropReason::ALL
                    .iter()
                    .map(|&r| (StatKind::Drop(r), drop_slot(0, r))),
            );
        let kinds: Vec<_> = kinds.collect();
        let mut rows = Vec::new();
        for net_id in net_ids {
            let base = delivery_slot(net_id, Delivery::Peer);
            for &(kind, offset) in &kinds {
                let per_cpu = self.stats.get(&(base + offset), 0)?;
                let counter = per_cpu.iter().fold(Counter::default(), |sum, c| Counter {
                    packets: sum.packets + c.packets,
                    bytes: sum.bytes + c.bytes,
                });
                if counter != Counter::default() {
                    rows.push(StatRow {
                        net_id,
                        kind,
                        counter,
                    });
                }
            }
        }
        Ok(rows)
    }

    // ---- writes ------------------------------------------------------------------------

    pub(super) fn put_network(&mut self, net: &NetworkEntry) -> anyhow::Result<()> {
        check_net_id(net.net_id)?;
        let member_count = self.network(net.net_id)?.map_or(0, |n| n.member_count);
        self.networks
            .set(net.net_id, network_info(net, member_count), 0)?;
        let key = subnet_key(net.subnet.trunc());
        self.subnets.insert(&key, net.net_id, 0)?;
        // A subnet this id held before (it cannot change in netd, but a stale pin might).
        for (subnet, owner) in self.subnets()? {
            if owner == net.net_id && subnet != net.subnet.trunc() {
                ignore_missing(self.subnets.remove(&subnet_key(subnet)))?;
            }
        }
        Ok(())
    }

    pub(super) fn remove_network(&mut self, net_id: u32) -> anyhow::Result<()> {
        check_net_id(net_id)?;
        // Stop floods first, then drop the slots, the subnet and the settings.
        if let Some(mut info) = self.network(net_id)? {
            info.member_count = 0;
            self.networks.set(net_id, info, 0)?;
        }
        self.delete_members(|key| key.net_id == net_id)?;
        for (subnet, owner) in self.subnets()? {
            if owner == net_id {
                ignore_missing(self.subnets.remove(&subnet_key(subnet)))?;
            }
        }
        self.networks.set(net_id, EMPTY_NETWORK, 0)?;
        self.clear_stats(net_id)
    }

    pub(super) fn put_endpoint(&mut self, ep: &EndpointInfo) -> anyhow::Result<()> {
        check_net_id(ep.net_id)?;
        // Reachable before it may send: EP_BY_IP first. Each cache after its hash.
        self.ep_by_ip.insert(u32::from_ne_bytes(ep.ip), *ep, 0)?;
        self.ip_cache.filled(ep)?;
        self.ep_by_ifindex.insert(ep.host_ifindex, *ep, 0)?;
        self.ifindex_cache.filled(ep)?;
        Ok(())
    }

    pub(super) fn remove_endpoint(&mut self, ep: &EndpointInfo) -> anyhow::Result<()> {
        // Stop it sending first. Each entry goes only if it is still this endpoint's: the
        // IP may already belong to a newer endpoint.
        match self.ep_by_ifindex.get(&ep.host_ifindex, 0) {
            Ok(cur) if cur.ip == ep.ip => self.remove_by_ifindex(ep.host_ifindex)?,
            Ok(_) => {}
            Err(err) if not_found(&err) => {}
            Err(err) => return Err(err.into()),
        }
        let ip = u32::from_ne_bytes(ep.ip);
        match self.ep_by_ip.get(&ip, 0) {
            Ok(cur) if cur.host_ifindex == ep.host_ifindex => self.remove_by_ip(ip)?,
            Ok(_) => {}
            Err(err) if not_found(&err) => {}
            Err(err) => return Err(err.into()),
        }
        Ok(())
    }

    pub(super) fn set_members(
        &mut self,
        net_id: u32,
        host_ifindexes: &[u32],
    ) -> anyhow::Result<()> {
        check_net_id(net_id)?;
        let mut info = self
            .network(net_id)?
            .with_context(|| format!("set_members: network {net_id} is not in the dataplane"))?;
        let cap = MAX_FLOOD_MEMBERS as usize;
        if host_ifindexes.len() > cap {
            tracing::warn!(
                net_id,
                members = host_ifindexes.len(),
                "broadcast and multicast reach only the first {cap} members"
            );
        }
        let list = &host_ifindexes[..host_ifindexes.len().min(cap)];
        for (slot, &ifindex) in (0u32..).zip(list) {
            self.members
                .insert(MemberKey { net_id, slot }, ifindex, 0)?;
        }
        let count = list.len() as u32;
        info.member_count = count;
        self.networks.set(net_id, info, 0)?;
        self.delete_members(|key| key.net_id == net_id && key.slot >= count)
    }

    pub(super) fn sync(
        &mut self,
        networks: &[NetworkEntry],
        endpoints: &[EndpointInfo],
    ) -> anyhow::Result<()> {
        let mut members: BTreeMap<u32, Vec<u32>> =
            networks.iter().map(|n| (n.net_id, Vec::new())).collect();
        // An endpoint of a network not in the list would run with an all-zero network
        // (no icc, not internal): leave it out instead.
        let endpoints: Vec<&EndpointInfo> = endpoints
            .iter()
            .filter(|ep| {
                let known = members.contains_key(&ep.net_id);
                if !known {
                    tracing::warn!(
                        host_ifindex = ep.host_ifindex,
                        net_id = ep.net_id,
                        "sync: endpoint of an unknown network left out of the dataplane"
                    );
                }
                known
            })
            .collect();
        // Write the desired state first, so traffic that should flow never stops.
        for net in networks {
            self.put_network(net)?;
        }
        for ep in &endpoints {
            self.put_endpoint(ep)?;
            if let Some(list) = members.get_mut(&ep.net_id) {
                list.push(ep.host_ifindex);
            }
        }
        for (net_id, mut ifindexes) in members {
            ifindexes.sort_unstable();
            self.set_members(net_id, &ifindexes)?;
        }

        // Then delete everything else.
        let by_ifindex: BTreeSet<u32> = endpoints.iter().map(|ep| ep.host_ifindex).collect();
        for ifindex in self.endpoint_ifindexes()? {
            if !by_ifindex.contains(&ifindex) {
                self.remove_by_ifindex(ifindex)?;
            }
        }
        let by_ip: BTreeSet<[u8; 4]> = endpoints.iter().map(|ep| ep.ip).collect();
        for ip in self.endpoint_ips()? {
            if !by_ip.contains(&ip.octets()) {
                self.remove_by_ip(ip_key(ip))?;
            }
        }
        // Now that the hashes are final, cache what fits (also slots freed by the deletes)
        // and drop anything a crash or another build left in the caches.
        let hashed = self.ep_by_ifindex.iter().collect::<Result<_, _>>()?;
        self.ifindex_cache.rebuild(&hashed)?;
        let hashed = self.ep_by_ip.iter().collect::<Result<_, _>>()?;
        self.ip_cache.rebuild(&hashed)?;
        let wanted: BTreeMap<u32, Ipv4Net> = networks
            .iter()
            .map(|n| (n.net_id, n.subnet.trunc()))
            .collect();
        for (subnet, owner) in self.subnets()? {
            if wanted.get(&owner) != Some(&subnet) {
                ignore_missing(self.subnets.remove(&subnet_key(subnet)))?;
            }
        }
        self.delete_members(|key| !wanted.contains_key(&key.net_id))?;
        for net_id in self.network_ids()? {
            if !wanted.contains_key(&net_id) {
                self.remove_network(net_id)?;
            }
        }
        Ok(())
    }

    /// Removes one EP_BY_IFINDEX entry, uncaching it first.
    fn remove_by_ifindex(&mut self, ifindex: u32) -> anyhow::Result<()> {
        self.ifindex_cache.evict(ifindex)?;
        ignore_missing(self.ep_by_ifindex.remove(&ifindex))
    }

    /// Removes one EP_BY_IP entry, uncaching it first.
    fn remove_by_ip(&mut self, ip: u32) -> anyhow::Result<()> {
        self.ip_cache.evict(ip)?;
        ignore_missing(self.ep_by_ip.remove(&ip))
    }

    fn delete_members(&mut self, doomed: impl Fn(&MemberKey) -> bool) -> anyhow::Result<()> {
        let keys = self.members.keys().collect::<Result<Vec<_>, _>>()?;
        for key in keys.iter().filter(|k| doomed(k)) {
            ignore_missing(self.members.remove(key))?;
        }
        Ok(())
    }

    fn clear_stats(&mut self, net_id: u32) -> anyhow::Result<()> {
        let cpus = nr_cpus().map_err(|(path, err)| anyhow::anyhow!("{path}: {err}"))?;
        let base = delivery_slot(net_id, Delivery::Peer);
        for slot in 0..netd_common::STAT_SLOTS {
            let zero = PerCpuValues::try_from(vec![Counter::default(); cpus])?;
            self.stats.set(base + slot, zero, 0)?;
        }
        Ok(())
    }
}

fn check_net_id(net_id: u32) -> anyhow::Result<()> {
    if net_id >= MAX_NETWORKS {
        bail!(
            "network id {net_id} is out of range (max {})",
            MAX_NETWORKS - 1
        );
    }
    Ok(())
}
