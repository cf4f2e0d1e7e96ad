//! The NAT side of the dataplane's maps: the flow table (listing, expiry, flushing an
//! endpoint's flows), published ports, uplinks, host addresses, the socket hooks'
//! settings, and the NAT counters.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues};
use aya::util::nr_cpus;
use aya::Ebpf;
use netd_common::{
    FlowKey, NatConfig, NatCounter, NatEntry, NatKind, PublishKey, PublishTarget, UplinkInfo,
    IPPROTO_ICMP, IPPROTO_TCP, MAP_HOST_ADDRS, MAP_NAT, MAP_NAT_CONFIG, MAP_NAT_STATS,
    MAP_PUBLISHED, MAP_UPLINKS, MAX_UPLINKS, NAT_FLAG_CLOSING, NAT_FLAG_ORIGINAL,
};

/// How long an idle flow lives, by protocol and state (conntrack's spirit, shorter
/// where an LRU table should not hold dead flows for days).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub tcp_established: Duration,
    pub tcp_closing: Duration,
    pub udp: Duration,
    pub icmp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: Duration::from_secs(2 * 3600),
            tcp_closing: Duration::from_secs(10),
            udp: Duration::from_secs(60),
            icmp: Duration::from_secs(30),
        }
    }
}

/// One translated flow, as `netd conntrack ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRow {
    pub proto: u8,
    pub kind: Option<NatKind>,
    pub original: (SocketAddrV4, SocketAddrV4),
    pub translated: (SocketAddrV4, SocketAddrV4),
    pub idle: Duration,
}

/// NAT counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatCounters {
    pub entries: u64,
    pub created: u64,
    pub deleted: u64,
    pub evicted: u64,
    pub ports_exhausted: u64,
    pub sockets_rewritten: u64,
}

pub struct NatTables {
    flows: HashMap<MapData, FlowKey, NatEntry>,
    published: HashMap<MapData, PublishKey, PublishTarget>,
    uplinks: Array<MapData, UplinkInfo>,
    host_addrs: HashMap<MapData, u32, u32>,
    config: Array<MapData, NatConfig>,
    counters: PerCpuArray<MapData, u64>,
}

impl NatTables {
    pub(super) fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        let mut take = |name: &str| super::maps::take_map(ebpf, name);
        Ok(Self {
            flows: take(MAP_NAT)?.try_into()?,
            published: take(MAP_PUBLISHED)?.try_into()?,
            uplinks: take(MAP_UPLINKS)?.try_into()?,
            host_addrs: take(MAP_HOST_ADDRS)?.try_into()?,
            config: take(MAP_NAT_CONFIG)?.try_into()?,
            counters: take(MAP_NAT_STATS)?.try_into()?,
        })
    }

    pub(super) fn set_config(&mut self, config: NatConfig) -> anyhow::Result<()> {
        Ok(self.config.set(0, config, 0)?)
    }

    /// Writes the uplink list in order; unused slots are emptied.
    pub(super) fn set_uplinks(&mut self, uplinks: &[UplinkInfo]) -> anyhow::Result<()> {
        anyhow::ensure!(
            uplinks.len() <= MAX_UPLINKS as usize,
            "at most {MAX_UPLINKS} uplinks are supported"
        );
        for slot in 0..MAX_UPLINKS {
            let info = uplinks.get(slot as usize).copied().unwrap_or(UplinkInfo {
                ifindex: 0,
                ip: [0; 4],
            });
            self.uplinks.set(slot, info, 0)?;
        }
        Ok(())
    }

    /// Makes HOST_ADDRS hold exactly `addrs`.
    pub(super) fn set_host_addrs(&mut self, addrs: &[Ipv4Addr]) -> anyhow::Result<()> {
        let want: std::collections::BTreeSet<u32> = addrs
            .iter()
            .map(|a| u32::from_ne_bytes(a.octets()))
            .collect();
        for key in want.iter() {
            self.host_addrs.insert(key, 1, 0)?;
        }
        let stale: Vec<u32> = self
            .host_addrs
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !want.contains(k))
            .collect();
        for key in stale {
            let _ = self.host_addrs.remove(&key);
        }
        Ok(())
    }

    pub(super) fn publish(
        &mut self,
        entries: &[(PublishKey, PublishTarget)],
    ) -> anyhow::Result<()> {
        for (key, target) in entries {
            self.published.insert(key, target, 0)?;
        }
        Ok(())
    }

    pub(super) fn unpublish(&mut self, keys: &[PublishKey]) -> anyhow::Result<()> {
        for key in keys {
            match self.published.remove(key) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Every published port in the map.
    pub fn published(&self) -> anyhow::Result<Vec<(PublishKey, PublishTarget)>> {
        Ok(self.published.iter().collect::<Result<_, _>>()?)
    }

    /// Deletes every flow entry that `doomed` picks, returning how many went.
    fn delete_flows(
        &mut self,
        doomed: impl Fn(&FlowKey, &NatEntry) -> bool,
    ) -> anyhow::Result<u64> {
        let keys: Vec<FlowKey> = self
            .flows
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, e)| doomed(k, e))
            .map(|(k, _)| k)
            .collect();
        let mut deleted = 0;
        for key in keys {
            if self.flows.remove(&key).is_ok() {
                deleted += 1;
            }
        }
        self.add_deleted(deleted)?;
        Ok(deleted)
    }

    /// Removes every flow to, from or through `ip` (an endpoint going away).
    pub(super) fn flush_address(&mut self, ip: Ipv4Addr) -> anyhow::Result<u64> {
        let ip = ip.octets();
        self.delete_flows(|k, e| {
            k.src_ip == ip || k.dst_ip == ip || e.src_ip == ip || e.dst_ip == ip
        })
    }

    /// Deletes flows idle for longer than their timeout (both entries of a flow age
    /// together: a packet refreshes both).
    pub(super) fn expire(&mut self, timeouts: &Timeouts) -> anyhow::Result<u64> {
        let now = monotonic_ns()?;
        self.delete_flows(|k, e| {
            let limit = if e.flags & NAT_FLAG_CLOSING != 0 {
                timeouts.tcp_closing
            } else {
                match k.proto {
                    IPPROTO_TCP => timeouts.tcp_established,
                    IPPROTO_ICMP => timeouts.icmp,
                    _ => timeouts.udp,
                }
            };
            now.saturating_sub(e.last_seen_ns) > limit.as_nanos() as u64
        })
    }

    /// The flows, one row per flow (its opening direction's entry).
    pub fn flows(&self) -> anyhow::Result<Vec<FlowRow>> {
        let now = monotonic_ns()?;
        let mut rows: Vec<FlowRow> = self
            .flows
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, e)| e.flags & NAT_FLAG_ORIGINAL != 0)
            .map(|(k, e)| FlowRow {
                proto: k.proto,
                kind: NatKind::from_u8(e.kind),
                original: (addr(k.src_ip, k.src_port), addr(k.dst_ip, k.dst_port)),
                translated: (addr(e.src_ip, e.src_port), addr(e.dst_ip, e.dst_port)),
                idle: Duration::from_nanos(now.saturating_sub(e.last_seen_ns)),
            })
            .collect();
        rows.sort_by_key(|r| (r.proto, r.original));
        Ok(rows)
    }

    /// Raw entries, for tests asserting that nothing of an endpoint is left.
    pub fn flow_entries(&self) -> anyhow::Result<Vec<(FlowKey, NatEntry)>> {
        Ok(self.flows.iter().collect::<Result<_, _>>()?)
    }

    pub fn counters(&self) -> anyhow::Result<NatCounters> {
        let sum = |c: NatCounter| -> anyhow::Result<u64> {
            Ok(self.counters.get(&(c as u32), 0)?.iter().sum())
        };
        let entries = self.flows.keys().filter(Result::is_ok).count() as u64;
        let created = sum(NatCounter::EntriesCreated)?;
        let deleted = sum(NatCounter::EntriesDeleted)?;
        Ok(NatCounters {
            entries,
            created,
            deleted,
            evicted: created.saturating_sub(deleted).saturating_sub(entries),
            ports_exhausted: sum(NatCounter::PortsExhausted)?,
            sockets_rewritten: sum(NatCounter::SocketsRewritten)?,
        })
    }

    /// Adds to the daemon's own counter (CPU 0's slot of EntriesDeleted), which lives in
    /// the pinned map so that eviction counts survive restarts.
    fn add_deleted(&mut self, n: u64) -> anyhow::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let index = NatCounter::EntriesDeleted as u32;
        let mut values: Vec<u64> = self.counters.get(&index, 0)?.iter().copied().collect();
        values.resize(nr_cpus().map_err(|(_, e)| e)?, 0);
        values[0] += n;
        self.counters
            .set(index, PerCpuValues::try_from(values)?, 0)?;
        Ok(())
    }
}

fn addr(ip: [u8; 4], port_be: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(ip), u16::from_be(port_be))
}

/// bpf_ktime_get_ns's clock.
fn monotonic_ns() -> anyhow::Result<u64> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    Ok(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
}
