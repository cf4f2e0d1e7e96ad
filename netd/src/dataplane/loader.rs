//! Loading the embedded object: bpffs checks, adoption of pinned maps, program load.

use std::{
    mem::size_of,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _};
use aya::{
    maps::{MapInfo, MapType},
    programs::{CgroupSockAddr, SchedClassifier},
    Ebpf, EbpfLoader,
};
use netd_common::{
    Counter, EndpointInfo, FlowKey, FragmentKey, MemberKey, NatConfig, NatEntry, NetworkInfo,
    OverlayConfig, PublishKey, PublishTarget, RemoteEndpoint, SockKey, SockOrigin, UplinkInfo,
    EP_CACHE_SLOTS, MAP_ENDPOINTS_BY_IFINDEX, MAP_ENDPOINTS_BY_IP, MAP_EP_CACHE_BY_IFINDEX,
    MAP_EP_CACHE_BY_IP, MAP_FRAGMENTS, MAP_HOST_ADDRS, MAP_MEMBERS, MAP_NAT, MAP_NAT_CONFIG,
    MAP_NAT_STATS, MAP_NETWORKS, MAP_OVERLAY_CONFIG, MAP_PUBLISHED, MAP_REMOTE_ENDPOINTS,
    MAP_SOCK_NAT, MAP_STATS, MAP_SUBNETS, MAP_UPLINKS, MAP_VNIS, MAX_ENDPOINTS, MAX_FLOOD_MEMBERS,
    MAX_FRAGMENTED_DATAGRAMS, MAX_HOST_ADDRS, MAX_NETWORKS, MAX_PUBLISHED, MAX_SOCK_NAT,
    MAX_UPLINKS, NAT_COUNTERS, PROG_CONNECT4, PROG_FROM_SANDBOX, PROG_FROM_UPLINK,
    PROG_GETPEERNAME4, PROG_RECVMSG4, PROG_SENDMSG4, PROG_TO_SANDBOX, STAT_SLOTS,
};

use super::maps::Maps;
use super::nat::NatTables;

/// The tc programs, loaded once; each hangs on its own kind of device.
pub const TC_PROGRAMS: [&str; 3] = [PROG_FROM_SANDBOX, PROG_TO_SANDBOX, PROG_FROM_UPLINK];
/// The cgroup socket hooks.
pub const SOCK_PROGRAMS: [&str; 4] = [
    PROG_CONNECT4,
    PROG_SENDMSG4,
    PROG_RECVMSG4,
    PROG_GETPEERNAME4,
];

/// Subdirectory of `<bpffs>` holding one pin per map, named as in netd-common.
pub const MAPS_DIR: &str = "maps";

/// The kernel object built from `netd-ebpf` by build.rs (aya-build copies bin "netd" here).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netd"));

/// The layout each map must have, as the kernel side declares it. A pin left by another
/// build with a different layout is refused rather than silently misread.
struct Layout {
    name: &'static str,
    map_type: MapType,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
}

const LAYOUTS: [Layout; 19] = [
    Layout {
        name: MAP_ENDPOINTS_BY_IFINDEX,
        map_type: MapType::Hash,
        key_size: size_of::<u32>(),
        value_size: size_of::<EndpointInfo>(),
        max_entries: MAX_ENDPOINTS,
    },
    Layout {
        name: MAP_ENDPOINTS_BY_IP,
        map_type: MapType::Hash,
        key_size: size_of::<u32>(),
        value_size: size_of::<EndpointInfo>(),
        max_entries: MAX_ENDPOINTS,
    },
    Layout {
        name: MAP_EP_CACHE_BY_IFINDEX,
        map_type: MapType::Array,
        key_size: size_of::<u32>(),
        value_size: size_of::<EndpointInfo>(),
        max_entries: EP_CACHE_SLOTS,
    },
    Layout {
        name: MAP_EP_CACHE_BY_IP,
        map_type: MapType::Array,
        key_size: size_of::<u32>(),
        value_size: size_of::<EndpointInfo>(),
        max_entries: EP_CACHE_SLOTS,
    },
    Layout {
        name: MAP_NETWORKS,
        map_type: MapType::Array,
        key_size: size_of::<u32>(),
        value_size: size_of::<NetworkInfo>(),
        max_entries: MAX_NETWORKS,
    },
    Layout {
        name: MAP_SUBNETS,
        map_type: MapType::LpmTrie,
        key_size: 2 * size_of::<u32>(),
        value_size: size_of::<u32>(),
        max_entries: MAX_NETWORKS,
    },
    Layout {
        name: MAP_MEMBERS,
        map_type: MapType::Hash,
        key_size: size_of::<MemberKey>(),
        value_size: size_of::<u32>(),
        max_entries: MAX_NETWORKS * MAX_FLOOD_MEMBERS,
    },
    Layout {
        name: MAP_STATS,
        map_type: MapType::PerCpuArray,
        key_size: size_of::<u32>(),
        value_size: size_of::<Counter>(),
        max_entries: MAX_NETWORKS * STAT_SLOTS,
    },
    Layout {
        name: MAP_NAT,
        map_type: MapType::LruHash,
        key_size: size_of::<FlowKey>(),
        value_size: size_of::<NatEntry>(),
        // Set from `--nat-max-entries` at load; checked against that.
        max_entries: 0,
    },
    Layout {
        name: MAP_PUBLISHED,
        map_type: MapType::Hash,
        key_size: size_of::<PublishKey>(),
        value_size: size_of::<PublishTarget>(),
        max_entries: MAX_PUBLISHED,
    },
    Layout {
        name: MAP_UPLINKS,
        map_type: MapType::Array,
        key_size: size_of::<u32>(),
        value_size: size_of::<UplinkInfo>(),
        max_entries: MAX_UPLINKS,
    },
    Layout {
        name: MAP_HOST_ADDRS,
        map_type: MapType::Hash,
        key_size: size_of::<u32>(),
        value_size: size_of::<u32>(),
        max_entries: MAX_HOST_ADDRS,
    },
    Layout {
        name: MAP_NAT_CONFIG,
        map_type: MapType::Array,
        key_size: size_of::<u32>(),
        value_size: size_of::<NatConfig>(),
        max_entries: 1,
    },
    Layout {
        name: MAP_SOCK_NAT,
        map_type: MapType::LruHash,
        key_size: size_of::<SockKey>(),
        value_size: size_of::<SockOrigin>(),
        max_entries: MAX_SOCK_NAT,
    },
    Layout {
        name: MAP_NAT_STATS,
        map_type: MapType::PerCpuArray,
        key_size: size_of::<u32>(),
        value_size: size_of::<u64>(),
        max_entries: NAT_COUNTERS,
    },
    Layout {
        name: MAP_FRAGMENTS,
        map_type: MapType::LruHash,
        key_size: size_of::<FragmentKey>(),
        value_size: size_of::<FlowKey>(),
        max_entries: MAX_FRAGMENTED_DATAGRAMS,
    },
    Layout {
        name: MAP_REMOTE_ENDPOINTS,
        map_type: MapType::Hash,
        key_size: size_of::<u32>(),
        value_size: size_of::<RemoteEndpoint>(),
        max_entries: MAX_ENDPOINTS,
    },
    Layout {
        name: MAP_VNIS,
        map_type: MapType::Hash,
        key_size: size_of::<u32>(),
        value_size: size_of::<u32>(),
        max_entries: MAX_NETWORKS,
    },
    Layout {
        name: MAP_OVERLAY_CONFIG,
        map_type: MapType::Array,
        key_size: size_of::<u32>(),
        value_size: size_of::<OverlayConfig>(),
        max_entries: 1,
    },
];

/// Loads the object and every program. With `bpffs`, every map is adopted from (or created
/// and pinned at) `<bpffs>/maps/<NAME>`; without, nothing is pinned. `nat_entries` sizes
/// the NAT table.
pub fn load(bpffs: Option<&Path>, nat_entries: u32) -> anyhow::Result<(Ebpf, Maps, NatTables)> {
    let mut loader = EbpfLoader::new();
    loader.map_max_entries(MAP_NAT, nat_entries);
    let maps_dir = match bpffs {
        Some(bpffs) => Some(prepare_pin_dirs(bpffs)?),
        None => None,
    };
    if let Some(dir) = &maps_dir {
        for layout in &LAYOUTS {
            let pin = dir.join(layout.name);
            let max_entries = if layout.name == MAP_NAT {
                nat_entries
            } else {
                layout.max_entries
            };
            check_pinned_layout(&pin, layout, max_entries)?;
            loader.map_pin_path(layout.name, pin);
        }
    }
    let mut ebpf = loader
        .load(OBJECT)
        .context("loading the netd eBPF object")?;
    for name in TC_PROGRAMS {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("{name} missing from the object"))?
            .try_into()?;
        // aya's load error carries the verifier log; `{:#}` of the chain shows it.
        prog.load()
            .with_context(|| format!("verifier rejected {name}"))?;
    }
    for name in SOCK_PROGRAMS {
        let prog: &mut CgroupSockAddr = ebpf
            .program_mut(name)
            .with_context(|| format!("{name} missing from the object"))?
            .try_into()?;
        prog.load()
            .with_context(|| format!("verifier rejected {name}"))?;
    }
    let maps = Maps::take(&mut ebpf)?;
    let nat = NatTables::take(&mut ebpf)?;
    Ok((ebpf, maps, nat))
}

/// Checks that `bpffs` lives on a bpf filesystem and creates `maps/` under it.
fn prepare_pin_dirs(bpffs: &Path) -> anyhow::Result<PathBuf> {
    let existing = bpffs
        .ancestors()
        .find(|p| p.exists())
        .context("no existing ancestor of the bpffs path")?;
    let fs = nix::sys::statfs::statfs(existing)
        .with_context(|| format!("statfs {}", existing.display()))?;
    if fs.filesystem_type() != nix::sys::statfs::BPF_FS_MAGIC {
        bail!(
            "{} is not on a bpf filesystem ({} has filesystem magic {:?}); mount one with `mount -t bpf bpf /sys/fs/bpf`",
            bpffs.display(),
            existing.display(),
            fs.filesystem_type(),
        );
    }
    let dir = bpffs.join(MAPS_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn check_pinned_layout(pin: &Path, want: &Layout, max_entries: u32) -> anyhow::Result<()> {
    if !pin.exists() {
        return Ok(());
    }
    let info =
        MapInfo::from_pin(pin).with_context(|| format!("opening pinned map {}", pin.display()))?;
    let map_type = info.map_type()?;
    let found = (
        map_type,
        info.key_size() as usize,
        info.value_size() as usize,
        info.max_entries(),
    );
    let expected = (want.map_type, want.key_size, want.value_size, max_entries);
    if found != expected
        && found.3 != expected.3
        && (found.0, found.1, found.2) == (expected.0, expected.1, expected.2)
    {
        bail!(
            "pinned map {} holds {} entries but {} were asked for (--nat-max-entries): \
             restart with the pinned size, or stop traffic and remove the pin to resize",
            pin.display(),
            found.3,
            expected.3
        );
    }
    if found != expected {
        bail!(
            "pinned map {} has (type, key, value, max_entries) {found:?} but this netd expects \
             {expected:?}; it was left by an incompatible build: stop traffic and remove the pin",
            pin.display()
        );
    }
    Ok(())
}
