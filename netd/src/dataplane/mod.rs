//! The daemon's side of the eBPF dataplane: loads the programs, owns their maps (pinned
//! under `<bpffs>`), their tc filters (on the devices) and socket hooks (pinned links), so
//! traffic keeps flowing while the daemon is down.
//!
//! - `loader`: the embedded object, bpffs checks, adopt-or-create of the pinned maps.
//! - `maps`: typed wrappers for the bridge maps, and read access for tests.
//! - `nat`: the NAT table, published ports, uplinks and host addresses.
//! - `overlay`: remote endpoints, VNIs, the tunnel address and decap on the underlay.
//! - `links`: the cls_bpf filter on each host veth and uplink (and why not tcx).
//! - `socket_hooks`: the cgroup hooks that publish ports to the host's own sockets.
//!
//! BPF_PROG_TEST_RUN ([`Dataplane::test_run`]) runs the program as if the frame arrived
//! on the loopback device, so packet tests register their sender at [`TEST_RUN_IFINDEX`].

mod links;
mod loader;
mod maps;
mod nat;
mod overlay;
mod socket_hooks;

use std::{net::Ipv4Addr, path::Path};

use anyhow::Context as _;
use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions};
use netd_common::{
    Counter, Delivery, DropReason, EndpointInfo, NatConfig, PublishKey, PublishTarget, UplinkInfo,
    DEFAULT_NAT_ENTRIES, PROG_FROM_SANDBOX, PROG_FROM_UPLINK, PROG_TO_SANDBOX,
};

pub use ipnet;
use links::Direction;
pub use maps::Maps;
pub use nat::{FlowRow, NatCounters, NatTables, Timeouts};
pub use socket_hooks::cgroup2_root;

/// ifindex the program sees under BPF_PROG_TEST_RUN: the kernel attaches the test skb to
/// the loopback device of the caller's netns, which is always ifindex 1.
pub const TEST_RUN_IFINDEX: u32 = 1;

/// One network as the dataplane needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkEntry {
    /// Dataplane id, `< MAX_NETWORKS`; keys NETWORKS and the stats rows.
    pub net_id: u32,
    pub subnet: ipnet::Ipv4Net,
    pub gateway: Ipv4Addr,
    pub gateway_mac: [u8; 6],
    /// `enable_icc`: endpoints may talk to each other.
    pub icc: bool,
    /// `--internal`: nothing outside netd's subnets is reachable.
    pub internal: bool,
    /// `enable_ip_masquerade`: traffic to the outside leaves with the uplink's address.
    pub masquerade: bool,
}

/// What a counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatKind {
    Delivery(Delivery),
    Drop(DropReason),
}

/// One non-zero counter, summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatRow {
    pub net_id: u32,
    pub kind: StatKind,
    pub counter: Counter,
}

/// Result of one BPF_PROG_TEST_RUN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRunOutcome {
    /// The program's return value (TC_ACT_OK = 0, TC_ACT_SHOT = 2, TC_ACT_REDIRECT = 7).
    pub verdict: i32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// Kernel-measured average duration of one run, in nanoseconds.
    pub avg_ns: u64,
}

/// The loaded program and its maps.
pub struct Dataplane {
    /// The loaded object; owns the program (the maps were moved into `maps`).
    ebpf: aya::Ebpf,
    /// Typed handles on every bridge map.
    maps: Maps,
    /// Typed handles on the NAT maps.
    nat: NatTables,
    /// The tc filter on each host veth.
    links: links::Links,
    /// The tc filter on each uplink.
    uplink_links: links::Links,
}

impl Dataplane {
    /// Loads the programs; adopts or creates the pinned maps under `<bpffs>/maps`
    /// (`EbpfLoader::map_pin_path`). Creates the directories; fails clearly when `bpffs`
    /// is not on a bpf filesystem or a pinned map has another layout than this build's.
    /// `nat_entries` sizes the NAT table (a pinned one must have that size).
    pub fn open(bpffs: &Path, nat_entries: u32) -> anyhow::Result<Self> {
        let (ebpf, maps, nat) = loader::load(Some(bpffs), nat_entries)?;
        Ok(Self::new(ebpf, maps, nat))
    }

    /// Same, but with no pins at all: for packet tests and prog-cost.
    pub fn open_unpinned() -> anyhow::Result<Self> {
        let (ebpf, maps, nat) = loader::load(None, DEFAULT_NAT_ENTRIES)?;
        Ok(Self::new(ebpf, maps, nat))
    }

    fn new(ebpf: aya::Ebpf, maps: Maps, nat: NatTables) -> Self {
        Self {
            ebpf,
            maps,
            nat,
            links: links::Links::new(),
            uplink_links: links::Links::new(),
        }
    }

    /// Read access to the NAT maps.
    pub fn nat(&self) -> &NatTables {
        &self.nat
    }

    /// Mutable access to the NAT maps (the daemon's writes; packet tests set up flows).
    pub fn nat_mut(&mut self) -> &mut NatTables {
        &mut self.nat
    }

    /// Attaches `from_uplink` at tc ingress of `ifname` (adopting a previous daemon's
    /// filter) and records the uplinks, in order, with the addresses they masquerade to.
    pub fn set_uplinks(&mut self, uplinks: &[(String, UplinkInfo)]) -> anyhow::Result<()> {
        for (ifname, _) in uplinks {
            let prog = tc_program(&mut self.ebpf, PROG_FROM_UPLINK)?;
            self.uplink_links.attach(prog, ifname, Direction::Ingress)?;
        }
        let infos: Vec<UplinkInfo> = uplinks.iter().map(|(_, info)| *info).collect();
        self.nat.set_uplinks(&infos)
    }

    /// Attaches the socket hooks to `cgroup`, acting on sockets of the netns whose cookie
    /// is `host_netns_cookie`; masquerading picks source ports in `ports`.
    pub fn attach_socket_hooks(
        &mut self,
        bpffs: &Path,
        cgroup: &Path,
        host_netns_cookie: u64,
        ports: std::ops::RangeInclusive<u16>,
    ) -> anyhow::Result<()> {
        self.nat.set_config(NatConfig {
            host_netns_cookie,
            port_min: *ports.start(),
            port_max: *ports.end(),
            _pad: 0,
        })?;
        socket_hooks::attach(&mut self.ebpf, cgroup, bpffs)
    }

    /// Opens the maps another process pinned under `<bpffs>/maps`, for inspection (tests
    /// asserting that no entry leaked). Loads no program; use only the read methods.
    pub fn open_pins_readonly(bpffs: &Path) -> anyhow::Result<Maps> {
        Maps::from_pins(&bpffs.join(loader::MAPS_DIR))
    }

    /// Read access to every map (entries, members, counters).
    pub fn maps(&self) -> &Maps {
        &self.maps
    }

    /// Attaches `from_sandbox` at tc ingress and `to_sandbox` at tc egress of `host_ifname`
    /// (in the caller's netns), or adopts the filters a previous daemon left there and
    /// switches them to these programs. Idempotent. Cheapest while the interface is down.
    pub fn attach(&mut self, host_ifname: &str) -> anyhow::Result<()> {
        let from_sandbox = tc_program(&mut self.ebpf, PROG_FROM_SANDBOX)?;
        self.links
            .attach(from_sandbox, host_ifname, Direction::Ingress)?;
        let to_sandbox = tc_program(&mut self.ebpf, PROG_TO_SANDBOX)?;
        self.links
            .attach(to_sandbox, host_ifname, Direction::Egress)
    }

    /// Deletes the filter on `host_ifname` if this process attached or adopted it.
    pub fn detach(&mut self, host_ifname: &str) -> anyhow::Result<()> {
        self.links.detach(host_ifname);
        Ok(())
    }

    /// Interfaces whose filter this process attached or adopted.
    pub fn attached(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.links.attached())
    }

    /// Writes NETWORKS (keeping its member_count) and SUBNETS.
    pub fn put_network(&mut self, net: &NetworkEntry) -> anyhow::Result<()> {
        self.maps.put_network(net)
    }

    /// Removes the network from NETWORKS and SUBNETS, its MEMBERS slots, and its counters.
    pub fn remove_network(&mut self, net: &NetworkEntry) -> anyhow::Result<()> {
        self.maps.remove_network(net.net_id)
    }

    /// Writes EP_BY_IFINDEX and EP_BY_IP.
    pub fn put_endpoint(&mut self, ep: &EndpointInfo) -> anyhow::Result<()> {
        self.maps.put_endpoint(ep)
    }

    /// Removes the endpoint's entries (only where they still describe this endpoint).
    /// Missing entries are fine.
    pub fn remove_endpoint(&mut self, ep: &EndpointInfo) -> anyhow::Result<()> {
        self.maps.remove_endpoint(ep)
    }

    /// Rewrites the network's dense member list to exactly these host ifindexes and sets
    /// member_count. New slots are written before the count rises; the count drops before
    /// slots are deleted, so a concurrent flood never reads a missing slot as a member.
    pub fn set_members(&mut self, net_id: u32, host_ifindexes: &[u32]) -> anyhow::Result<()> {
        self.maps.set_members(net_id, host_ifindexes)
    }

    /// Makes the maps hold exactly this state: all entries written, every other entry
    /// deleted, member lists derived from the endpoints. Used on daemon restart.
    pub fn sync(
        &mut self,
        networks: &[NetworkEntry],
        endpoints: &[EndpointInfo],
    ) -> anyhow::Result<()> {
        self.maps.sync(networks, endpoints)
    }

    /// Non-zero counters summed over CPUs.
    pub fn stats(&self) -> anyhow::Result<Vec<StatRow>> {
        self.maps.stats()
    }

    /// Runs `from_sandbox` `repeat` times (at least once) on `frame` via BPF_PROG_TEST_RUN,
    /// as if it arrived on [`TEST_RUN_IFINDEX`]. Each run sees the frame as the previous
    /// run left it, and bumps STATS like real traffic.
    pub fn test_run(&mut self, frame: &[u8], repeat: u32) -> anyhow::Result<TestRunOutcome> {
        self.test_run_program(PROG_FROM_SANDBOX, frame, repeat)
    }

    /// Same for `from_uplink`: the frame arrives as if from the outside on an uplink.
    pub fn test_run_uplink(&mut self, frame: &[u8], repeat: u32) -> anyhow::Result<TestRunOutcome> {
        self.test_run_program(PROG_FROM_UPLINK, frame, repeat)
    }

    fn test_run_program(
        &mut self,
        name: &str,
        frame: &[u8],
        repeat: u32,
    ) -> anyhow::Result<TestRunOutcome> {
        let mut out = vec![0u8; frame.len() + 256];
        let result = tc_program(&mut self.ebpf, name)?
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat: repeat.max(1),
                ..TestRunOptions::default()
            })
            .with_context(|| format!("BPF_PROG_TEST_RUN of {name}"))?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutcome {
            verdict: result.return_value as i32,
            frame: out,
            avg_ns: u64::try_from(result.duration.as_nanos()).unwrap_or(u64::MAX),
        })
    }

    /// Instructions the verifier processed for `from_sandbox` (kernel >= 5.16).
    pub fn verified_instructions(&self) -> anyhow::Result<Option<u32>> {
        let prog: &SchedClassifier = self
            .ebpf
            .program(PROG_FROM_SANDBOX)
            .context("from_sandbox missing from the object")?
            .try_into()?;
        Ok(prog.info()?.verified_instruction_count())
    }

    /// How often tc program `name` ran and its total run time, as the kernel counts while
    /// BPF statistics are on (`aya::sys::enable_stats`): the program alone, no harness.
    pub fn run_stats(&self, name: &str) -> anyhow::Result<(u64, std::time::Duration)> {
        let prog: &SchedClassifier = self
            .ebpf
            .program(name)
            .with_context(|| format!("{name} missing from the object"))?
            .try_into()?;
        let info = prog.info()?;
        Ok((info.run_count(), info.run_time()))
    }

    // ---- NAT: published ports, host addresses, flows -----------------------------------

    /// Adds published ports (already checked free by the caller).
    pub fn publish(&mut self, entries: &[(PublishKey, PublishTarget)]) -> anyhow::Result<()> {
        self.nat.publish(entries)
    }

    /// Removes published ports. Their live flows go with the endpoint's address
    /// ([`Dataplane::flush_flows`]): one table walk, not one per port.
    pub fn unpublish(&mut self, entries: &[(PublishKey, PublishTarget)]) -> anyhow::Result<()> {
        let keys: Vec<PublishKey> = entries.iter().map(|(k, _)| *k).collect();
        self.nat.unpublish(&keys)
    }

    /// Makes PUBLISHED hold exactly `entries` (daemon restart).
    pub fn sync_published(
        &mut self,
        entries: &[(PublishKey, PublishTarget)],
    ) -> anyhow::Result<()> {
        let want: std::collections::HashSet<PublishKey> = entries.iter().map(|(k, _)| *k).collect();
        let stale: Vec<PublishKey> = self
            .nat
            .published()?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !want.contains(k))
            .collect();
        self.nat.unpublish(&stale)?;
        self.nat.publish(entries)
    }

    /// The host's own addresses: where published ports answer.
    pub fn set_host_addresses(&mut self, addrs: &[std::net::Ipv4Addr]) -> anyhow::Result<()> {
        self.nat.set_host_addrs(addrs)
    }

    /// Drops every flow of an endpoint that goes away.
    pub fn flush_flows(&mut self, ip: std::net::Ipv4Addr) -> anyhow::Result<u64> {
        self.nat.flush_address(ip)
    }

    /// Deletes idle flows; returns how many entries went.
    pub fn expire_flows(&mut self, timeouts: &Timeouts) -> anyhow::Result<u64> {
        self.nat.expire(timeouts)
    }
}

/// A tc program of a loaded object.
fn tc_program<'a>(ebpf: &'a mut aya::Ebpf, name: &str) -> anyhow::Result<&'a mut SchedClassifier> {
    Ok(ebpf
        .program_mut(name)
        .with_context(|| format!("{name} missing from the object"))?
        .try_into()?)
}
