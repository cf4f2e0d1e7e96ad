//! Reads the daemon's pinned maps (`<bpffs>/maps/<NAME>`) straight from the kernel, so the
//! tests can tell a map entry that outlived its endpoint.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap, LpmTrie, Map, MapData};
use netd_common::maps::{
    EndpointInfo, MemberKey, NetworkInfo, MAP_ENDPOINTS_BY_IFINDEX, MAP_ENDPOINTS_BY_IP,
    MAP_MEMBERS, MAP_NETWORKS, MAP_SUBNETS,
};

/// The pinned maps of one daemon.
pub struct PinnedMaps {
    dir: PathBuf,
}

impl PinnedMaps {
    /// `bpffs` is the daemon's `--bpffs` directory.
    pub fn new(bpffs: &Path) -> Self {
        PinnedMaps {
            dir: bpffs.join("maps"),
        }
    }

    fn open(&self, name: &str) -> Map {
        let path = self.dir.join(name);
        let data = MapData::from_pin(&path).unwrap_or_else(|e| {
            panic!(
                "contract: map pin {} must exist: {e}; pins present: {:?}",
                path.display(),
                std::fs::read_dir(&self.dir)
                    .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                    .unwrap_or_default()
            )
        });
        Map::from_map_data(data).unwrap_or_else(|e| panic!("map {name}: {e}"))
    }

    fn hash<K: aya::Pod + Ord, V: aya::Pod>(&self, name: &str) -> BTreeMap<K, V> {
        let map = self.open(name);
        let h: HashMap<_, K, V> = HashMap::try_from(map).unwrap_or_else(|e| {
            panic!("map {name} is not a hash map with netd-common's key/value layout: {e}")
        });
        h.iter()
            .map(|r| r.unwrap_or_else(|e| panic!("iterating {name}: {e}")))
            .collect()
    }

    /// `EP_BY_IP`: sandbox IPv4 -> endpoint.
    pub fn endpoints_by_ip(&self) -> BTreeMap<Ipv4Addr, EndpointInfo> {
        self.hash::<[u8; 4], EndpointInfo>(MAP_ENDPOINTS_BY_IP)
            .into_iter()
            .map(|(k, v)| (Ipv4Addr::from(k), v))
            .collect()
    }

    /// Writes a bogus `EP_BY_IP` entry: only for checking that the leak checks see it.
    pub fn insert_endpoint_by_ip(&self, ip: Ipv4Addr, info: EndpointInfo) {
        let map = self.open(MAP_ENDPOINTS_BY_IP);
        let mut h: HashMap<_, [u8; 4], EndpointInfo> = HashMap::try_from(map)
            .unwrap_or_else(|e| panic!("map {MAP_ENDPOINTS_BY_IP}: unexpected layout: {e}"));
        h.insert(ip.octets(), info, 0)
            .unwrap_or_else(|e| panic!("insert into {MAP_ENDPOINTS_BY_IP}: {e}"));
    }

    /// Removes an `EP_BY_IP` entry written by [`PinnedMaps::insert_endpoint_by_ip`].
    pub fn remove_endpoint_by_ip(&self, ip: Ipv4Addr) {
        let map = self.open(MAP_ENDPOINTS_BY_IP);
        let mut h: HashMap<_, [u8; 4], EndpointInfo> = HashMap::try_from(map)
            .unwrap_or_else(|e| panic!("map {MAP_ENDPOINTS_BY_IP}: unexpected layout: {e}"));
        h.remove(&ip.octets())
            .unwrap_or_else(|e| panic!("remove from {MAP_ENDPOINTS_BY_IP}: {e}"));
    }

    /// `EP_BY_IFINDEX`: host-side ifindex -> endpoint.
    pub fn endpoints_by_ifindex(&self) -> BTreeMap<u32, EndpointInfo> {
        self.hash::<u32, EndpointInfo>(MAP_ENDPOINTS_BY_IFINDEX)
    }

    /// `MEMBERS`: (net id, slot) -> host ifindex.
    pub fn members(&self) -> Vec<(MemberKey, u32)> {
        let map = self.open(MAP_MEMBERS);
        let h: HashMap<_, MemberKey, u32> = HashMap::try_from(map)
            .unwrap_or_else(|e| panic!("map {MAP_MEMBERS}: unexpected layout: {e}"));
        h.iter()
            .map(|r| r.unwrap_or_else(|e| panic!("iterating {MAP_MEMBERS}: {e}")))
            .collect()
    }

    /// `NETWORKS`: net id -> network (a hash map, or an array whose unused slots are zero).
    pub fn networks(&self) -> BTreeMap<u32, NetworkInfo> {
        match self.open(MAP_NETWORKS) {
            m @ (Map::HashMap(_) | Map::LruHashMap(_)) => {
                let h: HashMap<_, u32, NetworkInfo> = HashMap::try_from(m)
                    .unwrap_or_else(|e| panic!("map {MAP_NETWORKS}: unexpected layout: {e}"));
                h.iter()
                    .map(|r| r.unwrap_or_else(|e| panic!("iterating {MAP_NETWORKS}: {e}")))
                    .collect()
            }
            m @ Map::Array(_) => {
                let a: aya::maps::Array<_, NetworkInfo> = aya::maps::Array::try_from(m)
                    .unwrap_or_else(|e| panic!("map {MAP_NETWORKS}: unexpected layout: {e}"));
                a.iter()
                    .enumerate()
                    .filter_map(|(i, r)| {
                        let v = r.unwrap_or_else(|e| panic!("iterating {MAP_NETWORKS}: {e}"));
                        (v.gateway_ip != [0; 4]).then_some((i as u32, v))
                    })
                    .collect()
            }
            other => panic!("map {MAP_NETWORKS}: unexpected map type {other:?}"),
        }
    }

    /// `SUBNETS`: (subnet, prefix length) -> net id.
    pub fn subnets(&self) -> Vec<(Ipv4Addr, u32, u32)> {
        let map = self.open(MAP_SUBNETS);
        let t: LpmTrie<_, [u8; 4], u32> = LpmTrie::try_from(map)
            .unwrap_or_else(|e| panic!("map {MAP_SUBNETS}: unexpected layout: {e}"));
        t.iter()
            .map(|r| {
                let (k, v) = r.unwrap_or_else(|e| panic!("iterating {MAP_SUBNETS}: {e}"));
                (Ipv4Addr::from(k.data()), k.prefix_len(), v)
            })
            .collect()
    }
}
