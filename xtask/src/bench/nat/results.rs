//! What the NAT benchmarks measured, one sample per round, and what they could not measure.

use super::super::stats::median;

/// The two ways of publishing ports and masquerading that items 1, 2 and 4 compare.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Iptables,
    Netd,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Iptables, Side::Netd];

    pub fn label(self) -> &'static str {
        match self {
            Side::Iptables => "bridge+iptables",
            Side::Netd => "netd",
        }
    }
}

/// Published ports at one N: publish time and new-connection latency to the last port.
pub struct ScaleRun {
    pub side: Side,
    pub ports: u32,
    pub publish_s: Vec<f64>,
    pub connect_p50_us: Vec<f64>,
    pub connect_p99_us: Vec<f64>,
    pub errors: Vec<String>,
}

/// The ways a client in the host namespace reaches a sandbox's server (item 3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LocalPath {
    /// 127.0.0.1:port served by a docker-proxy process (bridge host).
    DockerProxy,
    /// 127.0.0.1:port rewritten by netd's connect4 hook.
    NetdHook,
    /// The sandbox's own address from the bridge host: the floor for docker-proxy.
    DirectBridge,
    /// The sandbox's own address from netd's host: the floor for the hook.
    DirectNetd,
}

impl LocalPath {
    pub const ALL: [LocalPath; 4] = [
        LocalPath::DockerProxy,
        LocalPath::NetdHook,
        LocalPath::DirectBridge,
        LocalPath::DirectNetd,
    ];

    pub fn label(self) -> &'static str {
        match self {
            LocalPath::DockerProxy => "docker-proxy (127.0.0.1)",
            LocalPath::NetdHook => "netd (127.0.0.1)",
            LocalPath::DirectBridge => "direct to sandbox IP (bridge host)",
            LocalPath::DirectNetd => "direct to sandbox IP (netd host)",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            LocalPath::DockerProxy => "docker-proxy",
            LocalPath::NetdHook => "netd",
            LocalPath::DirectBridge => "direct (bridge)",
            LocalPath::DirectNetd => "direct (netd)",
        }
    }
}

pub struct LocalRun {
    pub path: LocalPath,
    pub tcp_bits_per_second: Vec<f64>,
    pub rtt_p50_us: Vec<f64>,
    pub rtt_p99_us: Vec<f64>,
    pub errors: Vec<String>,
}

pub struct EgressRun {
    pub side: Side,
    pub udp_pps: Vec<f64>,
    pub errors: Vec<String>,
}

pub struct NatResults {
    pub scale: Vec<ScaleRun>,
    pub local: Vec<LocalRun>,
    pub egress: Vec<EgressRun>,
    /// Facts worth stating next to the numbers (iptables backend, memory, ...).
    pub notes: Vec<String>,
    /// Timed connections per N and round, and the untimed ones before them.
    pub connects: u32,
    pub warmup: u32,
}

impl NatResults {
    pub fn new(port_counts: &[u32], connects: u32, warmup: u32) -> Self {
        let scale = Side::ALL
            .iter()
            .flat_map(|&side| {
                port_counts.iter().map(move |&ports| ScaleRun {
                    side,
                    ports,
                    publish_s: Vec::new(),
                    connect_p50_us: Vec::new(),
                    connect_p99_us: Vec::new(),
                    errors: Vec::new(),
                })
            })
            .collect();
        Self {
            scale,
            local: LocalPath::ALL
                .iter()
                .map(|&path| LocalRun {
                    path,
                    tcp_bits_per_second: Vec::new(),
                    rtt_p50_us: Vec::new(),
                    rtt_p99_us: Vec::new(),
                    errors: Vec::new(),
                })
                .collect(),
            egress: Side::ALL
                .iter()
                .map(|&side| EgressRun {
                    side,
                    udp_pps: Vec::new(),
                    errors: Vec::new(),
                })
                .collect(),
            notes: Vec::new(),
            connects,
            warmup,
        }
    }

    pub fn scale(&self, side: Side, ports: u32) -> Option<&ScaleRun> {
        self.scale
            .iter()
            .find(|r| r.side == side && r.ports == ports)
    }

    pub fn scale_mut(&mut self, side: Side, ports: u32) -> &mut ScaleRun {
        self.scale
            .iter_mut()
            .find(|r| r.side == side && r.ports == ports)
            .expect("a run for every side and N")
    }

    pub fn local(&self, path: LocalPath) -> &LocalRun {
        self.local
            .iter()
            .find(|r| r.path == path)
            .expect("every path")
    }

    pub fn local_mut(&mut self, path: LocalPath) -> &mut LocalRun {
        self.local
            .iter_mut()
            .find(|r| r.path == path)
            .expect("every path")
    }

    pub fn egress(&self, side: Side) -> &EgressRun {
        self.egress
            .iter()
            .find(|r| r.side == side)
            .expect("every side")
    }

    pub fn egress_mut(&mut self, side: Side) -> &mut EgressRun {
        self.egress
            .iter_mut()
            .find(|r| r.side == side)
            .expect("every side")
    }

    /// Medians used by the report and the chart.
    pub fn connect_p50_us(&self, side: Side, ports: u32) -> Option<f64> {
        self.scale(side, ports)
            .and_then(|r| median(&r.connect_p50_us))
    }

    pub fn connect_p99_us(&self, side: Side, ports: u32) -> Option<f64> {
        self.scale(side, ports)
            .and_then(|r| median(&r.connect_p99_us))
    }

    pub fn publish_s(&self, side: Side, ports: u32) -> Option<f64> {
        self.scale(side, ports).and_then(|r| median(&r.publish_s))
    }

    pub fn local_gbps(&self, path: LocalPath) -> Option<f64> {
        median(&self.local(path).tcp_bits_per_second).map(|bps| bps / 1e9)
    }

    pub fn local_rtt_p50_us(&self, path: LocalPath) -> Option<f64> {
        median(&self.local(path).rtt_p50_us)
    }

    pub fn local_rtt_p99_us(&self, path: LocalPath) -> Option<f64> {
        median(&self.local(path).rtt_p99_us)
    }

    pub fn egress_kpps(&self, side: Side) -> Option<f64> {
        median(&self.egress(side).udp_pps).map(|pps| pps / 1e3)
    }

    /// The N measured, ascending.
    pub fn port_counts(&self) -> Vec<u32> {
        let mut counts: Vec<u32> = self.scale.iter().map(|r| r.ports).collect();
        counts.sort_unstable();
        counts.dedup();
        counts
    }

    /// Every error with the part it belongs to, once each, for the report's notes.
    pub fn errors(&self) -> Vec<String> {
        let scale = self.scale.iter().flat_map(|r| {
            r.errors
                .iter()
                .map(move |e| format!("{} N={}: {e}", r.side.label(), r.ports))
        });
        let local = self.local.iter().flat_map(|r| {
            r.errors
                .iter()
                .map(move |e| format!("{}: {e}", r.path.label()))
        });
        let egress = self.egress.iter().flat_map(|r| {
            r.errors
                .iter()
                .map(move |e| format!("egress {}: {e}", r.side.label()))
        });
        let mut errors: Vec<String> = Vec::new();
        for error in scale.chain(local).chain(egress) {
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
        errors
    }

    pub fn has_failures(&self) -> bool {
        !self.errors().is_empty()
    }
}
