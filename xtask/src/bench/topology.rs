//! What every measured topology offers: a client and a server namespace and the server's address.
//! The measurement code knows nothing else about how packets get from one to the other.

use std::net::Ipv4Addr;

use crate::netns::Netns;

/// The setups the bench compares; the report computes ratios between them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A bare veth pair: the fastest two namespaces can talk.
    Floor,
    /// Linux bridge + iptables as Docker sets it up.
    Bridge,
    Netd,
    /// Two hosts, each with a Linux bridge and a kernel vxlan device: Docker's classic overlay.
    VxlanBridge,
    /// Two hosts, each with a netd daemon of one cluster, on one netd overlay network.
    NetdOverlay,
}

impl Kind {
    /// The container-to-container part, on one host.
    pub const C2C: [Kind; 3] = [Kind::Floor, Kind::Bridge, Kind::Netd];
    /// The overlay part: across two hosts (the floor stays the one-veth reference).
    pub const OVERLAY: [Kind; 3] = [Kind::Floor, Kind::VxlanBridge, Kind::NetdOverlay];

    /// Short name used in tables and the chart.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Floor => "veth floor",
            Kind::Bridge => "bridge+iptables",
            Kind::Netd => "netd",
            Kind::VxlanBridge => "vxlan+bridge",
            Kind::NetdOverlay => "netd overlay",
        }
    }
}

pub trait Topology {
    fn kind(&self) -> Kind;
    fn client(&self) -> &Netns;
    fn server(&self) -> &Netns;
    fn server_ip(&self) -> Ipv4Addr;
    /// Facts worth reporting after the measurements (e.g. whether netfilter saw the traffic).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}
