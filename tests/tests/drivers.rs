//! The `host` and `null` drivers (issue 4): `sandbox create --network host` shares the
//! daemon's own netns, `--network none` is a fresh netns with only lo; both are listed by
//! `network inspect host|none`, cannot join any other network, and survive a restart.
use std::os::unix::fs::MetadataExt;

use netd_tests::harness::check::{assert_consistent, assert_same, snapshot};
use netd_tests::harness::TestHost;

/// Inode of a netns file (the bind mount shows the nsfs inode).
fn netns_inode(name: &str) -> u64 {
    let p = format!("/run/netns/{name}");
    std::fs::metadata(&p)
        .unwrap_or_else(|e| panic!("stat {p}: {e}"))
        .ino()
}

fn member_names(h: &TestHost, net: &str) -> Vec<String> {
    let v = h.inspect(net);
    v["Containers"]
        .as_object()
        .unwrap_or_else(|| panic!("inspect {net}: Containers is not an object: {v}"))
        .values()
        .filter_map(|c| c["Name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn host_and_none_sandboxes_share_or_lack_a_network_and_join_nothing_else() {
    let mut h = TestHost::started();
    // A marker only the host netns has (a veth pair: the dummy driver may be missing).
    h.must(&[
        "ip",
        "-n",
        &h.host_ns,
        "link",
        "add",
        "hostmark0",
        "type",
        "veth",
        "peer",
        "name",
        "hostmark1",
    ]);
    h.create_network("net", 1, &[]);
    let hs = h.sandbox_with("hs", &["--network", "host"]);
    let ns = h.sandbox_with("ns", &["--network", "none"]);

    assert_eq!(
        netns_inode(&hs),
        netns_inode(&h.host_ns),
        "contract: /run/netns/{hs} of `sandbox create --network host` is the daemon's own netns"
    );
    assert!(
        h.link_names(&hs).contains(&"hostmark0".to_string()),
        "contract: a host-network sandbox sees the host's interfaces: {:?}",
        h.link_names(&hs)
    );
    assert_ne!(
        netns_inode(&ns),
        netns_inode(&h.host_ns),
        "contract: `--network none` is a fresh netns"
    );
    assert_eq!(
        h.link_names(&ns),
        vec!["lo".to_string()],
        "contract: a `--network none` sandbox has only lo"
    );
    assert_eq!(
        member_names(&h, "host"),
        vec![hs.clone()],
        "contract: `network inspect host` lists the host-network sandbox under Containers"
    );
    assert_eq!(
        member_names(&h, "none"),
        vec![ns.clone()],
        "contract: `network inspect none` lists the none-network sandbox under Containers"
    );
    assert_consistent(&h);

    let before = snapshot(&h);
    for sb in [&hs, &ns] {
        h.netd_refused(
            &["network", "connect", "net", sb],
            &format!(
                "contract: a sandbox on host or none ({sb}) cannot be connected to another network"
            ),
        );
        h.netd_refused(
            &["network", "connect", "bridge", sb],
            &format!("contract: a sandbox on host or none ({sb}) cannot be connected to the bridge network"),
        );
    }
    assert_same(
        &before,
        &snapshot(&h),
        "refused connects of host/none sandboxes",
    );
    assert!(h.daemon_alive(), "the daemon survives the refusals");

    h.restart();
    assert_eq!(
        (member_names(&h, "host"), member_names(&h, "none")),
        (vec![hs.clone()], vec![ns.clone()]),
        "a restarted daemon still lists the host/none sandboxes"
    );
    assert_consistent(&h);

    // Removing a host-network sandbox must not take the host's netns with it.
    h.netd_ok(&["sandbox", "rm", &hs]);
    assert!(
        h.daemon_alive() && std::path::Path::new(&format!("/run/netns/{}", h.host_ns)).exists(),
        "`sandbox rm` of a host-network sandbox must leave the host netns alone\n{}",
        h.log_text()
    );
    assert!(
        h.link_names(&h.host_ns).contains(&"hostmark0".to_string()),
        "the host netns keeps its interfaces after `sandbox rm {hs}`"
    );
    assert!(
        !std::path::Path::new(&format!("/run/netns/{hs}")).exists(),
        "`sandbox rm {hs}` removes /run/netns/{hs}"
    );
    h.netd_ok(&["sandbox", "rm", &ns]);
    assert!(
        member_names(&h, "host").is_empty() && member_names(&h, "none").is_empty(),
        "removed sandboxes leave inspect host/none"
    );
    // The daemon still works normally.
    let a = h.sandbox("a");
    h.connect("net", &a, &[]);
    h.assert_ping(
        &a,
        &h.gateway_of("net"),
        "after host/none sandboxes came and went",
    );
    assert_consistent(&h);
}
