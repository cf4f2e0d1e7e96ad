//! CNI: the `netd-cni` plugin binary run the way a container runtime runs it (environment
//! variables, network configuration on stdin, result or error JSON on stdout), and podman
//! 4.3 with its CNI backend driving the same plugin.
//!
//! Both run inside the test's host netns (`nsenter --net`), never in the machine's root
//! netns: a runtime executes plugins "in the runtime's networking domain", and podman
//! holds every published host port open in `conmon` (a port reservation), which must
//! happen in the test's namespace. The container netns themselves are made by the test
//! (`ip netns add <id>-...`, removed by the harness) or by podman (`/run/netns/netns-<uuid>`,
//! removed by `podman rm` and, failing that, by [`Podman`]'s drop).
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{cmd, run, run_timeout, Run, TestHost};

/// Deadline of one plugin invocation.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(20);
/// The CNI versions netd's plugin speaks (contract of issue 6).
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The plugin's `type` in network configurations: the binary's name in a CNI plugin dir.
pub const PLUGIN_TYPE: &str = "netd";
/// The image every podman test runs: the busybox rootfs tarball, imported.
pub const IMAGE: &str = "netd-busybox";
/// Deadline of one podman command (a `run` pulls nothing, but starts conmon and runc).
const PODMAN_TIMEOUT: Duration = Duration::from_secs(90);
/// libcni's cache of ADD results (podman 4.3 does not move it).
const CNI_CACHE: &str = "/var/lib/cni/results";

/// The `netd-cni` binary under test: `$NETD_CNI_BIN`, else next to the `netd` binary
/// under test (`$NETD_BIN` or the workspace build).
pub fn cni_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NETD_CNI_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "NETD_CNI_BIN={} is not a file", p.display());
        return p;
    }
    let netd = super::netd_bin();
    let p = netd.with_file_name("netd-cni");
    assert!(
        p.is_file(),
        "no CNI plugin binary at {} (next to {}): build it with `cargo build --release -p netd` or set NETD_CNI_BIN",
        p.display(),
        netd.display()
    );
    p
}

/// The environment of one plugin invocation: exactly these `CNI_*` variables are set,
/// every inherited `CNI_*` variable is removed.
#[derive(Clone, Debug, Default)]
pub struct CniEnv {
    vars: Vec<(String, String)>,
}

impl CniEnv {
    /// `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, plus `CNI_ARGS`
    /// (`IgnoreUnknown=1`, as podman sends) and `CNI_PATH` (the plugin's directory).
    pub fn attachment(command: &str, container_id: &str, netns: &str, ifname: &str) -> CniEnv {
        CniEnv::command(command)
            .set("CNI_CONTAINERID", container_id)
            .set("CNI_NETNS", netns)
            .set("CNI_IFNAME", ifname)
            .set("CNI_ARGS", "IgnoreUnknown=1")
    }

    /// Only `CNI_COMMAND` (and `CNI_PATH`, which GC requires): VERSION, STATUS, GC.
    pub fn command(command: &str) -> CniEnv {
        let dir = cni_bin()
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        CniEnv::default()
            .set("CNI_COMMAND", command)
            .set("CNI_PATH", &dir)
    }

    /// Sets (or replaces) a variable.
    pub fn set(mut self, key: &str, value: &str) -> CniEnv {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_string(), value.to_string()));
        self
    }

    /// Removes a variable.
    pub fn unset(mut self, key: &str) -> CniEnv {
        self.vars.retain(|(k, _)| k != key);
        self
    }

    /// The value of a variable, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for CniEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{}", parts.join(" "))
    }
}

/// One finished plugin invocation.
#[derive(Clone)]
pub struct CniResult {
    pub env: CniEnv,
    pub stdin: String,
    pub run: Run,
    /// stdout parsed as one JSON value (`None` if empty or not JSON).
    pub json: Option<Value>,
    pub elapsed: Duration,
}

impl CniResult {
    /// Exit 0 within the deadline.
    pub fn success(&self) -> bool {
        self.run.success()
    }

    /// The error's `code`, if stdout is an error object.
    pub fn code(&self) -> Option<u64> {
        self.json.as_ref().and_then(|v| v["code"].as_u64())
    }

    /// stdout is empty (what DEL, CHECK, GC and STATUS print on success).
    pub fn stdout_empty(&self) -> bool {
        self.run.stdout.trim().is_empty()
    }

    /// Text that must never be on stderr: a Rust panic or a backtrace.
    pub fn panicked(&self) -> bool {
        let e = &self.run.stderr;
        e.contains("panicked at") || e.contains("RUST_BACKTRACE") || e.contains("stack backtrace")
    }
}

impl fmt::Display for CniResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin run with [{}] (took {:?})\n--- stdin ---\n{}\n{}",
            self.env, self.elapsed, self.stdin, self.run
        )
    }
}

impl fmt::Debug for CniResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Runs the plugin with exactly `env`'s `CNI_*` variables and `stdin`, inside netns
/// `/run/netns/<netns>` if given (else where the test runs), bounded by `timeout`.
pub fn exec_plugin(netns: Option<&str>, env: &CniEnv, stdin: &str, timeout: Duration) -> CniResult {
    let bin = cni_bin();
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("--").arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CNI_") {
            command.env_remove(&k);
        }
    }
    for (k, v) in &env.vars {
        command.env(k, v);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let line = format!(
        "{}{}",
        netns
            .map(|n| format!("nsenter --net=/run/netns/{n} -- "))
            .unwrap_or_default(),
        bin.display()
    );
    let start = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.as_bytes().to_vec();
    // A plugin that never reads stdin must not block us: write on a thread.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let run = cmd::wait_output(child, line, timeout);
    let elapsed = start.elapsed();
    let _ = writer.join();
    let json = serde_json::from_str::<Value>(run.stdout.trim()).ok();
    CniResult {
        env: env.clone(),
        stdin: stdin.to_string(),
        run,
        json,
        elapsed,
    }
}

/// Shallow merge: every key of `extra` (an object) replaces the one in `base`.
pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// The index into an ADD result's `interfaces` of the container's interface (the one
/// with a `sandbox`).
pub fn sandbox_interface(result: &Value) -> Option<usize> {
    result["interfaces"].as_array().and_then(|a| {
        a.iter()
            .position(|i| i["sandbox"].as_str().is_some_and(|s| !s.is_empty()))
    })
}

impl TestHost {
    /// A container netns made the way a runtime makes one: `ip netns add <id>-<name>`
    /// with lo up (the harness removes it). Returns `(name, /run/netns/<name>)`.
    pub fn cni_netns(&self, name: &str) -> (String, String) {
        let full = format!("{}-{name}", self.id);
        self.must(&["ip", "netns", "add", &full]);
        self.must(&["ip", "-n", &full, "link", "set", "lo", "up"]);
        let path = format!("/run/netns/{full}");
        (full, path)
    }

    /// A plugin configuration for network `name` of this test's daemon:
    /// `{"cniVersion", "name", "type": "netd", "socket": <daemon socket>}` plus `extra`'s
    /// keys.
    pub fn cni_conf(&self, version: &str, name: &str, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": version,
            "name": name,
            "type": PLUGIN_TYPE,
            "socket": self.socket.display().to_string(),
        });
        merge(&mut conf, extra);
        conf
    }

    /// Runs the plugin in the host netns with `env` and `stdin` ([`PLUGIN_TIMEOUT`]).
    pub fn cni_raw(&self, env: &CniEnv, stdin: &str) -> CniResult {
        exec_plugin(Some(&self.host_ns), env, stdin, PLUGIN_TIMEOUT)
    }

    /// Runs the plugin with `conf` serialized on stdin.
    pub fn cni(&self, env: &CniEnv, conf: &Value) -> CniResult {
        self.cni_raw(env, &conf.to_string())
    }

    /// ADD `container_id`/`ifname` in `netns_path`; panics (with the daemon log) unless
    /// it succeeds with a JSON result, which it returns.
    pub fn cni_add(
        &self,
        conf: &Value,
        container_id: &str,
        netns_path: &str,
        ifname: &str,
    ) -> Value {
        let r = self.cni(
            &CniEnv::attachment("ADD", container_id, netns_path, ifname),
            conf,
        );
        match (&r.json, r.success()) {
            (Some(v), true) => v.clone(),
            _ => panic!("CNI ADD failed: {r}\n{}", self.log_text()),
        }
    }

    /// DEL `container_id`/`ifname` (`prev_result` inserted as `prevResult` if given);
    /// panics unless it exits 0.
    pub fn cni_del(
        &self,
        conf: &Value,
        container_id: &str,
        netns_path: &str,
        ifname: &str,
        prev_result: Option<&Value>,
    ) -> CniResult {
        let mut conf = conf.clone();
        if let Some(p) = prev_result {
            merge(&mut conf, json!({ "prevResult": p }));
        }
        let r = self.cni(
            &CniEnv::attachment("DEL", container_id, netns_path, ifname),
            &conf,
        );
        assert!(r.success(), "CNI DEL failed: {r}\n{}", self.log_text());
        r
    }

    /// The `Containers` entry of `network` whose `ContainerID` is `container_id` (and
    /// `Interface` is `ifname`, if given).
    pub fn cni_endpoint(
        &self,
        network: &str,
        container_id: &str,
        ifname: Option<&str>,
    ) -> Option<Value> {
        let v = self.inspect(network);
        v["Containers"].as_object().and_then(|m| {
            m.values()
                .find(|c| {
                    c["ContainerID"].as_str() == Some(container_id)
                        && ifname.is_none_or(|i| c["Interface"].as_str() == Some(i))
                })
                .cloned()
        })
    }
}

/// What a detached podman container is, as the tests need it.
#[derive(Clone, Debug)]
pub struct Container {
    pub name: String,
    /// The 64-hex id: CNI_CONTAINERID of its attachments.
    pub id: String,
    /// Its netns name in /run/netns (`netns-<uuid>`), made by podman.
    pub netns: String,
    /// The IPv4 address podman reports for its first network.
    pub ip: String,
}

/// podman 4.3 with private storage and its CNI backend, every command run in the test's
/// host netns:
/// `CONTAINERS_CONF=<dir>/containers.conf podman --root <dir>/root --runroot <dir>/run
///  --tmpdir <dir>/tmp --storage-driver vfs --network-backend cni
///  --network-config-dir <dir>/net --cgroup-manager cgroupfs --events-backend none`.
///
/// The private `containers.conf` (it replaces the system's files) sets
/// `default_ulimits = []` and `cni_plugin_dirs = [<dir>/plugins]`, which holds only
/// `netd` -> the `netd-cni` under test. `vfs` storage mounts nothing that could outlive a
/// test. Drop it before its [`TestHost`].
pub struct Podman {
    pub dir: PathBuf,
    host_ns: String,
    socket: PathBuf,
    /// The CNI network configuration directory (`--network-config-dir`).
    pub net_dir: PathBuf,
    /// Networks whose conflist this helper wrote (their libcni cache entries go on drop).
    networks: std::cell::RefCell<Vec<String>>,
    /// Everything started, for the drop: (id, conmon pid, netns name).
    started: std::cell::RefCell<Vec<(String, u32, String)>>,
}

impl Podman {
    /// Private podman state for `h` with the busybox image imported as [`IMAGE`].
    pub fn new(h: &TestHost) -> Podman {
        let dir = h.tmp.join("p");
        let _ = std::fs::remove_dir_all(&dir);
        let net_dir = dir.join("net");
        let plugins = dir.join("plugins");
        for d in [&dir, &net_dir, &plugins] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        let bin = cni_bin();
        std::os::unix::fs::symlink(&bin, plugins.join(PLUGIN_TYPE))
            .unwrap_or_else(|e| panic!("symlink {}: {e}", bin.display()));
        let conf = format!(
            "[containers]\ndefault_ulimits = []\n\n[network]\nnetwork_backend = \"cni\"\n\
             cni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n\n[engine]\n\
             events_logger = \"none\"\n",
            plugins.display(),
            net_dir.display()
        );
        std::fs::write(dir.join("containers.conf"), conf).expect("write containers.conf");
        let p = Podman {
            dir,
            host_ns: h.host_ns.clone(),
            socket: h.socket.clone(),
            net_dir,
            networks: Default::default(),
            started: Default::default(),
        };
        let tar = busybox_tar();
        p.ok(&["import", &tar, IMAGE]);
        p
    }

    fn global_args(&self) -> Vec<String> {
        let d = |s: &str| self.dir.join(s).display().to_string();
        let mut v: Vec<String> = vec!["--root".into(), d("root"), "--runroot".into(), d("run")];
        v.extend(["--tmpdir".into(), d("tmp")]);
        v.extend(["--storage-driver".into(), "vfs".into()]);
        v.extend(["--network-backend".into(), "cni".into()]);
        v.extend([
            "--network-config-dir".into(),
            self.net_dir.display().to_string(),
        ]);
        v.extend(["--cgroup-manager".into(), "cgroupfs".into()]);
        v.extend(["--events-backend".into(), "none".into()]);
        v
    }

    /// `podman <global args> args...` in the host netns, bounded.
    pub fn run(&self, args: &[&str]) -> Run {
        let conf = self.dir.join("containers.conf").display().to_string();
        let ns = format!("--net=/run/netns/{}", self.host_ns);
        let global = self.global_args();
        let mut argv: Vec<&str> = vec![&ns, "--", "podman"];
        argv.extend(global.iter().map(String::as_str));
        argv.extend_from_slice(args);
        run_timeout(
            "nsenter",
            &argv,
            &[("CONTAINERS_CONF", conf.as_str())],
            PODMAN_TIMEOUT,
        )
    }

    /// [`Podman::run`], panicking unless it exits 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(r.success(), "podman failed: {r}");
        r.stdout
    }

    /// Writes `<net_dir>/<name>.conflist`: cniVersion 1.0.0 (podman 4.3's libcni speaks
    /// up to 1.0.0) with one plugin, `{"type": "netd", "socket": <daemon socket>}` plus
    /// `extra`'s keys.
    pub fn add_network(&self, name: &str, extra: Value) -> Value {
        let mut plugin = json!({
            "type": PLUGIN_TYPE,
            "socket": self.socket.display().to_string(),
        });
        merge(&mut plugin, extra);
        let list = json!({"cniVersion": "1.0.0", "name": name, "plugins": [plugin]});
        let path = self.net_dir.join(format!("{name}.conflist"));
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&list).unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self.networks.borrow_mut().push(name.to_string());
        list
    }

    /// `podman run -d --name NAME --network NETWORK extra... netd-busybox cmd...`; the
    /// container's main process must end by itself within minutes (e.g. `sleep 300`) so
    /// a killed test leaves nothing running for long.
    pub fn start(&self, name: &str, network: &str, extra: &[&str], cmd: &[&str]) -> Container {
        let mut args = vec!["run", "-d", "--name", name, "--network", network];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        let r = self.run(&args);
        // Record it even if run failed half-way, for the drop.
        let v = self.try_inspect(name);
        if let Some(v) = &v {
            let id = v["Id"].as_str().unwrap_or_default().to_string();
            let conmon = v["State"]["ConmonPid"].as_u64().unwrap_or(0) as u32;
            let netns = netns_name(v);
            self.started.borrow_mut().push((id, conmon, netns));
        }
        assert!(r.success(), "podman run failed: {r}");
        let v = v.unwrap_or_else(|| panic!("podman inspect {name} failed after run"));
        let ip = v["NetworkSettings"]["Networks"][network]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Container {
            name: name.to_string(),
            id: v["Id"].as_str().unwrap_or_default().to_string(),
            netns: netns_name(&v),
            ip,
        }
    }

    /// `podman inspect NAME`, the single object, if podman knows it.
    pub fn try_inspect(&self, name: &str) -> Option<Value> {
        let r = self.run(&["inspect", "--type", "container", name]);
        if !r.success() {
            return None;
        }
        match serde_json::from_str(&r.stdout) {
            Ok(Value::Array(mut a)) if a.len() == 1 => Some(a.remove(0)),
            _ => None,
        }
    }

    /// `podman exec NAME argv...`, bounded.
    pub fn exec(&self, name: &str, argv: &[&str]) -> Run {
        let mut args = vec!["exec", name];
        args.extend_from_slice(argv);
        self.run(&args)
    }

    /// `podman rm -f -t 0 NAME`: the container's network is torn down (CNI DEL).
    pub fn rm(&self, name: &str) -> Run {
        self.run(&["rm", "-f", "-t", "0", name])
    }
}

/// The netns name (in /run/netns) of a podman container from its inspect object.
fn netns_name(v: &Value) -> String {
    v["NetworkSettings"]["SandboxKey"]
        .as_str()
        .and_then(|p| p.strip_prefix("/run/netns/"))
        .unwrap_or_default()
        .to_string()
}

impl Drop for Podman {
    fn drop(&mut self) {
        let r = self.run(&["rm", "-f", "-t", "0", "-a"]);
        if !r.success() {
            eprintln!("podman cleanup: {r}");
        }
        let me = self.dir.display().to_string();
        for (id, conmon, netns) in self.started.borrow().iter() {
            // A conmon still alive that is one of ours (its command line names our dirs).
            if *conmon > 0 {
                let cmdline = std::fs::read(format!("/proc/{conmon}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&me) {
                    eprintln!(
                        "podman cleanup: conmon {conmon} of {id} survived `rm -f`; killing it"
                    );
                    cmd::kill_pid(*conmon, libc::SIGKILL);
                }
            }
            if netns.starts_with("netns-") && Path::new("/run/netns").join(netns).exists() {
                let r = run("ip", &["netns", "delete", netns]);
                if !r.success() {
                    eprintln!("podman cleanup: {r}");
                }
            }
            for net in self.networks.borrow().iter() {
                for ifname in ["eth0", "eth1", "eth2"] {
                    let _ = std::fs::remove_file(
                        Path::new(CNI_CACHE).join(format!("{net}-{id}-{ifname}")),
                    );
                }
            }
        }
        // vfs mounts nothing, but a container's shm or a half-done run might.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&me))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = run("umount", &["-l", m]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The busybox rootfs tarball that `cargo xtask install` builds.
fn busybox_tar() -> String {
    let tar = super::engines::BUSYBOX_TAR;
    assert!(
        Path::new(tar).is_file(),
        "no busybox image tarball at {tar}: run `cargo xtask install` (it builds it from busybox-static)"
    );
    tar.to_string()
}
