//! Docker's plugin protocol spoken to the daemon directly, as libnetwork speaks it: the whole
//! life of an endpoint (with the test doing Docker's part, moving the interface into the
//! sandbox), and every kind of bad call, which gets the protocol's error reply and changes
//! nothing. Real Docker is in docker.rs.
use netd_tests::harness::api;
use netd_tests::harness::check::snapshot;
use netd_tests::harness::TestHost;
use serde_json::{json, Value};

const NETWORK_ID: &str = "4f0c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
const ENDPOINT_ID: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9";

/// POSTs `body` to `/{method}` on the plugin socket, with Docker's content type.
fn call(h: &TestHost, method: &str, body: &str) -> api::Response {
    let raw = format!(
        "POST /{method} HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    api::request(&h.docker_plugin_socket, &raw)
}

/// A successful call's reply; panics with the reply otherwise. Success means status 200 and
/// an empty `Err` (network driver) or `Error` (IPAM).
fn ok(h: &TestHost, method: &str, body: Value) -> Value {
    let reply = call(h, method, &body.to_string());
    let json = reply
        .json()
        .unwrap_or_else(|| panic!("{method}: not JSON: {reply:?}"));
    let err = json
        .get("Err")
        .or(json.get("Error"))
        .and_then(Value::as_str);
    assert!(
        reply.status == 200 && err.is_none_or(str::is_empty),
        "{method} {body} failed: {reply:?}\n{}",
        h.log_text()
    );
    json
}

/// A successful call that names only the endpoint (EndpointOperInfo, Leave, ...).
fn on_endpoint(h: &TestHost, method: &str) -> Value {
    ok(
        h,
        method,
        json!({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID}),
    )
}

/// The reply's one-line error in the API's own field, and the status.
fn refused(h: &TestHost, method: &str, body: &str) -> (u16, String) {
    let reply = call(h, method, body);
    let field = if method.starts_with("IpamDriver") {
        "Error"
    } else {
        "Err"
    };
    let json = reply
        .json()
        .unwrap_or_else(|| panic!("{method} {body}: reply is not JSON: {reply:?}"));
    let message = json[field]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {body}: no {field} in {json}"))
        .to_string();
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "{method} {body}: error must be one non-empty line: {message:?}"
    );
    (reply.status, message)
}

fn create_network(h: &TestHost) -> (String, String) {
    let subnet = h.subnet(1);
    let pool = ok(
        h,
        "IpamDriver.RequestPool",
        json!({"AddressSpace": "netd", "Pool": subnet, "SubPool": "", "Options": null, "V6": false}),
    );
    let pool_id = pool["PoolID"].as_str().unwrap().to_string();
    assert_eq!(pool["Pool"], subnet.as_str());
    let gateway = ok(
        h,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    )["Address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(gateway, format!("{}/24", h.addr(1, 1)));
    ok(
        h,
        "NetworkDriver.CreateNetwork",
        json!({
            "NetworkID": NETWORK_ID,
            "Options": {
                "com.docker.network.enable_ipv6": false,
                "com.docker.network.generic": {"com.docker.network.bridge.enable_icc": "true"},
            },
            "IPv4Data": [{"AddressSpace": "netd", "Pool": subnet, "Gateway": gateway, "AuxAddresses": null}],
            "IPv6Data": [],
        }),
    );
    (pool_id, gateway)
}

#[test]
fn an_endpoint_lives_and_dies_as_docker_drives_it() {
    let h = TestHost::started();
    let activated = ok(&h, "Plugin.Activate", json!({}));
    assert_eq!(
        activated["Implements"],
        json!(["NetworkDriver", "IpamDriver"])
    );
    let caps = ok(&h, "NetworkDriver.GetCapabilities", json!({}));
    assert_eq!(caps["Scope"], "local");

    let (pool_id, _gateway) = create_network(&h);
    let short = &NETWORK_ID[..12];
    assert!(
        h.network_names().contains(&short.to_string()),
        "a Docker network shows in `netd network ls` (by short id without Docker to name it): {:?}",
        h.network_names()
    );

    let address = ok(
        &h,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": "", "Options": null}),
    )["Address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(address, format!("{}/24", h.addr(1, 2)));
    let created = ok(
        &h,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID,
               "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}, "Options": {}}),
    );
    assert_eq!(
        created["Interface"],
        json!({"MacAddress": format!("02:42:0a:{:02x}:01:02", h.octet())}),
        "only the MAC, which Docker did not give, comes back"
    );

    // Docker's sandbox: a netns the plugin has never seen.
    let ns = format!("{}-dock", h.id);
    h.must(&["ip", "netns", "add", &ns]);
    let joined = ok(
        &h,
        "NetworkDriver.Join",
        json!({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID,
               "SandboxKey": format!("/run/netns/{ns}"), "Options": {}}),
    );
    assert_eq!(joined["InterfaceName"]["DstPrefix"], "eth");
    assert_eq!(joined["Gateway"], h.addr(1, 1));
    let src = joined["InterfaceName"]["SrcName"]
        .as_str()
        .unwrap()
        .to_string();
    // What Docker does with the reply: move, rename, address, route.
    let hns = h.host_ns.clone();
    h.must(&["ip", "-n", &hns, "link", "set", &src, "netns", &ns]);
    h.must(&["ip", "-n", &ns, "link", "set", &src, "name", "eth0"]);
    h.must(&["ip", "-n", &ns, "addr", "add", &address, "dev", "eth0"]);
    h.must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
    h.must(&[
        "ip",
        "-n",
        &ns,
        "route",
        "add",
        "default",
        "via",
        &h.addr(1, 1),
    ]);
    h.assert_ping(&ns, &h.addr(1, 1), "the joined sandbox reaches its gateway");

    ok(
        &h,
        "NetworkDriver.ProgramExternalConnectivity",
        json!({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID, "Options": {
            "com.docker.network.portmap": [
                {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 18080, "HostPortEnd": 18080},
                {"Proto": 6, "IP": "", "Port": 80, "HostIP": "::", "HostPort": 18080, "HostPortEnd": 18080},
            ],
            "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}],
        }}),
    );
    let ports = h.netd_ok(&["port", "ls"]);
    assert!(
        ports.contains("80/tcp -> 0.0.0.0:18080"),
        "ProgramExternalConnectivity publishes the IPv4 binding: {ports}"
    );
    let info = on_endpoint(&h, "NetworkDriver.EndpointOperInfo");
    assert_eq!(
        info["Value"]["com.docker.network.portmap"][0]["HostPort"],
        18080
    );

    // Docker refuses `docker network rm` with endpoints; netd refuses to remove Docker's.
    h.netd_refused(&["network", "rm", short], "belongs to Docker");

    on_endpoint(&h, "NetworkDriver.RevokeExternalConnectivity");
    assert!(!h.netd_ok(&["port", "ls"]).contains("18080"));
    on_endpoint(&h, "NetworkDriver.Leave");
    // Twice: Docker retries deletes, so a repeated one succeeds.
    on_endpoint(&h, "NetworkDriver.DeleteEndpoint");
    on_endpoint(&h, "NetworkDriver.DeleteEndpoint");
    ok(
        &h,
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pool_id, "Address": address}),
    );
    assert!(
        h.host_veths().is_empty(),
        "Leave removes the veth: {:?}",
        h.host_veths()
    );
    ok(
        &h,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": NETWORK_ID}),
    );
    ok(&h, "IpamDriver.ReleasePool", json!({"PoolID": pool_id}));
    assert!(!h.network_names().contains(&short.to_string()));
    // The pool is free again.
    create_network(&h);
}

#[test]
fn bad_plugin_calls_get_the_protocols_error_and_change_nothing() {
    let h = TestHost::started();
    let (pool_id, gateway) = create_network(&h);
    let before = snapshot(&h);
    let subnet = h.subnet(1);
    let taken = gateway.clone();
    let cases: Vec<(&str, String, u16)> = vec![
        ("NetworkDriver.CreateNetwork", "{".into(), 400),
        ("NetworkDriver.Join", "[1,2]".into(), 400),
        ("IpamDriver.RequestPool", "not json".into(), 400),
        ("IpamDriver.RequestAddress", r#"{"Address": 5}"#.into(), 400),
        ("NetworkDriver.NoSuchMethod", "{}".into(), 404),
        ("IpamDriver.NoSuchMethod", "{}".into(), 404),
        (
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": "not-hex", "IPv4Data": [{"Pool": h.subnet(2), "Gateway": format!("{}/24", h.addr(2, 1))}]}).to_string(),
            200,
        ),
        (
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": ENDPOINT_ID, "IPv4Data": []}).to_string(),
            200,
        ),
        (
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": ENDPOINT_ID, "Options": {"com.docker.network.enable_ipv6": true},
                   "IPv4Data": [{"Pool": h.subnet(2), "Gateway": format!("{}/24", h.addr(2, 1))}]}).to_string(),
            200,
        ),
        (
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": ENDPOINT_ID, "IPv4Data": [{"Pool": subnet, "Gateway": gateway}]}).to_string(),
            200,
        ),
        (
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": ENDPOINT_ID, "Options": {"com.docker.network.generic": {"bogus.option": "1"}},
                   "IPv4Data": [{"Pool": h.subnet(2), "Gateway": format!("{}/24", h.addr(2, 1))}]}).to_string(),
            200,
        ),
        (
            "NetworkDriver.CreateEndpoint",
            json!({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID,
                   "Interface": {"Address": format!("{}/24", h.addr(2, 5))}}).to_string(),
            200,
        ),
        (
            "NetworkDriver.CreateEndpoint",
            json!({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID,
                   "Interface": {"Address": taken}}).to_string(),
            200,
        ),
        (
            "NetworkDriver.CreateEndpoint",
            json!({"NetworkID": ENDPOINT_ID, "EndpointID": ENDPOINT_ID}).to_string(),
            200,
        ),
        (
            "NetworkDriver.Join",
            json!({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID, "SandboxKey": "/run/netns/x"}).to_string(),
            200,
        ),
        (
            "NetworkDriver.ProgramExternalConnectivity",
            json!({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID, "Options": {}}).to_string(),
            200,
        ),
        (
            "IpamDriver.RequestPool",
            json!({"Pool": subnet}).to_string(),
            200,
        ),
        (
            "IpamDriver.RequestPool",
            json!({"Pool": "fd00::/64", "V6": true}).to_string(),
            200,
        ),
        (
            "IpamDriver.RequestPool",
            json!({"Pool": format!("{}/24", h.addr(3, 7))}).to_string(),
            200,
        ),
        (
            "IpamDriver.RequestAddress",
            json!({"PoolID": pool_id, "Address": taken}).to_string(),
            200,
        ),
        (
            "IpamDriver.RequestAddress",
            json!({"PoolID": "10.0.0.0/8", "Address": ""}).to_string(),
            200,
        ),
    ];
    let mut failures = Vec::new();
    for (method, body, status) in &cases {
        let (got, message) = refused(&h, method, body);
        if got != *status {
            failures.push(format!(
                "{method} {body}: status {got}, wanted {status} ({message})"
            ));
        }
        if snapshot(&h) != before {
            failures.push(format!("{method} {body}: changed the state ({message})"));
        }
    }
    assert!(h.network_names().len() == 4, "{:?}", h.network_names());
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        h.log_text()
    );
    // The daemon is still up and serving both sockets.
    ok(&h, "Plugin.Activate", json!({}));
    h.netd_ok(&["network", "ls"]);
}

/// `docker network create -d netd -o netd.network=NAME` lets Docker use a network made with
/// `netd network create`: Docker's endpoints land in it, and Docker removing its network
/// leaves netd's. A Docker view that does not match (another subnet) is refused.
#[test]
fn docker_adopts_a_network_made_with_netd() {
    let h = TestHost::started();
    h.create_network("shared", 2, &[]);
    let subnet = h.subnet(2);
    let gateway = format!("{}/24", h.addr(2, 1));
    let adopt = |pool: &str| {
        json!({
            "NetworkID": NETWORK_ID,
            "Options": {"com.docker.network.generic": {"netd.network": "shared"}},
            "IPv4Data": [{"AddressSpace": "x", "Pool": pool, "Gateway": gateway}],
        })
        .to_string()
    };
    let (_, message) = refused(&h, "NetworkDriver.CreateNetwork", &adopt(&h.subnet(3)));
    assert!(message.contains("--subnet"), "{message}");
    ok(
        &h,
        "NetworkDriver.CreateNetwork",
        serde_json::from_str(&adopt(&subnet)).unwrap(),
    );
    let names = h.network_names();
    assert!(
        names.contains(&"shared".to_string()) && names.len() == 4,
        "no second network: {names:?}"
    );
    h.netd_refused(&["network", "rm", "shared"], "in use by Docker");

    let address = format!("{}/24", h.addr(2, 9));
    ok(
        &h,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID, "Interface": {"Address": address}}),
    );
    let ns = format!("{}-dock", h.id);
    h.must(&["ip", "netns", "add", &ns]);
    ok(
        &h,
        "NetworkDriver.Join",
        json!({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID, "SandboxKey": format!("/run/netns/{ns}")}),
    );
    let containers = h.inspect("shared")["Containers"].clone();
    assert!(
        containers.to_string().contains(&address),
        "Docker's endpoint is in netd's network: {containers}"
    );
    for method in ["NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint"] {
        on_endpoint(&h, method);
    }
    ok(
        &h,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": NETWORK_ID}),
    );
    assert!(h.network_names().contains(&"shared".to_string()));
    h.netd_ok(&["network", "rm", "shared"]);
}
