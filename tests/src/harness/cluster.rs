//! Several "hosts" on one machine, joined by an underlay and sharing an etcd: the world of
//! overlay networks (issue 5).
//!
//! Layout, per cluster (`c` = the cluster's octet):
//!
//! ```text
//!   switch netns <id>-sw: bridge br0 10.c.250.254/24, etcd on 10.c.250.254:2379
//!     |-- p0 ... veth ... ul0 10.c.250.11/24 in host 0's netns (its own TestHost)
//!     |-- p1 ... veth ... ul0 10.c.250.12/24 in host 1's netns
//!     |-- ...
//!     `-- po ... veth ... eth0 10.c.250.200/24 in the outside netns <id>-out
//! ```
//!
//! Every host runs its own daemon (`--uplink ul0 --advertise-addr <its ul0 address>
//! --cluster-store etcd://10.c.250.254:2379 --cluster-ttl 3`) with its own state dir,
//! socket and bpffs directory, and a default route via the outside, which has no other
//! link: nothing leaves these namespaces. etcd is a child of the test, killed by its PID
//! and its data dir removed on drop. Cluster tests of one process run one at a time: they
//! time leases and count lost pings, and two clusters on two cores would skew both.
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use netd::dataplane::{Dataplane, Maps};
use netd_common::RemoteEndpoint;
use serde_json::Value;

use super::cleanup::cleanup;
use super::cmd::{self, kill_pid, run_timeout, wait_child, Run};
use super::{TestHost, BPFFS_ROOT, COUNTER, NAME_TAG};

/// The host end of every host's underlay veth (not `nd...`: those are netd's).
pub const UNDERLAY_IF: &str = "ul0";
/// The underlay's MTU (the veth default), so overlay networks default to 1450.
pub const UNDERLAY_MTU: u32 = 1500;
/// The overlay MTU the contract derives from it.
pub const OVERLAY_MTU: u32 = UNDERLAY_MTU - 50;
/// `--cluster-ttl` of every daemon: a dead host's lease expires after this.
pub const CLUSTER_TTL: Duration = Duration::from_secs(3);
/// The `n` of `10.<octet>.<n>.0/24` the underlay uses.
const UNDERLAY_NET: u8 = 250;
/// Last octet of the first host's underlay address; host `i` has `FIRST_HOST + i`.
const FIRST_HOST: u8 = 11;
/// Last octet of the outside's underlay address.
const OUTSIDE_HOST: u8 = 200;
/// Last octet of the bridge's address in the switch netns, where etcd listens.
const SWITCH_HOST: u8 = 254;
const ETCD_CLIENT_PORT: u16 = 2379;
const ETCD_PEER_PORT: u16 = 2380;
/// How long etcd gets to answer `endpoint health` after a (re)start.
const ETCD_READY: Duration = Duration::from_secs(20);
/// How long etcd gets to exit after SIGKILL.
const ETCD_EXIT: Duration = Duration::from_secs(10);
/// At most this many hosts per cluster.
const MAX_HOSTS: usize = 8;
/// The contract's etcd prefix.
pub const ETCD_PREFIX: &str = "/netd/v1/";
/// Contract: ls/inspect `Options` key holding an overlay network's VNI.
pub const OPT_VXLANID: &str = "com.docker.network.driver.overlay.vxlanid_list";

static SERIAL: Mutex<()> = Mutex::new(());

/// An absolute path of `tool` from `$PATH`; panics loudly if it is not installed.
fn find_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is not installed: the overlay tests need it (apt-get install {package})"
            )
        })
}

/// The etcd server of a cluster, a child of the test running in the switch netns.
pub struct Etcd {
    /// Netns it runs in.
    pub ns: String,
    /// Address it listens on (client and peer ports).
    pub ip: String,
    /// Its data dir, kept across restarts, removed on drop.
    pub data_dir: PathBuf,
    /// stdout+stderr of every run, appended.
    pub log: PathBuf,
    /// `--name`.
    name: String,
    etcd_bin: PathBuf,
    etcdctl_bin: PathBuf,
    /// The running server (nsenter execs into etcd, so this is etcd's PID).
    child: Option<Child>,
}

impl Etcd {
    /// `http://IP:2379`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{ETCD_CLIENT_PORT}", self.ip)
    }

    /// `etcd://IP:2379`, the daemons' `--cluster-store`.
    pub fn store_url(&self) -> String {
        format!("etcd://{}:{ETCD_CLIENT_PORT}", self.ip)
    }

    /// Starts the server on its data dir (a fresh one, or what the last run left) and
    /// waits until it answers `endpoint health`.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "etcd already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open etcd log");
        let peer = format!("http://{}:{ETCD_PEER_PORT}", self.ip);
        let client = self.endpoint();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.ns))
            .arg("--")
            .arg(&self.etcd_bin)
            .args(["--name", &self.name, "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("{}={peer}", self.name)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup etcd log"))
            .stderr(log);
        // SAFETY: prctl(2) only, between fork and exec: etcd dies with the test thread
        // that started it even if the test process is killed before its drop runs.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.etcd_bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + ETCD_READY;
        loop {
            if let Some(status) = cmd::exited(&mut self.child) {
                panic!(
                    "etcd exited during startup with {status}\n{}",
                    self.log_text()
                );
            }
            if self.healthy() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer `endpoint health` within {ETCD_READY:?}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// PID of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("etcd not running").id()
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL and reap (the data dir stays for [`Etcd::start`]).
    pub fn kill(&mut self) {
        let mut c = self.child.take().expect("kill: etcd not running");
        kill_pid(c.id(), libc::SIGKILL);
        wait_child(&mut c, ETCD_EXIT).expect("etcd survived SIGKILL");
    }

    /// SIGSTOP: the server keeps its sockets but answers nothing until [`Etcd::resume`].
    pub fn pause(&self) {
        kill_pid(self.pid(), libc::SIGSTOP);
    }

    /// SIGCONT after [`Etcd::pause`].
    pub fn resume(&self) {
        kill_pid(self.pid(), libc::SIGCONT);
    }

    /// `etcdctl --endpoints .. args...` in the switch netns, bounded.
    pub fn ctl(&self, args: &[&str]) -> Run {
        let net = format!("--net=/run/netns/{}", self.ns);
        let endpoints = format!("--endpoints={}", self.endpoint());
        let ctl = self.etcdctl_bin.to_str().expect("utf-8 etcdctl path");
        let mut argv = vec![
            net.as_str(),
            "--",
            ctl,
            endpoints.as_str(),
            "--dial-timeout=1s",
            "--command-timeout=3s",
        ];
        argv.extend_from_slice(args);
        run_timeout(
            "nsenter",
            &argv,
            &[("ETCDCTL_API", "3")],
            Duration::from_secs(10),
        )
    }

    /// True if `endpoint health` says so.
    pub fn healthy(&self) -> bool {
        self.ctl(&["endpoint", "health"]).success()
    }

    /// Keys under `prefix`, sorted; panics if etcd does not answer.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let r = self.ctl(&["get", "--prefix", "--keys-only", prefix]);
        assert!(
            r.success(),
            "etcdctl get {prefix}: {r}\n{}",
            self.log_text()
        );
        let mut keys: Vec<String> = r
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    /// Key -> value under `prefix`; panics if etcd does not answer.
    pub fn get_prefix(&self, prefix: &str) -> BTreeMap<String, String> {
        let r = self.ctl(&["get", "--prefix", prefix]);
        assert!(
            r.success(),
            "etcdctl get {prefix}: {r}\n{}",
            self.log_text()
        );
        let lines: Vec<&str> = r.stdout.lines().collect();
        lines
            .chunks(2)
            .filter(|kv| kv.len() == 2)
            .map(|kv| (kv[0].to_string(), kv[1].to_string()))
            .collect()
    }

    /// The last lines of the server's log, framed for a panic message.
    pub fn log_text(&self) -> String {
        cmd::log_tail(&self.log, "etcd", 60, |_| true)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGKILL ends a paused (SIGSTOPped) server too.
            kill_pid(c.id(), libc::SIGKILL);
            let _ = wait_child(&mut c, ETCD_EXIT);
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Hosts, switch, outside and etcd of one overlay test.
pub struct Cluster {
    /// Tag of the switch and outside netns and of the scratch dir (`ndt<pid>x<n>`).
    pub id: String,
    /// Second octet of the underlay, `10.<octet>.250.0/24`.
    octet: u8,
    /// The netns holding the bridge and etcd.
    pub switch_ns: String,
    /// The netns beyond the hosts' NAT, on the same bridge.
    pub outside_ns: String,
    /// The outside's underlay address.
    pub outside_ip: String,
    /// Every host (its own TestHost: netns, daemon, state, socket, bpffs).
    pub hosts: Vec<TestHost>,
    /// Underlay address of each host (its VTEP and `--advertise-addr`).
    pub vteps: Vec<String>,
    pub etcd: Etcd,
    /// Scratch dir holding etcd's data dir and log.
    tmp: PathBuf,
    /// Held for the cluster's life: one cluster at a time per process. Dropped last.
    _serial: MutexGuard<'static, ()>,
}

impl Cluster {
    /// `n` hosts joined by the underlay, etcd running, every daemon started with the
    /// cluster flags.
    pub fn new(n: usize) -> Cluster {
        let mut c = Cluster::topology(n);
        for i in 0..n {
            let args = c.cluster_args(i);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            c.hosts[i].start_daemon_with_args(&refs);
        }
        c
    }

    /// Switch, outside, `n` host netns with their underlay, and etcd answering; no
    /// daemon yet (see [`Cluster::cluster_args`]).
    pub fn topology(n: usize) -> Cluster {
        assert!((1..=MAX_HOSTS).contains(&n), "1..={MAX_HOSTS} hosts");
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let etcd_bin = find_tool("etcd", "etcd-server");
        let etcdctl_bin = find_tool("etcdctl", "etcd-client");
        super::SETUP.call_once(|| {
            super::cleanup::ensure_bpffs();
            super::cleanup::sweep_stale();
        });
        let k = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let id = format!("{NAME_TAG}{pid:x}x{k}");
        let octet = 100 + ((pid as u64 * 7 + k as u64) % 150) as u8;
        let tmp = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("create cluster scratch dir");
        let addr = |host: u8| format!("10.{octet}.{UNDERLAY_NET}.{host}");
        let switch_ns = format!("{id}-sw");
        let etcd = Etcd {
            ns: switch_ns.clone(),
            ip: addr(SWITCH_HOST),
            data_dir: tmp.join("etcd-data"),
            log: tmp.join("etcd.log"),
            name: id.clone(),
            etcd_bin,
            etcdctl_bin,
            child: None,
        };
        let mut c = Cluster {
            outside_ns: format!("{id}-out"),
            outside_ip: addr(OUTSIDE_HOST),
            switch_ns,
            id,
            octet,
            hosts: Vec::new(),
            vteps: Vec::new(),
            etcd,
            tmp,
            _serial: serial,
        };
        let sw = c.switch_ns.clone();
        let bridge_cidr = format!("{}/24", c.etcd.ip);
        must(&["ip", "netns", "add", &sw]);
        must(&["ip", "-n", &sw, "link", "set", "lo", "up"]);
        must(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
        must(&["ip", "-n", &sw, "addr", "add", &bridge_cidr, "dev", "br0"]);
        must(&["ip", "-n", &sw, "link", "set", "br0", "up"]);

        let out = c.outside_ns.clone();
        must(&["ip", "netns", "add", &out]);
        must(&["ip", "-n", &out, "link", "set", "lo", "up"]);
        c.plug("po", &out, "eth0", &format!("{}/24", c.outside_ip));

        for i in 0..n {
            let h = TestHost::new();
            let vtep = addr(FIRST_HOST + i as u8);
            let port = format!("p{i}");
            c.plug(&port, &h.host_ns, UNDERLAY_IF, &format!("{vtep}/24"));
            must(&[
                "ip",
                "-n",
                &h.host_ns,
                "route",
                "add",
                "default",
                "via",
                &c.outside_ip,
                "dev",
                UNDERLAY_IF,
            ]);
            c.hosts.push(h);
            c.vteps.push(vtep);
        }
        c.etcd.start();
        c
    }

    /// A veth from the bridge (port `port`) to `ifname` in `ns`, addressed `cidr`, both
    /// ends up.
    fn plug(&self, port: &str, ns: &str, ifname: &str, cidr: &str) {
        let sw = &self.switch_ns;
        must(&[
            "ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns",
            ns,
        ]);
        must(&["ip", "-n", sw, "link", "set", port, "master", "br0", "up"]);
        must(&["ip", "-n", ns, "addr", "add", cidr, "dev", ifname]);
        must(&["ip", "-n", ns, "link", "set", ifname, "up"]);
    }

    /// The `netd daemon` arguments of host `i` beyond the harness's usual ones.
    pub fn cluster_args(&mut self, i: usize) -> Vec<String> {
        self.hosts[i].set_docker_plugin_socket("none");
        let ttl = CLUSTER_TTL.as_secs().to_string();
        [
            "--uplink",
            UNDERLAY_IF,
            "--advertise-addr",
            &self.vteps[i],
            "--cluster-store",
            &self.etcd.store_url(),
            "--cluster-ttl",
            &ttl,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Second octet of the underlay.
    pub fn octet(&self) -> u8 {
        self.octet
    }

    pub fn host(&self, i: usize) -> &TestHost {
        &self.hosts[i]
    }

    pub fn host_mut(&mut self, i: usize) -> &mut TestHost {
        &mut self.hosts[i]
    }

    /// `network create -d overlay [extra...] NAME` on host `i`; returns the id.
    pub fn create_overlay(&self, i: usize, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["network", "create", "-d", "overlay"];
        args.extend_from_slice(extra);
        args.push(name);
        let id = self.hosts[i].netd_ok(&args).trim().to_string();
        assert!(
            id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "contract: `network create -d overlay` prints the 64-hex id, got {id:?}"
        );
        id
    }

    /// Waits (up to `timeout`) until every host lists network `name`; returns how long
    /// it took.
    pub fn wait_visible_everywhere(&self, name: &str, timeout: Duration) -> Duration {
        let start = Instant::now();
        for h in &self.hosts {
            let seen = poll(start + timeout, || {
                h.network_names().iter().any(|n| n == name)
            });
            assert!(
                seen,
                "issue: overlay network {name} must be visible on every daemon; {} does not list it after {timeout:?}: {:?}\n{}",
                h.id,
                h.network_names(),
                h.log_text()
            );
        }
        start.elapsed()
    }

    /// Host `i`'s `REMOTE_EPS`, read from its pins.
    pub fn remote_endpoints(&self, i: usize) -> BTreeMap<Ipv4Addr, RemoteEndpoint> {
        let maps = self.pinned_maps(i);
        maps.remote_endpoints()
            .unwrap_or_else(|e| panic!("reading REMOTE_EPS of host {i}: {e:#}"))
            .into_iter()
            .collect()
    }

    /// Host `i`'s `VNIS`: VNI -> net id.
    pub fn vnis(&self, i: usize) -> BTreeMap<u32, u32> {
        let maps = self.pinned_maps(i);
        maps.vnis()
            .unwrap_or_else(|e| panic!("reading VNIS of host {i}: {e:#}"))
            .into_iter()
            .collect()
    }

    /// Host `i`'s pinned maps, opened read-only.
    fn pinned_maps(&self, i: usize) -> Maps {
        let bpffs = &self.hosts[i].bpffs;
        Dataplane::open_pins_readonly(bpffs)
            .unwrap_or_else(|e| panic!("opening the pins of {}: {e:#}", bpffs.display()))
    }

    /// Polls (up to `timeout`) until host `i`'s `REMOTE_EPS` has `ip` (`present`) or not;
    /// panics with the map and the logs otherwise.
    pub fn wait_remote(&self, i: usize, ip: &str, present: bool, timeout: Duration, why: &str) {
        let addr: Ipv4Addr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
        let ok = poll(Instant::now() + timeout, || {
            self.remote_endpoints(i).contains_key(&addr) == present
        });
        assert!(
            ok,
            "{why}: after {timeout:?} REMOTE_EPS of host {i} ({}) {} {ip}: {:?}\n{}",
            self.hosts[i].id,
            if present { "still lacks" } else { "still has" },
            self.remote_endpoints(i),
            self.hosts[i].log_text()
        );
    }

    /// Polls (up to `timeout`) until `from_ns` pings `ip`; panics with context otherwise.
    pub fn wait_ping(&self, from_ns: &str, ip: &str, timeout: Duration, why: &str) {
        let ok = poll(Instant::now() + timeout, || ping_once(from_ns, ip));
        if !ok {
            panic!(
                "{why}: {from_ns} could not ping {ip} within {timeout:?}\n{}",
                self.diagnostics()
            );
        }
    }

    /// Overlay endpoint keys in etcd (`/netd/v1/endpoints/...`).
    pub fn etcd_endpoint_keys(&self) -> Vec<String> {
        self.etcd.keys(&format!("{ETCD_PREFIX}endpoints/"))
    }

    /// `Peers` of `net` on host `i`: their `IP`s.
    pub fn peer_ips(&self, i: usize, net: &str) -> BTreeSet<String> {
        let v = self.hosts[i].inspect(net);
        v["Peers"]
            .as_array()
            .unwrap_or_else(|| panic!("contract: inspect of an overlay network has Peers: {v}"))
            .iter()
            .map(|p| {
                p["IP"]
                    .as_str()
                    .unwrap_or_else(|| panic!("contract: Peers entries have an IP: {v}"))
                    .to_string()
            })
            .collect()
    }

    /// Every host's daemon log, etcd's log and the hosts' links, for a failure message.
    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        for (i, h) in self.hosts.iter().enumerate() {
            s.push_str(&format!("===== host {i} ({}) =====\n", h.id));
            s.push_str(&h.diagnostics(&[]));
            s.push_str(&h.log_text());
            s.push('\n');
        }
        s.push_str(&self.etcd.log_text());
        s
    }

    /// Disconnects every sandbox from every overlay network on every host, removes the
    /// overlay networks, and checks that nothing is left: no overlay key in etcd, no
    /// remote endpoint or VNI in any host's maps, each host consistent.
    pub fn teardown_and_check(&self) {
        let mut overlays = BTreeSet::new();
        for h in &self.hosts {
            for n in h.inspect_all() {
                if n["Driver"].as_str() != Some("overlay") {
                    continue;
                }
                let name = n["Name"].as_str().unwrap_or_default().to_string();
                for c in n["Containers"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.values())
                {
                    let sb = c["Name"].as_str().unwrap_or_default();
                    h.disconnect(&name, sb);
                }
                overlays.insert(name);
            }
        }
        for name in &overlays {
            let out = self.hosts[0].netd_ok(&["network", "rm", name]);
            assert_eq!(out.trim(), name, "`network rm` prints the name");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (i, h) in self.hosts.iter().enumerate() {
            let gone = poll(deadline, || {
                h.network_names().iter().all(|n| !overlays.contains(n))
            });
            assert!(
                gone,
                "issue: removed overlay networks {overlays:?} must vanish from every host; host {i} still lists {:?}\n{}",
                h.network_names(),
                h.log_text()
            );
        }
        for what in ["endpoints/", "networks/", "names/", "vnis/"] {
            let keys = self.etcd.keys(&format!("{ETCD_PREFIX}{what}"));
            assert!(
                keys.is_empty(),
                "leak: after disconnecting everything and removing every overlay network, etcd still holds {keys:?}; all keys: {:?}",
                self.etcd.keys(ETCD_PREFIX)
            );
        }
        for (i, h) in self.hosts.iter().enumerate() {
            let empty = poll(deadline, || {
                self.remote_endpoints(i).is_empty() && self.vnis(i).is_empty()
            });
            assert!(
                empty,
                "leak: host {i} ({}) keeps REMOTE_EPS {:?} / VNIS {:?} after every overlay network was removed\n{}",
                h.id,
                self.remote_endpoints(i),
                self.vnis(i),
                h.log_text()
            );
            let maps = h.maps();
            assert!(
                maps.endpoints_by_ip().is_empty() && maps.endpoints_by_ifindex().is_empty(),
                "leak: host {i} keeps endpoint map entries: {:?}",
                maps.endpoints_by_ip()
            );
            super::check::assert_consistent(h);
        }
    }

    /// [`Cluster::teardown_and_check`], then drops the cluster and checks that its
    /// namespaces, pins, scratch dirs and etcd are gone.
    pub fn finish(self) {
        self.teardown_and_check();
        let mut ids: Vec<String> = self.hosts.iter().map(|h| h.id.clone()).collect();
        ids.push(self.id.clone());
        let etcd_pid = self.etcd.child.as_ref().map(|c| c.id());
        let dirs: Vec<PathBuf> = self
            .hosts
            .iter()
            .map(|h| h.tmp.clone())
            .chain([self.tmp.clone()])
            .collect();
        drop(self);
        let netns: Vec<String> = std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| ids.iter().any(|id| n.starts_with(&format!("{id}-"))))
            .collect();
        assert!(netns.is_empty(), "leak: netns left after drop: {netns:?}");
        for id in &ids {
            let pins = Path::new(BPFFS_ROOT).join(id);
            assert!(!pins.exists(), "leak: {} left after drop", pins.display());
        }
        for d in &dirs {
            assert!(!d.exists(), "leak: {} left after drop", d.display());
        }
        if let Some(pid) = etcd_pid {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "leak: etcd (pid {pid}) still running after drop"
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("cluster {} failed; {}", self.id, self.etcd.log_text());
        }
        // Each host kills its daemon and removes its netns (and with it its underlay
        // veth), pins and scratch dir.
        self.hosts.clear();
        if let Some(mut c) = self.etcd.child.take() {
            kill_pid(c.id(), libc::SIGKILL);
            let _ = wait_child(&mut c, ETCD_EXIT);
        }
        cleanup(&self.id);
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// Runs a command on the test machine, panicking with context if it fails.
fn must(argv: &[&str]) -> String {
    let r = cmd::run(argv[0], &argv[1..]);
    assert!(r.success(), "{r}");
    r.stdout
}

/// Calls `f` every 100 ms until it is true or `deadline` passes; its last answer.
pub fn poll(deadline: Instant, mut f: impl FnMut() -> bool) -> bool {
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One echo request from `from_ns` to `ip`, waiting at most 2 s for the reply.
pub fn ping_once(from_ns: &str, ip: &str) -> bool {
    run_timeout(
        "ip",
        &[
            "netns", "exec", from_ns, "ping", "-n", "-q", "-c", "1", "-W", "2", ip,
        ],
        &[],
        Duration::from_secs(5),
    )
    .success()
}

/// The value of a `--format json` field as a string, whatever JSON type it has.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
