//! The daemon's side of the eBPF dataplane: loads `from_sandbox`, owns its maps (pinned
//! under `<bpffs>`) and its tc filters (on the devices), so traffic keeps flowing while the
//! daemon is down.
//!
//! - `loader`: the embedded object, bpffs checks, adopt-or-create of the pinned maps.
//! - `maps`: typed wrappers, one method per map family change, and read access for tests.
//! - `links`: the cls_bpf filter on each host veth (and why not tcx).
//!
//! BPF_PROG_TEST_RUN ([`Dataplane::test_run`]) runs the program as if the frame arrived
//! on the loopback device, so packet tests register their sender at [`TEST_RUN_IFINDEX`].

mod links;
mod loader;
mod maps;

use std::{net::Ipv4Addr, path::Path};

use anyhow::Context as _;
use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions};
use netd_common::{Counter, Delivery, DropReason, EndpointInfo, PROG_FROM_SANDBOX};

pub use ipnet;
pub use maps::Maps;

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
    /// Typed handles on every map.
    maps: Maps,
    /// The tc filter on each host veth.
    links: links::Links,
}

impl Dataplane {
    /// Loads the programs; adopts or creates the pinned maps under `<bpffs>/maps`
    /// (`EbpfLoader::map_pin_path`). Creates the directories; fails clearly when `bpffs`
    /// is not on a bpf filesystem or a pinned map has another layout than this build's.
    pub fn open(bpffs: &Path) -> anyhow::Result<Self> {
        let (ebpf, maps) = loader::load(Some(bpffs))?;
        Ok(Self {
            ebpf,
            maps,
            links: links::Links::new(),
        })
    }

    /// Same, but with no pins at all: for packet tests and prog-cost.
    pub fn open_unpinned() -> anyhow::Result<Self> {
        let (ebpf, maps) = loader::load(None)?;
        Ok(Self {
            ebpf,
            maps,
            links: links::Links::new(),
        })
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

    /// Attaches `from_sandbox` at tc ingress of `host_ifname` (in the caller's netns), or
    /// adopts the filter a previous daemon left there and switches it to this program.
    /// Idempotent. Cheapest while the interface is still down.
    pub fn attach(&mut self, host_ifname: &str) -> anyhow::Result<()> {
        self.links
            .attach(from_sandbox(&mut self.ebpf)?, host_ifname)
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
        let mut out = vec![0u8; frame.len() + 256];
        let result = self
            .program_mut()?
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat: repeat.max(1),
                ..TestRunOptions::default()
            })
            .context("BPF_PROG_TEST_RUN of from_sandbox")?;
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

    fn program_mut(&mut self) -> anyhow::Result<&mut SchedClassifier> {
        from_sandbox(&mut self.ebpf)
    }
}

/// The `from_sandbox` program of a loaded object.
fn from_sandbox(ebpf: &mut aya::Ebpf) -> anyhow::Result<&mut SchedClassifier> {
    Ok(ebpf
        .program_mut(PROG_FROM_SANDBOX)
        .context("from_sandbox missing from the object")?
        .try_into()?)
}
