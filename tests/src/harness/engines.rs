//! Real container engines next to a test daemon: a `dockerd` of the test's own, running
//! inside the test's host netns with every path (data root, exec root, pid file, API socket,
//! config, log) under the test's scratch directory, and the busybox image the tests run
//! (imported from the tarball `cargo xtask install` builds; no registry is needed).
//!
//! Drop removes the containers, stops that dockerd by its PID, then ends whatever it left
//! (its containerd, shims, container processes, docker-proxy), found by the scratch
//! directory in their command lines or as their descendants; then unmounts what is left
//! under the scratch directory and removes it. Declare a `Dockerd` after its `TestHost`, so
//! it is dropped first: its containers leave while the netd daemon still answers Docker's
//! plugin calls, and dockerd is gone before the host netns is deleted.
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cmd::{self, run_timeout, Run};
use super::TestHost;

/// Root filesystem of the busybox image (busybox-static and its applet links), written by
/// `cargo xtask install` (xtask's `install::BUSYBOX_TAR`, the same path).
pub const BUSYBOX_TAR: &str = "/var/cache/netd-tests/busybox-rootfs.tar";
/// The image every container of the tests runs.
pub const BUSYBOX_IMAGE: &str = "netd-busybox:latest";
/// Debian's dockerd (docker.io).
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's docker CLI, matching that dockerd (`/usr/local/bin/docker` may be a newer CLI
/// that shadows it on PATH: never use the bare name).
pub const DOCKER_CLI: &str = "/usr/bin/docker";
/// How long dockerd gets to answer `docker info`.
const DOCKERD_READY: Duration = Duration::from_secs(30);
/// How long dockerd gets to exit after SIGTERM (it stops containers first).
const DOCKERD_EXIT: Duration = Duration::from_secs(25);
/// Deadline of one docker CLI command.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(40);
/// Longest unix socket path (sun_path is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The second octet's `n` of the docker0 subnet, `10.<octet>.240.0/24`.
pub const DOCKER0_NET: u8 = 240;
/// Docker's own IPAM hands out /24s from `10.<octet>.192.0/19` (n = 192..223).
pub const DOCKER_POOL_NET: u8 = 192;

/// A dockerd of one test, inside its host netns.
pub struct Dockerd {
    /// Everything of this dockerd lives below this directory (`<host.tmp>/docker`).
    pub root: PathBuf,
    /// `unix://<root>/docker.sock`.
    pub host_arg: String,
    /// The API socket.
    pub socket: PathBuf,
    /// dockerd's stdout+stderr.
    pub log: PathBuf,
    /// The netns dockerd runs in.
    pub netns: String,
    /// docker0's gateway address (`10.<octet>.240.1`).
    pub docker0_gateway: String,
    /// docker0's subnet.
    pub docker0_subnet: String,
    /// The dockerd process (nsenter execs into dockerd, so this is dockerd's PID).
    child: Option<Child>,
    /// A panic message already carries the log; drop need not print it again.
    log_shown: Cell<bool>,
}

impl Dockerd {
    /// Starts dockerd inside `host`'s netns and imports [`BUSYBOX_IMAGE`]; panics (with the
    /// dockerd log) if it does not answer within 30 s.
    pub fn start(host: &TestHost) -> Dockerd {
        Dockerd::start_with_args(host, &[])
    }

    /// [`Dockerd::start`] with extra dockerd arguments.
    pub fn start_with_args(host: &TestHost, extra: &[&str]) -> Dockerd {
        for bin in [DOCKERD, DOCKER_CLI, BUSYBOX_TAR] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run `cargo xtask install` (docker.io, busybox-static and the busybox image)"
            );
        }
        assert!(
            !Path::new("/run/containerd/containerd.sock").exists(),
            "/run/containerd/containerd.sock exists: a system containerd runs, and a test dockerd \
             would use it (in the machine's namespaces) instead of a containerd of its own; stop it first"
        );
        let root = host.tmp.join("docker");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create dockerd scratch dir");
        let socket = root.join("docker.sock");
        // containerd's socket is the longest path dockerd derives from the exec root.
        let exec_root = root.join("x");
        let longest = exec_root.join("containerd/containerd.sock.ttrpc");
        for p in [&socket, &longest] {
            assert!(
                p.as_os_str().len() <= MAX_SOCKET_PATH,
                "socket path {} is longer than {MAX_SOCKET_PATH} bytes: use a shorter TMPDIR",
                p.display()
            );
        }
        let config = root.join("daemon.json");
        std::fs::write(&config, "{}\n").expect("write daemon.json");
        let log = root.join("dockerd.log");
        let o = host.octet();
        let docker0_gateway = format!("10.{o}.{DOCKER0_NET}.1");
        let docker0_subnet = format!("10.{o}.{DOCKER0_NET}.0/24");
        let bip = format!("{docker0_gateway}/24");
        let pool = format!("base=10.{o}.{DOCKER_POOL_NET}.0/19,size=24");
        let host_arg = format!("unix://{}", socket.display());
        let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
        let mut args: Vec<String> = vec![
            format!("--net=/run/netns/{}", host.host_ns),
            "--".into(),
            DOCKERD.into(),
            "--config-file".into(),
            path(&config),
            "--data-root".into(),
            path(&root.join("d")),
            "--exec-root".into(),
            path(&exec_root),
            "--pidfile".into(),
            path(&root.join("dockerd.pid")),
            "-H".into(),
            host_arg.clone(),
            "--storage-driver".into(),
            "vfs".into(),
            "--bip".into(),
            bip,
            "--default-address-pool".into(),
            pool,
            "--iptables=true".into(),
            "--userland-proxy=true".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let logf = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open dockerd log");
        let child = Command::new("nsenter")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nsenter {DOCKERD}: {e}"));
        let mut d = Dockerd {
            root,
            host_arg,
            socket,
            log,
            netns: host.host_ns.clone(),
            docker0_gateway,
            docker0_subnet,
            child: Some(child),
            log_shown: Cell::new(false),
        };
        d.wait_ready();
        d.docker_ok(&["import", BUSYBOX_TAR, BUSYBOX_IMAGE]);
        d
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + DOCKERD_READY;
        loop {
            if let Some(status) = cmd::exited(&mut self.child) {
                panic!(
                    "dockerd exited during startup with {status}\n{}",
                    self.log_text()
                );
            }
            if self.socket.exists()
                && self
                    .docker_timeout(&["info"], Duration::from_secs(5))
                    .success()
            {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "dockerd did not answer `docker info` within {DOCKERD_READY:?}\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// PID of dockerd.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("dockerd not running").id()
    }

    /// `/usr/bin/docker -H unix://<socket> args...`, bounded by [`DOCKER_TIMEOUT`].
    pub fn docker(&self, args: &[&str]) -> Run {
        self.docker_timeout(args, DOCKER_TIMEOUT)
    }

    /// [`Dockerd::docker`] with its own deadline.
    pub fn docker_timeout(&self, args: &[&str], timeout: Duration) -> Run {
        let mut argv = vec!["-H", self.host_arg.as_str()];
        argv.extend_from_slice(args);
        let cli_config = self.root.join("cli");
        let cli_config = cli_config.to_str().expect("utf-8 path");
        run_timeout(DOCKER_CLI, &argv, &[("DOCKER_CONFIG", cli_config)], timeout)
    }

    /// Runs the docker CLI and panics (with the dockerd log) unless it exits 0; returns
    /// stdout, trimmed.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let r = self.docker(args);
        assert!(r.success(), "docker CLI failed: {r}\n{}", self.log_text());
        r.stdout.trim().to_string()
    }

    /// `docker run -d --name NAME [opts...] netd-busybox:latest argv...`; returns the id.
    pub fn run_detached(&self, name: &str, opts: &[&str], argv: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(opts);
        args.push(BUSYBOX_IMAGE);
        args.extend_from_slice(argv);
        self.docker_ok(&args)
    }

    /// `docker exec NAME argv...` (its own deadline: `timeout`).
    pub fn exec(&self, name: &str, argv: &[&str], timeout: Duration) -> Run {
        let mut args = vec!["exec", name];
        args.extend_from_slice(argv);
        self.docker_timeout(&args, timeout)
    }

    /// `docker exec NAME sh -c script`.
    pub fn sh(&self, name: &str, script: &str, timeout: Duration) -> Run {
        self.exec(name, &["sh", "-c", script], timeout)
    }

    /// `docker inspect NAME` (container, network, image...), the single element.
    pub fn inspect(&self, args: &[&str]) -> Value {
        let mut argv = vec!["inspect"];
        argv.extend_from_slice(args);
        let out = self.docker_ok(&argv);
        match serde_json::from_str(&out) {
            Ok(Value::Array(mut a)) if a.len() == 1 => a.remove(0),
            other => panic!("`docker inspect {args:?}` is not a 1-element array: {other:?}\n{out}"),
        }
    }

    /// IPv4 of container `name` on docker network `network` (from `docker inspect`).
    pub fn container_ip(&self, name: &str, network: &str) -> String {
        let v = self.inspect(&["--type", "container", name]);
        let ip = v["NetworkSettings"]["Networks"][network]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            !ip.is_empty(),
            "container {name} has no IPAddress on network {network}: {}",
            v["NetworkSettings"]["Networks"]
        );
        ip
    }

    /// The network namespace path of a running container (`/proc/<pid>/ns/net`).
    pub fn container_netns(&self, name: &str) -> String {
        let pid = self.docker_ok(&["inspect", "-f", "{{.State.Pid}}", name]);
        format!("/proc/{pid}/ns/net")
    }

    /// The last 80 lines of dockerd's log (without containerd's and gRPC's chatter),
    /// framed for a panic message.
    pub fn log_text(&self) -> String {
        self.log_shown.set(true);
        cmd::log_tail(&self.log, "dockerd", 80, |l| {
            !l.contains("module=grpc") && !l.contains("msg=\"loading plugin")
        })
    }

    /// Processes this dockerd left or started: those whose command line names a path below
    /// [`Dockerd::root`], plus `extra_roots`, plus all their descendants.
    fn leftovers(&self, extra_roots: &[u32]) -> BTreeSet<u32> {
        let table = proc_table();
        let mark = format!("{}/", self.root.display());
        let mut set: BTreeSet<u32> = table
            .iter()
            .filter(|(_, p)| p.cmdline.contains(&mark))
            .map(|(pid, _)| *pid)
            .collect();
        set.extend(extra_roots.iter().filter(|p| table.contains_key(p)));
        // Descendants (container processes under their shim, docker-proxy under dockerd).
        loop {
            let more: Vec<u32> = table
                .iter()
                .filter(|(pid, p)| !set.contains(pid) && set.contains(&p.ppid))
                .map(|(pid, _)| *pid)
                .collect();
            if more.is_empty() {
                break;
            }
            set.extend(more);
        }
        set.remove(&std::process::id());
        set
    }

    fn stop_dockerd(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        cmd::kill_pid(c.id(), libc::SIGTERM);
        if cmd::wait_child(&mut c, DOCKERD_EXIT).is_none() {
            eprintln!(
                "dockerd {} ignored SIGTERM for {DOCKERD_EXIT:?}: SIGKILL",
                c.id()
            );
            cmd::kill_pid(c.id(), libc::SIGKILL);
            let _ = cmd::wait_child(&mut c, Duration::from_secs(5));
        }
    }

    /// Unmounts (lazily) every mount below [`Dockerd::root`], deepest first.
    fn unmount_all(&self) {
        let mark = format!("{}/", self.root.display());
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(unescape_mount_path)
            .filter(|p| p.starts_with(&mark) || format!("{p}/") == mark)
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        points.dedup();
        for p in points {
            let c = std::ffi::CString::new(p.as_str()).expect("mount path without NUL");
            // SAFETY: umount2(2) with a valid C string; MNT_DETACH only detaches this mount.
            let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                eprintln!("umount -l {p}: {}", std::io::Error::last_os_error());
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.log_shown.get() {
            eprintln!("{}", self.log_text());
        }
        let dockerd = self.child.as_ref().map(Child::id);
        if let Some(pid) = dockerd {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let ids = self.docker_timeout(&["ps", "-aq"], Duration::from_secs(10));
                let ids: Vec<&str> = ids.stdout.split_whitespace().collect();
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids);
                    let r = self.docker_timeout(&args, Duration::from_secs(30));
                    if !r.success() {
                        eprintln!("dockerd cleanup: {r}");
                    }
                }
            }
        }
        // Everything started by this dockerd, seen while dockerd is still its parent.
        let before: BTreeSet<u32> = self.leftovers(&dockerd.into_iter().collect::<Vec<_>>());
        let starts: BTreeMap<u32, u64> = before
            .iter()
            .filter_map(|p| start_time(*p).map(|t| (*p, t)))
            .collect();
        self.stop_dockerd();
        // What is still there: the same processes (same start time: not a reused PID) and
        // anything naming our directory.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut left = self.leftovers(&[]);
            left.extend(
                starts
                    .iter()
                    .filter(|(p, t)| start_time(**p) == Some(**t))
                    .map(|(p, _)| *p),
            );
            // Zombies of processes this test reaped are gone; others' zombies cannot be killed.
            left.retain(|p| !is_zombie(*p));
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!("dockerd cleanup: processes still alive after SIGKILL: {left:?}");
                break;
            }
            for p in &left {
                cmd::kill_pid(*p, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.unmount_all();
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            eprintln!("dockerd cleanup: remove {}: {e}", self.root.display());
        }
    }
}

/// `\040` etc. in /proc/self/mountinfo paths.
fn unescape_mount_path(p: &str) -> String {
    let mut out = String::new();
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&p[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

struct ProcInfo {
    ppid: u32,
    cmdline: String,
}

/// Every process: parent and command line.
fn proc_table() -> BTreeMap<u32, ProcInfo> {
    let mut t = BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Some(ppid) = stat_field(pid, 1).and_then(|s| s.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        t.insert(pid, ProcInfo { ppid, cmdline });
    }
    t
}

/// Field `i` of /proc/PID/stat counted after the command name (0 = state, 1 = ppid).
fn stat_field(pid: u32, i: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(i).map(str::to_string)
}

/// Start time (clock ticks since boot): tells a process from a later one with its PID.
fn start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 19).and_then(|s| s.parse().ok())
}

fn is_zombie(pid: u32) -> bool {
    stat_field(pid, 0).is_none_or(|s| s == "Z" || s == "X")
}
