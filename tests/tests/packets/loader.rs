//! The loader and maps around the program: counters, verifier budget, map writes and
//! sync, real flood copies, filter attachment.

use super::world::*;

#[test]
fn counters_accumulate_per_run() {
    let mut dp = dataplane(From::A1);
    let frame = a1_udp(endpoint_mac(A2), A2);
    let out = dp.test_run(&frame, 50).expect("test run");
    assert_eq!(out.verdict, TC_ACT_REDIRECT);
    let rows = dp.stats().unwrap();
    assert_eq!(
        rows,
        vec![StatRow {
            net_id: NET_A,
            kind: StatKind::Delivery(Delivery::Peer),
            counter: Counter {
                packets: 50,
                bytes: 50 * frame.len() as u64
            },
        }]
    );
}

/// The verifier's work on `from_sandbox` is a budget: a change that blows it up (an
/// unrolled flood loop, a lost bounds check) should show here, not at load time in prod.
/// (About 245,000 since later IP fragments look their flow up.)
#[test]
fn verifier_budget() {
    let dp = Dataplane::open_unpinned().expect("loading the dataplane");
    let insns = dp
        .verified_instructions()
        .expect("program info")
        .expect("kernel reports verified_insns");
    eprintln!("from_sandbox: {insns} instructions processed by the verifier");
    assert!(
        insns < 300_000,
        "from_sandbox needs {insns} verified instructions; budget 300000 (limit 1M)"
    );
}

#[test]
fn map_state_follows_writes() {
    let mut dp = dataplane(From::A1);
    let maps = dp.maps();
    assert_eq!(
        maps.network_ids().unwrap(),
        vec![NET_A, NET_B, NET_C, NET_D]
    );
    assert_eq!(
        maps.members(NET_A).unwrap(),
        vec![TEST_RUN_IFINDEX, 1003, 1004]
    );
    assert_eq!(maps.subnets().unwrap().len(), 4);

    // An endpoint whose IP was already taken over by a newer one leaves that one alone.
    let old = endpoint(1003, NET_A, A2);
    let newer = endpoint(1010, NET_A, A2);
    dp.put_endpoint(&newer).unwrap();
    dp.remove_endpoint(&old).unwrap();
    let maps = dp.maps();
    assert!(maps.endpoint_ips().unwrap().contains(&A2));
    assert!(!maps.endpoint_ifindexes().unwrap().contains(&1003));
    dp.remove_endpoint(&old).expect("removing twice is fine");

    dp.set_members(NET_A, &[TEST_RUN_IFINDEX]).unwrap();
    assert_eq!(dp.maps().members(NET_A).unwrap(), vec![TEST_RUN_IFINDEX]);
    let slots: Vec<MemberKey> = dp
        .maps()
        .member_entries()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.net_id == NET_A)
        .collect();
    assert_eq!(
        slots,
        vec![MemberKey {
            net_id: NET_A,
            slot: 0
        }]
    );

    // put_network keeps the member count.
    dp.put_network(&network(NET_A, 1, false, false)).unwrap();
    assert_eq!(dp.maps().network(NET_A).unwrap().unwrap().member_count, 1);

    let frame = a1_udp(endpoint_mac(A2), A2);
    dp.test_run(&frame, 1).unwrap();
    dp.remove_network(&network(NET_A, 1, true, false)).unwrap();
    let maps = dp.maps();
    assert_eq!(maps.network_ids().unwrap(), vec![NET_B, NET_C, NET_D]);
    assert!(maps
        .member_entries()
        .unwrap()
        .iter()
        .all(|(k, _)| k.net_id != NET_A));
    assert!(maps.subnets().unwrap().iter().all(|(_, id)| *id != NET_A));
    assert!(maps.stats().unwrap().iter().all(|row| row.net_id != NET_A));
}

#[test]
fn sync_leaves_exactly_the_given_state() {
    let mut dp = dataplane(From::A1);
    let nets = vec![network(NET_B, 2, true, false)];
    let eps = vec![
        endpoint(2002, NET_B, B1),
        endpoint(2005, NET_B, ip(10, 2, 0, 5)),
    ];
    dp.sync(&nets, &eps).unwrap();
    let maps = dp.maps();
    assert_eq!(maps.network_ids().unwrap(), vec![NET_B]);
    assert_eq!(maps.endpoint_ifindexes().unwrap(), vec![2002, 2005]);
    assert_eq!(maps.endpoint_ips().unwrap(), vec![B1, ip(10, 2, 0, 5)]);
    assert_eq!(
        maps.subnets().unwrap(),
        vec![("10.2.0.0/24".parse().unwrap(), NET_B)]
    );
    assert_eq!(maps.members(NET_B).unwrap(), vec![2002, 2005]);
    assert_eq!(maps.member_entries().unwrap().len(), 2);

    dp.sync(&[], &[]).unwrap();
    let maps = dp.maps();
    assert!(maps.network_ids().unwrap().is_empty());
    assert!(maps.endpoints().unwrap().is_empty());
    assert!(maps.endpoint_ips().unwrap().is_empty());
    assert!(maps.subnets().unwrap().is_empty());
    assert!(maps.member_entries().unwrap().is_empty());
}

/// A throwaway named netns with a veth pair `h1xa`/`h1xb` (up, no IPv6 chatter); deleted
/// on drop. The dataplane calls run on a thread that entered it.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn new(tag: &str) -> Self {
        let name = format!("h1x{tag}{}", std::process::id());
        let ns = TestNetns { name };
        ns.ip(&["netns", "add", &ns.name]);
        for cmd in [
            "link add h1xa type veth peer name h1xb",
            "link set h1xa addrgenmode none",
            "link set h1xb addrgenmode none",
            "link set lo up",
            "link set h1xa up",
            "link set h1xb up",
        ] {
            let mut args = vec!["-n", ns.name.as_str()];
            args.extend(cmd.split(' '));
            ns.ip(&args);
        }
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("running ip");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn link(&self, dev: &str) -> serde_json::Value {
        let json = self.ip(&["-n", &self.name, "-j", "-s", "link", "show", "dev", dev]);
        let mut links: Vec<serde_json::Value> = serde_json::from_str(&json).expect("ip -j");
        links.remove(0)
    }

    fn rx_packets(&self, dev: &str) -> u64 {
        self.link(dev)["stats64"]["rx"]["packets"].as_u64().unwrap()
    }

    fn ifindex(&self, dev: &str) -> u32 {
        self.link(dev)["ifindex"].as_u64().unwrap() as u32
    }

    /// Runs `f` on a thread inside the netns.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).expect("opening the netns");
                use std::os::fd::AsRawFd as _;
                // SAFETY: setns on this thread only; the fd is valid for the call.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("netns thread panicked")
        })
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn flood_copies_reach_every_other_member() {
    let ns = TestNetns::new("fl");
    let member = ns.ifindex("h1xa");
    let before = ns.rx_packets("h1xb");
    let frame = a1_udp(BROADCAST_MAC, ip(10, 1, 0, 255));
    let verdict = ns.run(|| {
        let mut dp = Dataplane::open_unpinned().expect("loading the dataplane");
        let a1 = endpoint(TEST_RUN_IFINDEX, NET_A, A1);
        let a2 = endpoint(member, NET_A, A2);
        dp.sync(&networks(), &[a1, a2]).unwrap();
        dp.test_run(&frame, 3).unwrap().verdict
    });
    assert_eq!(verdict, TC_ACT_OK);
    // Three runs, one copy each out of h1xa (none to the sender itself) into h1xb.
    assert_eq!(ns.rx_packets("h1xb") - before, 3);
}

/// Programs of the tc filters at ingress of `dev` in the current netns, by name.
fn ingress_filters(dev: &str) -> Vec<String> {
    let out = std::process::Command::new("tc")
        .args(["-j", "filter", "show", "dev", dev, "ingress"])
        .output()
        .expect("running tc");
    assert!(out.status.success(), "tc filter show: {out:?}");
    let filters: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    filters
        .iter()
        .filter_map(|f| f["options"]["prog"]["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn attach_is_idempotent_adoptable_and_outlives_the_loader() {
    let ns = TestNetns::new("at");
    let bpffs = std::path::PathBuf::from(format!("/sys/fs/bpf/h1x-packets-{}", std::process::id()));
    let result = ns.run(|| {
        let mut dp = Dataplane::open(&bpffs, netd_common::DEFAULT_NAT_ENTRIES)
            .expect("opening a pinned dataplane");
        dp.attach("h1xa").expect("attach");
        dp.attach("h1xa").expect("attach again");
        let attached = dp.attached().unwrap();
        let first = ingress_filters("h1xa");
        // The loader goes away (a daemon killed or stopped): the filter stays.
        drop(dp);
        let after_exit = ingress_filters("h1xa");
        // A restarted daemon adopts the filter instead of adding a second one.
        let mut again =
            Dataplane::open(&bpffs, netd_common::DEFAULT_NAT_ENTRIES).expect("reopening the pins");
        again.attach("h1xa").expect("attach from a new load");
        let adopted = ingress_filters("h1xa");
        again.detach("h1xa").unwrap();
        again.detach("h1xa").expect("detaching twice is fine");
        let after_detach = ingress_filters("h1xa");
        (attached, first, after_exit, adopted, after_detach)
    });
    let view = Dataplane::open_pins_readonly(&bpffs).expect("opening pins read-only");
    assert!(view.network_ids().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&bpffs);
    let one = vec!["from_sandbox".to_string()];
    assert_eq!(
        result,
        (
            vec!["h1xa".to_string()],
            one.clone(),
            one.clone(),
            one,
            vec![]
        )
    );
}

#[test]
fn open_refuses_a_path_off_bpffs() {
    let err = match Dataplane::open(
        std::path::Path::new("/tmp/h1x-not-bpffs"),
        netd_common::DEFAULT_NAT_ENTRIES,
    ) {
        Ok(_) => panic!("open on tmpfs must fail"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("not on a bpf filesystem"), "{err}");
}
