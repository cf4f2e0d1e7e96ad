//! The dataplane's maps. Names and value types are the ABI in `netd-common`; the daemon
//! adopts them by name through `EbpfLoader::map_pin_path`, so none is declared `pinned`
//! here (that would force a pin under /sys/fs/bpf even for unpinned test loads).

use aya_ebpf::{
    macros::map,
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, LruHashMap, PerCpuArray},
};
use netd_common::{
    Counter, EndpointInfo, FlowKey, FragmentKey, MemberKey, NatConfig, NatEntry, NetworkInfo,
    OverlayConfig, PublishKey, PublishTarget, RemoteEndpoint, SockKey, SockOrigin, UplinkInfo,
    DEFAULT_NAT_ENTRIES, EP_CACHE_SLOTS, MAX_ENDPOINTS, MAX_FLOOD_MEMBERS,
    MAX_FRAGMENTED_DATAGRAMS, MAX_HOST_ADDRS, MAX_NETWORKS, MAX_PUBLISHED, MAX_SOCK_NAT,
    MAX_UPLINKS, NAT_COUNTERS, STAT_SLOTS,
};

/// Host-side veth ifindex -> the endpoint sending on it. Written by the daemon on connect.
#[map]
pub static EP_BY_IFINDEX: HashMap<u32, EndpointInfo> = HashMap::with_max_entries(MAX_ENDPOINTS, 0);

/// Sandbox IPv4 (wire order, as u32) -> the endpoint owning it. Written by the daemon on connect.
#[map]
pub static EP_BY_IP: HashMap<u32, EndpointInfo> = HashMap::with_max_entries(MAX_ENDPOINTS, 0);

/// `ifindex_slot(ifindex)` -> a copy of one EP_BY_IFINDEX entry (all-zero: empty). An array,
/// so the lookup is inlined; a slot that holds another ifindex sends the lookup on to the
/// hash. Written by the daemon next to EP_BY_IFINDEX.
#[map]
pub static EP_IFX_CACHE: Array<EndpointInfo> = Array::with_max_entries(EP_CACHE_SLOTS, 0);

/// `ip_slot(ip)` -> a copy of one EP_BY_IP entry (all-zero: empty), in front of EP_BY_IP
/// like EP_IFX_CACHE. Written by the daemon next to EP_BY_IP.
#[map]
pub static EP_IP_CACHE: Array<EndpointInfo> = Array::with_max_entries(EP_CACHE_SLOTS, 0);

/// Network id -> its settings; an all-zero slot is "no network". An array, not a hash, so
/// the verifier inlines the lookup on the fast path. Written by the daemon on network
/// create/rm and on every member change (member_count).
#[map]
pub static NETWORKS: Array<NetworkInfo> = Array::with_max_entries(MAX_NETWORKS, 0);

/// Every netd subnet (wire-order u32 key) -> its network id. Written by the daemon on network
/// create/rm. LPM tries require BPF_F_NO_PREALLOC, which aya-ebpf's LpmTrie adds itself.
#[map]
pub static SUBNETS: LpmTrie<u32, u32> = LpmTrie::with_max_entries(MAX_NETWORKS, 0);

/// (network id, slot) -> host-side ifindex of a member: the dense list a flood walks.
/// Written by the daemon on connect/disconnect.
#[map]
pub static MEMBERS: HashMap<MemberKey, u32> =
    HashMap::with_max_entries(MAX_NETWORKS * MAX_FLOOD_MEMBERS, 0);

/// Per-CPU packet/byte counters at `delivery_slot`/`drop_slot`. Written by the programs only.
#[map]
pub static STATS: PerCpuArray<Counter> =
    PerCpuArray::with_max_entries(MAX_NETWORKS * STAT_SLOTS, 0);

/// The SUBNETS key for one address: a /32 lookup finds the longest covering prefix.
#[inline(always)]
pub fn host_key(ip: u32) -> Key<u32> {
    Key::new(32, ip)
}

/// The NAT/conntrack table: [`FlowKey`] -> [`NatEntry`], both directions of every
/// translated flow. LRU, so a full table evicts the stalest flow instead of refusing new
/// ones; the daemon sizes it (`--nat-max-entries`) and expires idle entries.
#[map]
pub static NAT: LruHashMap<FlowKey, NatEntry> =
    LruHashMap::with_max_entries(DEFAULT_NAT_ENTRIES, 0);

/// Datagrams in fragments -> the flow of their first fragment: later fragments carry no
/// L4 header, so this is how they find their translation. LRU: a datagram whose last
/// fragment never comes ages out.
#[map]
pub static FRAGMENTS: LruHashMap<FragmentKey, FlowKey> =
    LruHashMap::with_max_entries(MAX_FRAGMENTED_DATAGRAMS, 0);

/// Published ports -> their backend. Written by the daemon on connect -p / disconnect.
#[map]
pub static PUBLISHED: HashMap<PublishKey, PublishTarget> =
    HashMap::with_max_entries(MAX_PUBLISHED, 0);

/// The uplinks, in order; a zero ifindex ends the list. Written by the daemon at start.
#[map]
pub static UPLINKS: Array<UplinkInfo> = Array::with_max_entries(MAX_UPLINKS, 0);

/// Every IPv4 address of the host (wire-order u32) -> 1. Written by the daemon.
#[map]
pub static HOST_ADDRS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_HOST_ADDRS, 0);

/// Slot 0: [`NatConfig`]. Written by the daemon at start.
#[map]
pub static NAT_CONFIG: Array<NatConfig> = Array::with_max_entries(1, 0);

/// Sockets the hooks pointed at a backend -> the address the application asked for.
#[map]
pub static SOCK_NAT: LruHashMap<SockKey, SockOrigin> =
    LruHashMap::with_max_entries(MAX_SOCK_NAT, 0);

/// Per-CPU NAT counters, indexed by [`netd_common::NatCounter`].
#[map]
pub static NAT_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(NAT_COUNTERS, 0);

/// Endpoints of overlay networks on other hosts: IPv4 (wire-order u32) -> where they live.
/// Written by the daemon from the cluster store.
#[map]
pub static REMOTE_EPS: HashMap<u32, RemoteEndpoint> = HashMap::with_max_entries(MAX_ENDPOINTS, 0);

/// VNI -> network id of every overlay network. Written by the daemon on network create/rm.
#[map]
pub static VNIS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_NETWORKS, 0);

/// Slot 0: [`OverlayConfig`] (this host's underlay address). Written by the daemon at start.
#[map]
pub static OVERLAY_CONFIG: Array<OverlayConfig> = Array::with_max_entries(1, 0);
