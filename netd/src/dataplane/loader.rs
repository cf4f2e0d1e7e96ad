//! Loading the embedded object: bpffs checks, adoption of pinned maps, program load.

use std::{
    mem::size_of,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _};
use aya::{
    maps::{MapInfo, MapType},
    programs::SchedClassifier,
    Ebpf, EbpfLoader,
};
use netd_common::{
    Counter, EndpointInfo, MemberKey, NetworkInfo, EP_CACHE_SLOTS, MAP_ENDPOINTS_BY_IFINDEX,
    MAP_ENDPOINTS_BY_IP, MAP_EP_CACHE_BY_IFINDEX, MAP_EP_CACHE_BY_IP, MAP_MEMBERS, MAP_NETWORKS,
    MAP_STATS, MAP_SUBNETS, MAX_ENDPOINTS, MAX_FLOOD_MEMBERS, MAX_NETWORKS, PROG_FROM_SANDBOX,
    STAT_SLOTS,
};

use super::maps::Maps;

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

const LAYOUTS: [Layout; 8] = [
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
];

/// Loads the object and `from_sandbox`. With `bpffs`, every map is adopted from (or created
/// and pinned at) `<bpffs>/maps/<NAME>`; without, nothing is pinned.
pub fn load(bpffs: Option<&Path>) -> anyhow::Result<(Ebpf, Maps)> {
    let mut loader = EbpfLoader::new();
    let maps_dir = match bpffs {
        Some(bpffs) => Some(prepare_pin_dirs(bpffs)?),
        None => None,
    };
    if let Some(dir) = &maps_dir {
        for layout in &LAYOUTS {
            let pin = dir.join(layout.name);
            check_pinned_layout(&pin, layout)?;
            loader.map_pin_path(layout.name, pin);
        }
    }
    let mut ebpf = loader
        .load(OBJECT)
        .context("loading the netd eBPF object")?;
    let prog: &mut SchedClassifier = ebpf
        .program_mut(PROG_FROM_SANDBOX)
        .context("from_sandbox missing from the object")?
        .try_into()?;
    // aya's load error carries the verifier log; `{:#}` of the chain shows it.
    prog.load().context("verifier rejected from_sandbox")?;
    let maps = Maps::take(&mut ebpf)?;
    Ok((ebpf, maps))
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

fn check_pinned_layout(pin: &Path, want: &Layout) -> anyhow::Result<()> {
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
    let expected = (
        want.map_type,
        want.key_size,
        want.value_size,
        want.max_entries,
    );
    if found != expected {
        bail!(
            "pinned map {} has (type, key, value, max_entries) {found:?} but this netd expects \
             {expected:?}; it was left by an incompatible build: stop traffic and remove the pin",
            pin.display()
        );
    }
    Ok(())
}
