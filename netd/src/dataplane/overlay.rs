//! The overlay's maps: remote endpoints (REMOTE_EPS), the VNI of each overlay network
//! (VNIS) and this host's tunnel address (OVERLAY_CONFIG); and `from_uplink` on the
//! underlay interface, where other hosts' VXLAN arrives.

use std::net::Ipv4Addr;

use anyhow::Context as _;
use aya::maps::{Array, HashMap, MapData};
use netd_common::{
    OverlayConfig, RemoteEndpoint, MAP_OVERLAY_CONFIG, MAP_REMOTE_ENDPOINTS, MAP_VNIS,
    PROG_FROM_UPLINK,
};

use super::{
    links::Direction,
    maps::{ignore_missing, ip_key},
    tc_program, Dataplane,
};

/// Typed handles on the overlay maps.
pub struct OverlayMaps {
    /// Remote endpoint IPv4 -> where it lives.
    remote_eps: HashMap<MapData, u32, RemoteEndpoint>,
    /// VNI -> network id.
    vnis: HashMap<MapData, u32, u32>,
    /// Slot 0: this host's tunnel address.
    config: Array<MapData, OverlayConfig>,
}

impl OverlayMaps {
    /// Builds the handles from whatever supplies each map by name (a loaded object or pins).
    pub(super) fn from_maps(
        mut map: impl FnMut(&str) -> anyhow::Result<aya::maps::Map>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            remote_eps: map(MAP_REMOTE_ENDPOINTS)?.try_into()?,
            vnis: map(MAP_VNIS)?.try_into()?,
            config: map(MAP_OVERLAY_CONFIG)?.try_into()?,
        })
    }

    /// Every REMOTE_EPS entry, by address.
    pub fn remote_endpoints(&self) -> anyhow::Result<Vec<(Ipv4Addr, RemoteEndpoint)>> {
        let mut entries = Vec::new();
        for entry in self.remote_eps.iter() {
            let (key, remote) = entry?;
            entries.push((Ipv4Addr::from(key.to_ne_bytes()), remote));
        }
        entries.sort_by_key(|(ip, _)| *ip);
        Ok(entries)
    }

    /// Every VNIS entry: (VNI, network id).
    pub fn vnis(&self) -> anyhow::Result<Vec<(u32, u32)>> {
        let mut entries = self.vnis.iter().collect::<Result<Vec<_>, _>>()?;
        entries.sort_unstable();
        Ok(entries)
    }

    fn set_config(&mut self, config: OverlayConfig) -> anyhow::Result<()> {
        Ok(self.config.set(0, config, 0)?)
    }
}

impl Dataplane {
    /// Sets this host's tunnel address (the outer source of encapsulated packets, the only
    /// outer destination decapsulated) and attaches `from_uplink` at tc ingress of
    /// `underlay_ifname`, where other hosts' VXLAN arrives (adopting a previous daemon's
    /// filter; nothing more if it is an uplink already).
    pub fn set_overlay(&mut self, local_ip: Ipv4Addr, underlay_ifname: &str) -> anyhow::Result<()> {
        self.maps.overlay.set_config(OverlayConfig {
            local_ip: local_ip.octets(),
            _pad: 0,
        })?;
        let prog = tc_program(&mut self.ebpf, PROG_FROM_UPLINK)?;
        self.uplink_links
            .attach(prog, underlay_ifname, Direction::Ingress)
            .with_context(|| format!("decapsulating on underlay interface {underlay_ifname}"))
    }

    /// Maps VXLAN network identifier `vni` to network `net_id`.
    pub fn put_vni(&mut self, vni: u32, net_id: u32) -> anyhow::Result<()> {
        anyhow::ensure!(vni < 1 << 24, "VNI {vni} does not fit in 24 bits");
        Ok(self.maps.overlay.vnis.insert(vni, net_id, 0)?)
    }

    /// Forgets `vni`; missing is fine.
    pub fn remove_vni(&mut self, vni: u32) -> anyhow::Result<()> {
        ignore_missing(self.maps.overlay.vnis.remove(&vni))
    }

    /// Adds or replaces the endpoint on another host that owns `ip`.
    pub fn put_remote_endpoint(
        &mut self,
        ip: Ipv4Addr,
        remote: &RemoteEndpoint,
    ) -> anyhow::Result<()> {
        Ok(self
            .maps
            .overlay
            .remote_eps
            .insert(ip_key(ip), *remote, 0)?)
    }

    /// Removes the remote endpoint at `ip`; missing is fine.
    pub fn remove_remote_endpoint(&mut self, ip: Ipv4Addr) -> anyhow::Result<()> {
        ignore_missing(self.maps.overlay.remote_eps.remove(&ip_key(ip)))
    }

    /// Every remote endpoint, by address.
    pub fn remote_endpoints(&self) -> anyhow::Result<Vec<(Ipv4Addr, RemoteEndpoint)>> {
        self.maps.overlay.remote_endpoints()
    }
}
