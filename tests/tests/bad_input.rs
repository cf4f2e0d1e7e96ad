//! "Bad input gets a clear, one-line error, a non-zero exit, and changes nothing", and the
//! daemon stays up through all of it. Each table runs every case and reports all
//! failures at once.
use netd_tests::harness::api;
use netd_tests::harness::check::{assert_consistent, snapshot};
use netd_tests::harness::netns::{hold_tcp_listener, hold_udp_socket};
use netd_tests::harness::TestHost;
use serde_json::Value;

/// A daemon with a network `used` (sandbox `a` attached), a network `ranged` with an
/// `--ip-range`, and an unattached sandbox `b`.
struct World {
    h: TestHost,
    a: String,
    b: String,
    ip_a: String,
}

fn world() -> World {
    let h = TestHost::started();
    h.create_network("used", 1, &[]);
    let range = format!("{}/25", h.addr(2, 128));
    h.create_network("ranged", 2, &["--ip-range", &range]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    let ip_a = h.connect("used", &a, &[]);
    World { h, a, b, ip_a }
}

/// Runs every `(description, argv)` case; each must fail with one `Error...` line and exit
/// 1, leave the whole state unchanged, and leave the daemon running.
fn run_cases(w: &mut World, cases: &[(&str, Vec<String>)]) {
    run_cases_on(&mut w.h, cases, snapshot);
}

/// [`run_cases`] on any daemon, with `state` as what must not change.
fn run_cases_on(h: &mut TestHost, cases: &[(&str, Vec<String>)], state: fn(&TestHost) -> Value) {
    let before = state(h);
    let mut failures = Vec::new();
    for (what, argv) in cases {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let r = h.netd_run(&args);
        let lines = r.stderr_lines();
        let mut problems = Vec::new();
        if r.code != Some(1) {
            problems.push(format!("exit code {:?}, want 1", r.code));
        }
        if lines.len() != 1 {
            problems.push(format!("{} stderr lines, want exactly 1", lines.len()));
        }
        if !lines.first().is_some_and(|l| {
            l.starts_with("Error response from daemon: ") || l.starts_with("Error: ")
        }) {
            problems
                .push("stderr must start with `Error response from daemon: ` or `Error: `".into());
        }
        if !h.daemon_alive() {
            failures.push(format!(
                "[{what}] `netd {}` KILLED THE DAEMON: {r}",
                args.join(" ")
            ));
            h.start_daemon();
            continue;
        }
        let after = state(h);
        if after != before {
            problems.push(format!(
                "state changed:\n--- before ---\n{}\n--- after ---\n{}",
                serde_json::to_string_pretty(&before).unwrap(),
                serde_json::to_string_pretty(&after).unwrap()
            ));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{what}] `netd {}`: {}\n{r}",
                args.join(" "),
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not handled per the issue/contract:\n\n{}\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n"),
        h.log_text()
    );
    assert_consistent(h);
}

fn case(what: &'static str, argv: &[&str]) -> (&'static str, Vec<String>) {
    (what, argv.iter().map(|s| s.to_string()).collect())
}

#[test]
fn bad_network_create_is_refused_and_changes_nothing() {
    let mut w = world();
    let h = &w.h;
    let free = h.subnet(9);
    let s = |n: u8, host: u8, len: u8| format!("{}/{len}", h.addr(n, host));
    let wide = h.supernet();
    let cases = vec![
        case(
            "overlapping subnet: identical",
            &["network", "create", "--subnet", &h.subnet(1), "dup"],
        ),
        case(
            "overlapping subnet: contains an existing one",
            &["network", "create", "--subnet", &wide, "wide"],
        ),
        case(
            "overlapping subnet: inside an existing one",
            &["network", "create", "--subnet", &s(1, 128, 25), "inner"],
        ),
        case(
            "overlapping the predefined bridge",
            &["network", "create", "--subnet", &h.subnet(0), "br2"],
        ),
        case(
            "malformed CIDR: prefix /33",
            &["network", "create", "--subnet", &s(9, 0, 33), "x"],
        ),
        case(
            "malformed CIDR: not an address",
            &["network", "create", "--subnet", "banana", "x"],
        ),
        case(
            "malformed CIDR: no prefix",
            &["network", "create", "--subnet", "10.1.2", "x"],
        ),
        case(
            "subnet with host bits set (docker refuses)",
            &["network", "create", "--subnet", &s(9, 1, 24), "x"],
        ),
        case(
            "gateway outside the subnet",
            &[
                "network",
                "create",
                "--subnet",
                &free,
                "--gateway",
                &h.addr(10, 1),
                "x",
            ],
        ),
        case(
            "malformed gateway",
            &[
                "network",
                "create",
                "--subnet",
                &free,
                "--gateway",
                "10.1.2.300",
                "x",
            ],
        ),
        case(
            "ip-range outside the subnet",
            &[
                "network",
                "create",
                "--subnet",
                &free,
                "--ip-range",
                &s(10, 0, 25),
                "x",
            ],
        ),
        case(
            "ip-range larger than the subnet",
            &[
                "network",
                "create",
                "--subnet",
                &s(9, 0, 25),
                "--ip-range",
                &free,
                "x",
            ],
        ),
        case(
            "aux-address outside the subnet",
            &[
                "network",
                "create",
                "--subnet",
                &free,
                "--aux-address",
                &format!("r={}", h.addr(10, 5)),
                "x",
            ],
        ),
        case(
            "duplicate network name",
            &["network", "create", "--subnet", &free, "used"],
        ),
        case(
            "duplicate of a predefined name",
            &["network", "create", "--subnet", &free, "bridge"],
        ),
        case(
            "contract: a second host-driver network",
            &["network", "create", "-d", "host", "x"],
        ),
        case(
            "contract: a second null-driver network",
            &["network", "create", "-d", "null", "x"],
        ),
        case(
            "unsupported driver",
            &["network", "create", "-d", "macvlan", "--subnet", &free, "x"],
        ),
        case(
            "unknown -o key (only the three documented keys are accepted)",
            &[
                "network",
                "create",
                "--subnet",
                &free,
                "-o",
                "com.example.bogus=1",
                "x",
            ],
        ),
        case(
            "enable_icc not a boolean",
            &[
                "network",
                "create",
                "--subnet",
                &free,
                "-o",
                "com.docker.network.bridge.enable_icc=maybe",
                "x",
            ],
        ),
    ];
    run_cases(&mut w, &cases);
}

#[test]
fn bad_connect_rm_and_names_are_refused_and_change_nothing() {
    let mut w = world();
    let h = &w.h;
    let (a, b) = (w.a.clone(), w.b.clone());
    let gw = h.gateway_of("used");
    let missing_ns = format!("{}-nosuch", h.id);
    let cases = vec![
        case(
            "static IP in use",
            &["network", "connect", "--ip", &w.ip_a, "used", &b],
        ),
        case(
            "static IP is the gateway",
            &["network", "connect", "--ip", &gw, "used", &b],
        ),
        case(
            "static IP outside the subnet",
            &["network", "connect", "--ip", &h.addr(9, 5), "used", &b],
        ),
        case(
            "static IP malformed",
            &["network", "connect", "--ip", "10.1.1.300", "used", &b],
        ),
        case(
            "unknown network: connect",
            &["network", "connect", "nosuch", &b],
        ),
        case(
            "unknown network: disconnect",
            &["network", "disconnect", "nosuch", &a],
        ),
        case(
            "unknown network: inspect",
            &["network", "inspect", "nosuch"],
        ),
        case("unknown network: rm", &["network", "rm", "nosuch"]),
        case(
            "unknown netns: name",
            &["network", "connect", "used", &missing_ns],
        ),
        case(
            "unknown netns: path",
            &["network", "connect", "used", "/proc/999999999/ns/net"],
        ),
        case(
            "netns path that is not a netns",
            &["network", "connect", "used", "/etc/hostname"],
        ),
        case("already connected", &["network", "connect", "used", &a]),
        case(
            "disconnect of a sandbox not on the network",
            &["network", "disconnect", "used", &b],
        ),
        case("rm of a network with endpoints", &["network", "rm", "used"]),
        case("rm of predefined bridge", &["network", "rm", "bridge"]),
        case("rm of predefined host", &["network", "rm", "host"]),
        case("rm of predefined none", &["network", "rm", "none"]),
        case("connect to host", &["network", "connect", "host", &b]),
        case("connect to none", &["network", "connect", "none", &b]),
        case(
            "sandbox create of an existing name",
            &["sandbox", "create", &a],
        ),
        case(
            "sandbox rm of an unknown name",
            &["sandbox", "rm", &missing_ns],
        ),
    ];
    run_cases(&mut w, &cases);
}

#[test]
fn client_side_errors_are_one_line() {
    let h = TestHost::started();
    // A daemon that is not there.
    let bogus = h.tmp.join("nobody.sock");
    let r = netd_tests::harness::run_timeout(
        h.bin.to_str().unwrap(),
        &["--socket", bogus.to_str().unwrap(), "network", "ls"],
        &[],
        std::time::Duration::from_secs(20),
    );
    assert_eq!(r.code, Some(1), "contract: a down daemon is exit 1: {r}");
    assert_eq!(r.stderr_lines().len(), 1, "one line: {r}");
    assert!(
        r.stderr.starts_with("Error: "),
        "contract: `Error: <message>`: {r}"
    );
    // clap usage errors exit 2.
    let r = h.netd_run(&["network", "frobnicate"]);
    assert_eq!(r.code, Some(2), "contract: clap usage errors exit 2: {r}");
}

/// (description, raw request, exact status, or 0 for any 4xx)
fn api_cases(h: &TestHost) -> Vec<(&'static str, String, u16)> {
    let post = |path: &str, body: &str| api::build("POST", path, body);
    let ns = format!("{}-b", h.id);
    vec![
        (
            "truncated JSON",
            post("/v1/networks", r#"{"Name": "x", "#),
            0,
        ),
        ("not JSON at all", post("/v1/networks", "not json"), 0),
        (
            "unknown field",
            post("/v1/networks", r#"{"Name":"x","Bogus":1}"#),
            0,
        ),
        ("wrong type", post("/v1/networks", r#"{"Name":17}"#), 0),
        ("missing Name", post("/v1/networks", "{}"), 0),
        ("empty Name", post("/v1/networks", r#"{"Name":""}"#), 0),
        (
            "bad CIDR in JSON",
            post("/v1/networks", r#"{"Name":"x","Subnet":"10.0.0.0/33"}"#),
            0,
        ),
        (
            "JSON array instead of object",
            post("/v1/networks", "[]"),
            0,
        ),
        (
            "connect: wrong type",
            post("/v1/networks/used/connect", r#"{"Netns":123}"#),
            0,
        ),
        (
            "connect: bad IP",
            post(
                "/v1/networks/used/connect",
                &format!(r#"{{"Netns":"{ns}","IPv4Address":"1.2.3"}}"#),
            ),
            0,
        ),
        (
            "sandbox: unknown field",
            post("/v1/sandboxes", r#"{"Name":"zz","Path":"/x"}"#),
            0,
        ),
        (
            "unknown network",
            api::build("GET", "/v1/networks/nosuch", ""),
            404,
        ),
        ("unknown route", api::build("GET", "/v1/nosuch", ""), 404),
        (
            "delete predefined",
            api::build("DELETE", "/v1/networks/bridge", ""),
            0,
        ),
    ]
}

#[test]
fn malformed_api_requests_get_4xx_with_a_message() {
    let w = world();
    let h = &w.h;
    let before = snapshot(h);
    let mut failures = Vec::new();
    for (what, raw, want) in api_cases(h) {
        let resp = h.api(&raw);
        let msg = resp.json().and_then(|v| match v {
            Value::Object(m) => m.get("Message").and_then(Value::as_str).map(str::to_string),
            _ => None,
        });
        let status_ok = if want == 0 {
            (400..500).contains(&resp.status)
        } else {
            resp.status == want
        };
        if !status_ok {
            failures.push(format!(
                "[{what}] status {}, want {}: {resp:?}",
                resp.status,
                if want == 0 {
                    "4xx".to_string()
                } else {
                    want.to_string()
                }
            ));
        }
        match msg {
            Some(m) if !m.trim().is_empty() && !m.contains('\n') => {}
            _ => failures.push(format!(
                "[{what}] contract: error replies are {{\"Message\": \"<one line>\"}}; got status {} body {:?}",
                resp.status, resp.body
            )),
        }
    }
    // Garbage that is not HTTP: no JSON expected, but the daemon must survive it.
    {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&h.socket).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let _ = s.write_all(b"\x00\x01garbage\r\n\r\n");
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    let after = snapshot(h);
    if after != before {
        failures.push(format!(
            "state changed:\n{}\n{}",
            serde_json::to_string_pretty(&before).unwrap(),
            serde_json::to_string_pretty(&after).unwrap()
        ));
    }
    assert!(
        failures.is_empty(),
        "malformed API requests:\n{}\n{}",
        failures.join("\n"),
        h.log_text()
    );
    assert_consistent(h);
}

/// The base snapshot plus what publishing changes: `port ls` and the conntrack table.
fn snapshot_with_ports(h: &TestHost) -> Value {
    let mut v = snapshot(h);
    v["ports"] = Value::Array(h.port_ls_json(None));
    v["conntrack"] = Value::Array(h.conntrack());
    v
}

#[test]
fn bad_port_publishing_is_refused_and_changes_nothing() {
    let (mut h, _o) = TestHost::with_uplink(&[]);
    h.create_network("used", 1, &[]);
    h.create_network("inner", 2, &["--internal"]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    h.connect("used", &a, &["-p", "8080:80/tcp", "-p", "8080:80/udp"]);
    // Host sockets already bound in the host netns.
    let _tcp_busy = hold_tcp_listener(&h.host_ns, "0.0.0.0:9090");
    let _udp_busy = hold_udp_socket(&h.host_ns, "0.0.0.0:9091");
    let _lo_busy = hold_tcp_listener(&h.host_ns, "127.0.0.1:9092");
    let p = |spec: &str| -> Vec<String> {
        ["network", "connect", "-p", spec, "used", b.as_str()]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("malformed -p: empty", p("")),
        ("malformed -p: not a port", p("http")),
        ("malformed -p: trailing colon", p("8081:")),
        ("malformed -p: leading colon", p(":80")),
        ("malformed -p: too many fields", p("1.2.3.4:8081:80:90")),
        (
            "malformed -p: host IP not an address",
            p("300.1.1.1:8081:80"),
        ),
        ("malformed -p: host IP a name", p("localhost:8081:80")),
        ("malformed -p: empty protocol", p("8081:80/")),
        ("malformed -p: inverted host range", p("8083-8081:80")),
        ("malformed -p: inverted container range", p("82-80")),
        (
            "malformed -p: negative port (value attached: `-p-80`)",
            ["network", "connect", "-p-80", "used", &b]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        ("container port 0", p("8081:0")),
        ("container port 0 alone", p("0")),
        ("host port 0 (contract: port 0 is refused)", p("0:80")),
        ("container port 65536", p("8081:65536")),
        ("host port 65536", p("65536:80")),
        ("container port 65536 alone", p("65536")),
        ("port 99999999999 (overflows u32 too)", p("99999999999:80")),
        (
            "ranges of different lengths (host shorter)",
            p("8081-8082:80-82"),
        ),
        (
            "ranges of different lengths (host longer)",
            p("8081-8083:80-81"),
        ),
        ("unknown protocol icmp", p("8081:80/icmp")),
        ("unknown protocol tcpx", p("8081:80/tcpx")),
        ("two protocols", p("8081:80/tcp/udp")),
        (
            "conflict: TCP host port already published by netd",
            p("8080:81"),
        ),
        (
            "conflict: UDP host port already published by netd",
            p("8080:81/udp"),
        ),
        (
            "conflict: already published, on 0.0.0.0 given explicitly",
            p("0.0.0.0:8080:81"),
        ),
        (
            "conflict: a range that covers a published port",
            p("8075-8085:8075-8085"),
        ),
        (
            "conflict: a host TCP socket listens on 9090 in the host netns",
            p("9090:80"),
        ),
        (
            "conflict: a host UDP socket is bound to 9091 in the host netns",
            p("9091:53/udp"),
        ),
        (
            "conflict: a host socket listens on 127.0.0.1:9092, -p 9092:80 wants every address",
            p("9092:80"),
        ),
        (
            "conflict: a host socket listens on 0.0.0.0:9090, -p 127.0.0.1:9090:80",
            p("127.0.0.1:9090:80"),
        ),
        (
            "conflict within one call: the same host port twice",
            [
                "network", "connect", "-p", "8095:80", "-p", "8095:81", "used", &b,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
        (
            "atomic: a valid -p then a conflicting one publishes neither",
            [
                "network", "connect", "-p", "8096:80", "-p", "8080:81", "used", &b,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
        (
            "-p on an --internal network",
            ["network", "connect", "-p", "8097:80", "inner", &b]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
    ];
    run_cases_on(&mut h, &cases, snapshot_with_ports);
    // The refusals published nothing: the ports that valid halves named are still free.
    let rows = h.port_ls_json(None);
    assert_eq!(
        rows.len(),
        2,
        "only a's two publications exist after all the refusals: {rows:?}"
    );
}

#[test]
fn unknown_uplink_stops_the_daemon_with_one_line_naming_it() {
    let mut h = TestHost::new();
    let o = h.add_outside();
    let mut failures = Vec::new();
    for (what, args) in [
        ("the only uplink is unknown", vec!["--uplink", "nosuch0"]),
        (
            "a good uplink and an unknown one",
            vec!["--uplink", o.uplink.as_str(), "--uplink", "nosuch0"],
        ),
    ] {
        let r = h.run_daemon_expecting_exit(&args);
        let errors: Vec<&str> = r
            .stderr_lines()
            .into_iter()
            .filter(|l| l.contains("Error") || l.contains("ERROR") || l.contains("panicked"))
            .collect();
        if r.timed_out || r.code.is_none_or(|c| c == 0) {
            failures.push(format!(
                "[{what}] contract: an unknown uplink makes the daemon exit non-zero; {r}"
            ));
        } else if errors.len() != 1 || !errors[0].contains("nosuch0") {
            failures.push(format!(
                "[{what}] contract: one error line naming the uplink `nosuch0`; error lines {errors:?}; {r}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "unknown --uplink:\n{}",
        failures.join("\n\n")
    );
    // Nothing was left half set up: a daemon with the right uplink starts and works.
    h.start_daemon_with_args(&["--uplink", &o.uplink]);
    h.create_network("net", 1, &[]);
    let a = h.sandbox("a");
    h.connect("net", &a, &[]);
    h.assert_ping(&a, &o.ip, "a daemon started after the refused ones works");
    assert_consistent(&h);
}
