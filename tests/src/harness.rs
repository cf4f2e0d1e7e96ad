//! Drives a real `netd daemon` and the `netd` CLI the way a user would, each test in its
//! own "host" network namespace with its own state dir, socket, bpffs directory and
//! subnets, so tests run in parallel and leave nothing behind even when they panic.
//!
//! Every helper is bounded in time; a missing tool panics with its name instead of
//! skipping.
pub mod api;
pub mod check;
mod cleanup;
pub mod cluster;
pub mod cmd;
pub mod cni;
pub mod engines;
mod host;
pub mod maps;
pub mod netns;
pub mod outside;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

use cleanup::{cleanup, ensure_bpffs, sweep_stale};
pub use cmd::{run, run_timeout, wait_until, Background, Run};
pub use host::firewall_rules;
pub use outside::{Outside, UPLINK_IF, UPLINK_NET};

/// How long the daemon gets to answer its first `network ls`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopped or crashing daemon gets to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the tests pin their BPF objects (a per-test directory below it).
pub(crate) const BPFFS_ROOT: &str = "/sys/fs/bpf";
/// bpffs magic, from linux/magic.h.
pub(crate) const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Every name this suite creates starts with this, followed by the pid in hex and `x`.
pub(crate) const NAME_TAG: &str = "ndt";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SETUP: Once = Once::new();

/// The `netd` binary under test: `$NETD_BIN`, else the workspace's release build, else
/// its debug build.
pub fn netd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NETD_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "NETD_BIN={} is not a file", p.display());
        return p;
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target"));
    for profile in ["release", "debug"] {
        let p = target.join(profile).join("netd");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "no netd binary: set NETD_BIN or build one (`cargo build -p netd [--release]`); looked in {}/{{release,debug}}/netd",
        target.display()
    )
}

/// One test's world: a host netns with a daemon in it, and the sandboxes it creates.
pub struct TestHost {
    /// Unique tag of this test, e.g. `ndt1f2ax3`; every netns name starts with `<id>-`.
    pub id: String,
    /// The netns the daemon runs in (lo is up there).
    pub host_ns: String,
    /// Second octet of every subnet this test uses: `10.<octet>.<n>.0/24`.
    octet: u8,
    /// Scratch directory holding the state dir, socket and logs.
    pub tmp: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// The daemon's `--bpffs` directory.
    pub bpffs: PathBuf,
    /// The daemon's `--docker-plugin-socket`: in the scratch dir unless a test lets Docker
    /// find it (see [`TestHost::set_docker_plugin_socket`]).
    pub docker_plugin_socket: PathBuf,
    /// stderr+stdout of every daemon run of this test, appended.
    pub log: PathBuf,
    /// The binary under test.
    pub bin: PathBuf,
    /// The running daemon (the nsenter child execs into netd, so its PID is netd's).
    daemon: Option<Child>,
    /// Extra `netd daemon` arguments (e.g. `--uplink`), reused by every (re)start.
    daemon_args: Vec<String>,
    /// The "outside" namespaces behind the uplinks, in [`TestHost::add_outside`] order.
    outsides: Vec<Outside>,
    /// A panic message already carries the daemon log; drop need not print it again.
    log_shown: std::cell::Cell<bool>,
}

impl TestHost {
    /// Creates the host netns and scratch dirs; the daemon is not started yet.
    pub fn new() -> TestHost {
        SETUP.call_once(|| {
            ensure_bpffs();
            sweep_stale();
        });
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let id = format!("{NAME_TAG}{pid:x}x{n}");
        let octet = 100 + ((pid as u64 * 7 + n as u64) % 150) as u8;
        let tmp = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("create scratch dir");
        let host_ns = format!("{id}-h");
        let host = TestHost {
            state_dir: tmp.join("state"),
            socket: tmp.join("netd.sock"),
            bpffs: Path::new(BPFFS_ROOT).join(&id),
            docker_plugin_socket: tmp.join("plugin.sock"),
            log: tmp.join("daemon.log"),
            bin: netd_bin(),
            id,
            host_ns,
            octet,
            tmp,
            daemon: None,
            daemon_args: Vec::new(),
            outsides: Vec::new(),
            log_shown: std::cell::Cell::new(false),
        };
        host.must(&["ip", "netns", "add", &host.host_ns]);
        host.must(&["ip", "-n", &host.host_ns, "link", "set", "lo", "up"]);
        host
    }

    /// [`TestHost::new`] plus [`TestHost::start_daemon`].
    pub fn started() -> TestHost {
        let mut h = TestHost::new();
        h.start_daemon();
        h
    }

    /// `10.<octet>.<n>.0/24`, unique to this test; `n = 0` is the predefined bridge.
    /// `n >= 250` ([`UPLINK_NET`]) are the links to the outside namespaces, never networks.
    pub fn subnet(&self, n: u8) -> String {
        assert!(
            n < UPLINK_NET,
            "harness: 10.x.{n}.0/24 (n >= {UPLINK_NET}) is for uplinks, not for netd networks"
        );
        format!("10.{}.{n}.0/24", self.octet)
    }

    /// `10.<octet>.0.0/16`: every subnet of this test lies inside it.
    pub fn supernet(&self) -> String {
        format!("10.{}.0.0/16", self.octet)
    }

    /// Address `host` of [`TestHost::subnet`] `n`.
    pub fn addr(&self, n: u8, host: u8) -> String {
        format!("10.{}.{n}.{host}", self.octet)
    }

    /// Second octet of every address of this test.
    pub fn octet(&self) -> u8 {
        self.octet
    }

    /// Starts the daemon with `args` added to its command line (e.g. `--uplink`,
    /// `--nat-max-entries`); every later [`TestHost::start_daemon`] and
    /// [`TestHost::restart`] reuses them.
    pub fn start_daemon_with_args(&mut self, args: &[&str]) {
        self.daemon_args = args.iter().map(|a| a.to_string()).collect();
        self.start_daemon();
    }

    /// Where the daemon serves Docker's plugin protocol, e.g.
    /// `/run/docker/plugins/<id>.sock` for a Docker driver named `<id>`; before the start.
    pub fn set_docker_plugin_socket(&mut self, path: impl Into<PathBuf>) {
        assert!(
            self.daemon.is_none(),
            "set the plugin socket before starting"
        );
        self.docker_plugin_socket = path.into();
    }

    /// The extra daemon arguments every start uses.
    pub fn daemon_args(&self) -> &[String] {
        &self.daemon_args
    }

    /// Runs `netd daemon` in the host netns with the usual arguments plus `args`, expecting
    /// it to exit by itself (a refused configuration); returns its output. Killed after
    /// 10 s if it keeps running (the result then says `timed_out`).
    pub fn run_daemon_expecting_exit(&self, args: &[&str]) -> Run {
        assert!(self.daemon.is_none(), "daemon already running");
        let mut argv = vec![format!("--net=/run/netns/{}", self.host_ns), "--".into()];
        argv.push(self.bin.to_str().expect("utf-8 binary path").into());
        argv.extend(self.daemon_argv(args));
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        run_timeout("nsenter", &refs, &[], EXIT_TIMEOUT)
    }

    /// `daemon --state-dir .. --socket .. --bpffs .. --bridge-subnet .. extra...`.
    fn daemon_argv(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec!["daemon".into()];
        for (flag, val) in [
            ("--state-dir", &self.state_dir),
            ("--socket", &self.socket),
            ("--bpffs", &self.bpffs),
            ("--docker-plugin-socket", &self.docker_plugin_socket),
        ] {
            v.push(flag.into());
            v.push(val.to_str().expect("utf-8 path").into());
        }
        v.push("--bridge-subnet".into());
        v.push(self.subnet(0));
        v.extend(extra.iter().map(|a| a.to_string()));
        v
    }

    /// Starts the daemon and waits until it answers.
    pub fn start_daemon(&mut self) {
        self.start_daemon_env(&[]);
        self.wait_ready();
    }

    /// Starts the daemon with extra environment (e.g. `NETD_CRASH_AT`), waiting until it
    /// answers.
    pub fn start_daemon_with_env(&mut self, envs: &[(&str, &str)]) {
        self.start_daemon_env(envs);
        self.wait_ready();
    }

    fn start_daemon_env(&mut self, envs: &[(&str, &str)]) {
        assert!(self.daemon.is_none(), "daemon already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open daemon log");
        use std::io::Write;
        let mut l = &log;
        // A test daemon never picks its uplink by itself: with an outside namespace there is
        // a default route in the host netns, so the uplink must be named.
        assert!(
            self.outsides.is_empty() || self.daemon_args.iter().any(|a| a == "--uplink"),
            "harness: a daemon next to an outside namespace must get an explicit --uplink (args {:?})",
            self.daemon_args
        );
        let extra: Vec<&str> = self.daemon_args.iter().map(String::as_str).collect();
        let argv = self.daemon_argv(&extra);
        let _ = writeln!(
            l,
            "===== harness: starting daemon, env {envs:?}, args {argv:?} ====="
        );
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.host_ns))
            .arg("--")
            .arg(&self.bin)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.env_remove("NETD_CRASH_AT");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nsenter {}: {e}", self.bin.display()));
        self.daemon = Some(child);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = cmd::exited(&mut self.daemon) {
                panic!(
                    "daemon exited during startup with {status}\n{}",
                    self.log_text()
                );
            }
            if self.socket.exists() && self.netd_run(&["network", "ls"]).success() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "daemon did not answer `network ls` within {READY_TIMEOUT:?} (socket exists: {})\n{}",
                    self.socket.exists(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// PID of the running daemon.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon not running").id()
    }

    /// True while the daemon process has not exited.
    pub fn daemon_alive(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `kill -9` the daemon and reap it.
    pub fn kill9(&mut self) {
        let mut c = self.daemon.take().expect("kill9: daemon not running");
        cmd::kill_pid(c.id(), libc::SIGKILL);
        cmd::wait_child(&mut c, EXIT_TIMEOUT).expect("daemon survived SIGKILL");
    }

    /// SIGTERM the daemon and wait for it to exit; panics if it does not within 10 s.
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.daemon.take().expect("stop: daemon not running");
        cmd::kill_pid(c.id(), libc::SIGTERM);
        match cmd::wait_child(&mut c, EXIT_TIMEOUT) {
            Some(s) => s,
            None => {
                cmd::kill_pid(c.id(), libc::SIGKILL);
                let _ = cmd::wait_child(&mut c, EXIT_TIMEOUT);
                panic!(
                    "daemon ignored SIGTERM for {EXIT_TIMEOUT:?}\n{}",
                    self.log_text()
                );
            }
        }
    }

    /// Waits for a daemon that is expected to die by itself (a crash point); returns how
    /// it ended.
    pub fn wait_daemon_exit(&mut self) -> ExitStatus {
        let mut c = self.daemon.take().expect("daemon not running");
        match cmd::wait_child(&mut c, EXIT_TIMEOUT) {
            Some(s) => s,
            None => {
                cmd::kill_pid(c.id(), libc::SIGKILL);
                let _ = cmd::wait_child(&mut c, EXIT_TIMEOUT);
                panic!(
                    "daemon did not exit by itself within {EXIT_TIMEOUT:?}\n{}",
                    self.log_text()
                );
            }
        }
    }

    /// SIGTERM, then start again (with the same arguments).
    pub fn restart(&mut self) {
        self.stop();
        self.start_daemon();
    }

    /// The daemon log so far, framed for a panic message.
    pub fn log_text(&self) -> String {
        self.log_shown.set(true);
        cmd::log_tail(&self.log, "daemon", 300, |_| true)
    }

    /// Runs a command on the test machine, panicking with context if it fails.
    pub fn must(&self, argv: &[&str]) -> String {
        let r = run(argv[0], &argv[1..]);
        assert!(r.success(), "{r}");
        r.stdout
    }

    // ---- CLI ----

    /// `netd --socket <socket> args...`, bounded; the raw result.
    pub fn netd_run(&self, args: &[&str]) -> Run {
        let socket = self.socket.to_str().expect("utf-8 socket path");
        let mut argv = vec!["--socket", socket];
        argv.extend_from_slice(args);
        run_timeout(
            self.bin.to_str().expect("utf-8 binary path"),
            &argv,
            &[],
            cmd::CMD_TIMEOUT,
        )
    }

    /// `netd --socket <socket> args...` as a `std::process::Output`.
    pub fn netd(&self, args: &[&str]) -> Output {
        self.netd_run(args).into_output()
    }

    /// Runs the CLI and panics (with the daemon log) unless it exits 0; returns stdout.
    pub fn netd_ok(&self, args: &[&str]) -> String {
        let r = self.netd_run(args);
        assert!(r.success(), "netd CLI failed: {r}\n{}", self.log_text());
        r.stdout
    }

    /// Runs the CLI expecting a refusal: exit 1 and exactly one stderr line starting with
    /// `Error`; panics with `why`, the result and the daemon log otherwise.
    pub fn netd_refused(&self, args: &[&str], why: &str) -> Run {
        let r = self.netd_run(args);
        let lines = r.stderr_lines();
        assert!(
            r.code == Some(1)
                && lines.len() == 1
                && lines[0].starts_with("Error")
                && r.stdout.trim().is_empty(),
            "{why}: want exit 1 and one `Error...` line on stderr, got {r}\n{}",
            self.log_text()
        );
        r
    }

    /// `network ls --format json`, one object per line.
    pub fn ls_json(&self) -> Vec<Value> {
        let out = self.netd_ok(&["network", "ls", "--format", "json"]);
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("`network ls --format json` line {l:?}: {e}"))
            })
            .collect()
    }

    /// Names of all networks, in `ls` order.
    pub fn network_names(&self) -> Vec<String> {
        self.ls_json()
            .iter()
            .map(|v| v["Name"].as_str().expect("ls json has Name").to_string())
            .collect()
    }

    /// `network inspect NAME`, the single element of the array.
    pub fn inspect(&self, name: &str) -> Value {
        let mut arr = self.inspect_many(&[name]);
        assert_eq!(arr.len(), 1, "inspect {name} returned {arr:?}");
        arr.remove(0)
    }

    /// `network inspect NAME...`.
    pub fn inspect_many(&self, names: &[&str]) -> Vec<Value> {
        let mut args = vec!["network", "inspect"];
        args.extend_from_slice(names);
        let out = self.netd_ok(&args);
        match serde_json::from_str(&out) {
            Ok(Value::Array(a)) => a,
            other => {
                panic!("`netd network inspect {names:?}` is not a JSON array: {other:?}\n{out}")
            }
        }
    }

    /// `network inspect` of every network, in `ls` order.
    pub fn inspect_all(&self) -> Vec<Value> {
        let names = self.network_names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.inspect_many(&refs)
    }

    /// `stats --format json`.
    pub fn stats(&self) -> Vec<Value> {
        let out = self.netd_ok(&["stats", "--format", "json"]);
        match serde_json::from_str(&out) {
            Ok(Value::Array(a)) => a,
            other => panic!("`netd stats --format json` is not a JSON array: {other:?}\n{out}"),
        }
    }

    /// Packets counted for `network`/`kind`/`reason` (0 when the row is absent).
    pub fn stat(&self, network: &str, kind: &str, reason: &str) -> u64 {
        stat_in(&self.stats(), network, kind, reason)
    }

    /// `sandbox ls --format json`.
    pub fn sandboxes(&self) -> Vec<Value> {
        let out = self.netd_ok(&["sandbox", "ls", "--format", "json"]);
        match serde_json::from_str(&out) {
            Ok(Value::Array(a)) => a,
            other => {
                panic!("`netd sandbox ls --format json` is not a JSON array: {other:?}\n{out}")
            }
        }
    }

    /// `network create --subnet <subnet n> [extra...] NAME`; returns the id.
    pub fn create_network(&self, name: &str, n: u8, extra: &[&str]) -> String {
        let subnet = self.subnet(n);
        let mut args = vec!["network", "create", "--subnet", &subnet];
        args.extend_from_slice(extra);
        args.push(name);
        let id = self.netd_ok(&args).trim().to_string();
        assert!(
            id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "contract: `network create` prints the 64-hex id, got {id:?}"
        );
        id
    }

    /// `sandbox create <id>-<name>`; returns the full netns name.
    pub fn sandbox(&self, name: &str) -> String {
        self.sandbox_with(name, &[])
    }

    /// `sandbox create [extra...] <id>-<name>` (e.g. `--network host`); returns the full
    /// netns name.
    pub fn sandbox_with(&self, name: &str, extra: &[&str]) -> String {
        let full = format!("{}-{name}", self.id);
        let mut args = vec!["sandbox", "create"];
        args.extend_from_slice(extra);
        args.push(&full);
        let out = self.netd_ok(&args);
        assert_eq!(
            out.trim(),
            full,
            "contract: `sandbox create NAME` prints NAME"
        );
        assert!(
            Path::new("/run/netns").join(&full).exists(),
            "contract: `sandbox create {full}` creates /run/netns/{full}"
        );
        full
    }

    /// `network connect [extra...] NET SANDBOX`; returns the sandbox's IPv4 (no prefix).
    pub fn connect(&self, net: &str, sandbox: &str, extra: &[&str]) -> String {
        let mut args = vec!["network", "connect"];
        args.extend_from_slice(extra);
        args.push(net);
        args.push(sandbox);
        let out = self.netd_ok(&args);
        assert_eq!(out, "", "contract: `network connect` prints nothing");
        self.ip_of(net, sandbox)
    }

    /// `network disconnect NET SANDBOX`.
    pub fn disconnect(&self, net: &str, sandbox: &str) {
        let out = self.netd_ok(&["network", "disconnect", net, sandbox]);
        assert_eq!(out, "", "contract: `network disconnect` prints nothing");
    }

    /// The `Containers` entry of `sandbox` in `net`, if attached.
    pub fn endpoint(&self, net: &str, sandbox: &str) -> Option<Value> {
        let inspect = self.inspect(net);
        let containers = inspect["Containers"]
            .as_object()
            .unwrap_or_else(|| panic!("inspect {net}: Containers is not an object: {inspect}"));
        containers
            .values()
            .find(|c| c["Name"].as_str() == Some(sandbox))
            .cloned()
    }

    /// IPv4 of `sandbox` in `net` (from inspect, prefix length stripped).
    pub fn ip_of(&self, net: &str, sandbox: &str) -> String {
        let ep = self.endpoint(net, sandbox).unwrap_or_else(|| {
            panic!(
                "inspect {net}: no Containers entry with Name {sandbox}: {}",
                self.inspect(net)
            )
        });
        let cidr = check::ipv4_address(&ep);
        cidr.split('/').next().unwrap_or_default().to_string()
    }

    /// Gateway of `net` from inspect.
    pub fn gateway_of(&self, net: &str) -> String {
        let v = self.inspect(net);
        v["IPAM"]["Config"][0]["Gateway"]
            .as_str()
            .unwrap_or_else(|| panic!("inspect {net}: IPAM.Config[0].Gateway missing: {v}"))
            .to_string()
    }

    // ---- namespaces ----

    /// `timeout 10 ip netns exec NS argv...` (bounded again on our side).
    pub fn exec_in(&self, ns: &str, argv: &[&str]) -> Run {
        let mut args = vec!["-k", "2", "10", "ip", "netns", "exec", ns];
        args.extend_from_slice(argv);
        run_timeout("timeout", &args, &[], Duration::from_secs(15))
    }

    /// `bash -c script` inside `ns`.
    pub fn sh_in(&self, ns: &str, script: &str) -> Run {
        self.exec_in(ns, &["bash", "-c", script])
    }

    /// `ping -c 2 -W 1` from `ns`; true if any reply came back.
    pub fn ping(&self, from_ns: &str, ip: &str) -> bool {
        self.exec_in(
            from_ns,
            &["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", ip],
        )
        .success()
    }

    /// Panics with context unless `from_ns` reaches `ip`.
    pub fn assert_ping(&self, from_ns: &str, ip: &str, why: &str) {
        if !self.ping(from_ns, ip) {
            let diag = self.diagnostics(&[from_ns]);
            panic!(
                "{why}: ping {from_ns} -> {ip} failed\n{diag}\n{}",
                self.log_text()
            );
        }
    }

    /// Panics with context if `from_ns` reaches `ip`.
    pub fn assert_no_ping(&self, from_ns: &str, ip: &str, why: &str) {
        if self.ping(from_ns, ip) {
            panic!("{why}: ping {from_ns} -> {ip} succeeded but must not");
        }
    }

    /// Pinned maps of this daemon.
    pub fn maps(&self) -> maps::PinnedMaps {
        maps::PinnedMaps::new(&self.bpffs)
    }

    /// A raw HTTP request on the daemon's socket.
    pub fn api(&self, raw_request: &str) -> api::Response {
        api::request(&self.socket, raw_request)
    }
}

impl Default for TestHost {
    fn default() -> Self {
        TestHost::new()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.log_shown.get() {
            eprintln!("test {} failed; {}", self.id, self.log_text());
        }
        if let Some(mut c) = self.daemon.take() {
            cmd::kill_pid(c.id(), libc::SIGKILL);
            let _ = cmd::wait_child(&mut c, EXIT_TIMEOUT);
        }
        cleanup(&self.id);
        // A killed daemon leaves its plugin socket, which may be outside the scratch dir.
        let _ = std::fs::remove_file(&self.docker_plugin_socket);
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// Packets of the `network`/`kind`/`reason` row in a `stats --format json` array.
pub fn stat_in(stats: &[Value], network: &str, kind: &str, reason: &str) -> u64 {
    stats
        .iter()
        .filter(|e| {
            e["Network"].as_str() == Some(network)
                && e["Kind"].as_str() == Some(kind)
                && e["Reason"].as_str() == Some(reason)
        })
        .map(|e| e["Packets"].as_u64().unwrap_or(0))
        .sum()
}
