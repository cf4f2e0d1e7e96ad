//! What every measured topology offers: a client and a server namespace and the server's address.
//! The measurement code knows nothing else about how packets get from one to the other.

use std::net::Ipv4Addr;

use crate::netns::Netns;

/// The three setups the issue compares; the report computes ratios between them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bare veth pair: the fastest two namespaces can talk.
    Floor,
    /// Linux bridge + iptables as Docker sets it up.
    Bridge,
    Netd,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Floor, Kind::Bridge, Kind::Netd];

    /// Short name used in tables and the chart.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Floor => "veth floor",
            Kind::Bridge => "bridge+iptables",
            Kind::Netd => "netd",
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
