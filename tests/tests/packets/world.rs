//! The test world every table runs in: four networks, their endpoints, the sender of a
//! case, and the runner that checks verdict, output frame and the one counter.

pub(crate) use std::{net::Ipv4Addr, process::Command};

pub(crate) use netd::dataplane::{Dataplane, NetworkEntry, StatKind, StatRow, TEST_RUN_IFINDEX};
pub(crate) use netd_common::{
    ip_slot, Counter, Delivery, DropReason, EndpointInfo, MemberKey, EP_CACHE_SLOTS,
};
pub(crate) use netd_tests::packets::*;
pub(crate) const TC_ACT_OK: i32 = 0;
pub(crate) const TC_ACT_SHOT: i32 = 2;
pub(crate) const TC_ACT_REDIRECT: i32 = 7;

pub(crate) const fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

// The world every case runs in: four networks, two or three endpoints each.
pub(crate) const NET_A: u32 = 1; // 10.1.0.0/24, icc
pub(crate) const NET_B: u32 = 2; // 10.2.0.0/24, icc
pub(crate) const NET_C: u32 = 3; // 10.3.0.0/24, icc off
pub(crate) const NET_D: u32 = 4; // 10.4.0.0/24, internal

pub(crate) const A1: Ipv4Addr = ip(10, 1, 0, 2);
pub(crate) const A2: Ipv4Addr = ip(10, 1, 0, 3);
pub(crate) const A3: Ipv4Addr = ip(10, 1, 0, 4);
pub(crate) const B1: Ipv4Addr = ip(10, 2, 0, 2);
pub(crate) const C1: Ipv4Addr = ip(10, 3, 0, 2);
pub(crate) const C2: Ipv4Addr = ip(10, 3, 0, 3);
pub(crate) const D1: Ipv4Addr = ip(10, 4, 0, 2);
pub(crate) const D2: Ipv4Addr = ip(10, 4, 0, 3);
pub(crate) const GW_A: Ipv4Addr = ip(10, 1, 0, 1);
pub(crate) const GW_B: Ipv4Addr = ip(10, 2, 0, 1);
pub(crate) const GW_C: Ipv4Addr = ip(10, 3, 0, 1);
pub(crate) const GW_D: Ipv4Addr = ip(10, 4, 0, 1);
pub(crate) const OUTSIDE: Ipv4Addr = ip(8, 8, 8, 8);

pub(crate) fn network(net_id: u32, third: u8, icc: bool, internal: bool) -> NetworkEntry {
    let gateway = ip(10, third, 0, 1);
    NetworkEntry {
        net_id,
        subnet: format!("10.{third}.0.0/24").parse().unwrap(),
        gateway,
        gateway_mac: gateway_mac(gateway),
        icc,
        internal,
        masquerade: true,
    }
}

pub(crate) fn networks() -> Vec<NetworkEntry> {
    vec![
        network(NET_A, 1, true, false),
        network(NET_B, 2, true, false),
        network(NET_C, 3, false, false),
        network(NET_D, 4, true, true),
    ]
}

pub(crate) fn endpoint(host_ifindex: u32, net_id: u32, addr: Ipv4Addr) -> EndpointInfo {
    EndpointInfo {
        host_ifindex,
        net_id,
        ip: addr.octets(),
        mac: endpoint_mac(addr),
        _pad: [0; 2],
    }
}

/// The endpoints other than the sender, on made-up ifindexes (redirect helpers only
/// record the target under BPF_PROG_TEST_RUN).
pub(crate) fn peers() -> Vec<EndpointInfo> {
    vec![
        endpoint(1003, NET_A, A2),
        endpoint(1004, NET_A, A3),
        endpoint(2002, NET_B, B1),
        endpoint(3003, NET_C, C2),
        endpoint(4003, NET_D, D2),
    ]
}

/// Which endpoint sends the case's frame (it sits on `TEST_RUN_IFINDEX`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum From {
    A1,
    C1,
    D1,
    /// No endpoint on the test ifindex.
    Nobody,
}

impl From {
    pub(crate) fn endpoint(self) -> Option<EndpointInfo> {
        match self {
            From::A1 => Some(endpoint(TEST_RUN_IFINDEX, NET_A, A1)),
            From::C1 => Some(endpoint(TEST_RUN_IFINDEX, NET_C, C1)),
            From::D1 => Some(endpoint(TEST_RUN_IFINDEX, NET_D, D1)),
            From::Nobody => None,
        }
    }
}

/// A fresh unpinned dataplane holding the world plus `from` on the test ifindex.
pub(crate) fn dataplane(from: From) -> Dataplane {
    let mut dp = Dataplane::open_unpinned().expect("loading the dataplane (are we root?)");
    let mut eps = peers();
    eps.extend(from.endpoint());
    dp.sync(&networks(), &eps).expect("writing the test world");
    dp
}

pub(crate) enum Expect {
    /// The program left the frame as it was.
    Unchanged,
    /// The program rewrote it into exactly this.
    Frame(Vec<u8>),
}

pub(crate) struct Case {
    pub(crate) what: &'static str,
    pub(crate) from: From,
    pub(crate) frame: Vec<u8>,
    pub(crate) verdict: i32,
    pub(crate) output: Expect,
    /// The single counter that must read one packet of this frame's length.
    pub(crate) counted: (u32, StatKind),
}

pub(crate) fn delivered(net_id: u32, d: Delivery) -> (u32, StatKind) {
    (net_id, StatKind::Delivery(d))
}

pub(crate) fn dropped(net_id: u32, r: DropReason) -> (u32, StatKind) {
    (net_id, StatKind::Drop(r))
}

pub(crate) fn a1_mac() -> Mac {
    endpoint_mac(A1)
}

/// A1 -> `dst` over UDP, addressed to `dst_mac`.
pub(crate) fn a1_udp(dst_mac: Mac, dst: Ipv4Addr) -> Vec<u8> {
    udp(dst_mac, a1_mac(), A1, dst, 18)
}

pub(crate) fn run_case(case: &Case) {
    let mut dp = dataplane(case.from);
    run_on(&mut dp, case);
}

/// Runs `case.frame` once on `dp` and checks verdict, output frame and the one counter.
pub(crate) fn run_on(dp: &mut Dataplane, case: &Case) {
    let out = dp
        .test_run(&case.frame, 1)
        .unwrap_or_else(|e| panic!("{}: test run failed: {e:#}", case.what));
    assert_eq!(
        out.verdict,
        case.verdict,
        "{}: verdict (0 ok, 2 shot, 7 redirect); stats {:?}",
        case.what,
        dp.stats()
    );
    let want = match &case.output {
        Expect::Unchanged => &case.frame,
        Expect::Frame(frame) => frame,
    };
    assert!(
        out.frame == *want,
        "{}: output frame\n got:\n{}\n want:\n{}",
        case.what,
        hex(&out.frame),
        hex(want)
    );
    let (net_id, kind) = case.counted;
    let expected = vec![StatRow {
        net_id,
        kind,
        counter: Counter {
            packets: 1,
            bytes: case.frame.len() as u64,
        },
    }];
    assert_eq!(dp.stats().unwrap(), expected, "{}: counters", case.what);
}
