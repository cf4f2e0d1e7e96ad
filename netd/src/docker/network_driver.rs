//! `/NetworkDriver.*`: Docker's remote network driver calls, mapped onto the service.
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use ipnet::Ipv4Net;
use serde_json::Value;

use super::protocol::*;
use super::{empty, names, ok, Api, Plugin, PluginError, Reply};
use crate::model::format_mac;
use crate::ports::{PortMapping, Protocol};
use crate::service::DockerNetwork;

const API: Api = Api::NetworkDriver;

/// Keys of CreateNetwork's and ProgramExternalConnectivity's options (libnetwork's netlabel).
const GENERIC: &str = "com.docker.network.generic";
const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
const INTERNAL: &str = "com.docker.network.internal";
const PORT_MAP: &str = "com.docker.network.portmap";
/// `-o netd.network=NAME`: use the existing netd network NAME.
const ADOPT: &str = "netd.network";

pub(super) fn routes() -> Router<Plugin> {
    Router::new()
        .route(
            "/NetworkDriver.GetCapabilities",
            post(|| async {
                ok(Capabilities {
                    scope: "local",
                    connectivity_scope: "local",
                })
            }),
        )
        .route("/NetworkDriver.CreateNetwork", post(create_network))
        .route("/NetworkDriver.DeleteNetwork", post(delete_network))
        .route("/NetworkDriver.CreateEndpoint", post(create_endpoint))
        .route("/NetworkDriver.EndpointOperInfo", post(endpoint_oper_info))
        .route("/NetworkDriver.DeleteEndpoint", post(delete_endpoint))
        .route("/NetworkDriver.Join", post(join))
        .route("/NetworkDriver.Leave", post(leave))
        .route(
            "/NetworkDriver.ProgramExternalConnectivity",
            post(program_external_connectivity),
        )
        .route(
            "/NetworkDriver.RevokeExternalConnectivity",
            post(revoke_external_connectivity),
        )
        // Node discovery and swarm allocation concern global-scope drivers; netd's Docker
        // networks are local, so these only acknowledge (after checking the body).
        .route("/NetworkDriver.DiscoverNew", post(acknowledge))
        .route("/NetworkDriver.DiscoverDelete", post(acknowledge))
        .route("/NetworkDriver.AllocateNetwork", post(allocate_network))
        .route("/NetworkDriver.FreeNetwork", post(free_network))
}

async fn acknowledge(body: Bytes) -> Reply {
    API.decode::<Value>(&body)?;
    empty()
}

async fn allocate_network(body: Bytes) -> Reply {
    API.decode::<NetworkRef>(&body)?;
    ok(serde_json::json!({ "Options": {} }))
}

async fn free_network(body: Bytes) -> Reply {
    API.decode::<NetworkRef>(&body)?;
    empty()
}

async fn create_network(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let network = docker_network(API.decode(&body)?)?;
    let id = network.id.clone();
    let service = plugin.service.clone();
    API.complete(async move { service.docker_create_network(network).await })
        .await?;
    // Docker records the network only once this call has answered.
    tokio::spawn(names::adopt_docker_name(
        plugin.service,
        plugin.docker_socket,
        id,
    ));
    empty()
}

/// CreateNetwork's request as a netd network: one IPv4 pool, IPv4 only.
fn docker_network(req: CreateNetwork) -> Result<DockerNetwork, PluginError> {
    let ipv6 = req.options.get(ENABLE_IPV6).and_then(Value::as_bool) == Some(true)
        || req.ipv6_data.as_ref().is_some_and(|d| !d.is_empty());
    if ipv6 {
        return Err(API.invalid("netd networks are IPv4 only: IPv6 is not supported yet"));
    }
    let pools = req.ipv4_data.unwrap_or_default();
    let [data] = <[IpamData; 1]>::try_from(pools).map_err(|pools| {
        API.invalid(format!(
            "a netd network has exactly one IPv4 pool, Docker gave {}",
            pools.len()
        ))
    })?;
    let subnet: Ipv4Net = data
        .pool
        .parse()
        .map_err(|_| API.invalid(format!("invalid IPv4 pool {:?}", data.pool)))?;
    let gateway = API.address(&data.gateway, "gateway")?;
    let aux_addresses = data
        .aux_addresses
        .iter()
        .map(|(name, ip)| Ok((name.clone(), API.address(ip, "aux address")?)))
        .collect::<Result<_, PluginError>>()?;
    let mut options: BTreeMap<String, String> = match req.options.get(GENERIC) {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let value = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), value)
            })
            .collect(),
        Some(other) => {
            return Err(API.invalid(format!(
                "invalid {GENERIC}: expected an object, got {other}"
            )))
        }
    };
    let adopt = options.remove(ADOPT);
    Ok(DockerNetwork {
        adopt,
        id: req.network_id,
        subnet,
        gateway,
        aux_addresses,
        internal: req.options.get(INTERNAL).and_then(Value::as_bool) == Some(true),
        options,
    })
}

async fn delete_network(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: NetworkRef = API.decode(&body)?;
    API.complete(async move { plugin.service.docker_delete_network(&req.network_id).await })
        .await?;
    empty()
}

async fn create_endpoint(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: CreateEndpoint = API.decode(&body)?;
    let given = req.interface.unwrap_or_default();
    if !given.address_ipv6.is_empty() {
        return Err(API.invalid("netd networks are IPv4 only: IPv6 is not supported yet"));
    }
    let address =
        match given.address.as_str() {
            "" => None,
            text => Some(text.parse::<Ipv4Net>().map_err(|_| {
                API.invalid(format!("invalid address {text:?}: expected IPv4 CIDR"))
            })?),
        };
    let mac = (!given.mac_address.is_empty()).then(|| given.mac_address.clone());
    let (chosen, chosen_mac) = API
        .complete(async move {
            plugin
                .service
                .docker_create_endpoint(&req.network_id, &req.endpoint_id, address, mac.as_deref())
                .await
        })
        .await?;
    ok(EndpointCreated {
        interface: EndpointInterface {
            address: if given.address.is_empty() {
                chosen.to_string()
            } else {
                String::new()
            },
            address_ipv6: String::new(),
            mac_address: if given.mac_address.is_empty() {
                format_mac(chosen_mac)
            } else {
                String::new()
            },
        },
    })
}

async fn endpoint_oper_info(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: EndpointRef = API.decode(&body)?;
    let ports = plugin
        .service
        .docker_endpoint_ports(&req.endpoint_id)
        .await
        .map_err(|e| API.failed(e))?;
    let bindings: Vec<PortBinding> = ports.iter().map(port_binding).collect();
    let mut value = BTreeMap::new();
    value.insert(
        PORT_MAP,
        serde_json::to_value(bindings).expect("bindings serialize"),
    );
    ok(EndpointOperInfo { value })
}

async fn delete_endpoint(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: EndpointRef = API.decode(&body)?;
    API.complete(async move {
        plugin
            .service
            .docker_delete_endpoint(&req.endpoint_id)
            .await
    })
    .await?;
    empty()
}

async fn join(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: Join = API.decode(&body)?;
    let joined = API
        .complete(async move {
            plugin
                .service
                .docker_join(&req.network_id, &req.endpoint_id, &req.sandbox_key)
                .await
        })
        .await?;
    ok(Joined {
        interface_name: InterfaceName {
            src_name: joined.ifname,
            dst_prefix: "eth",
        },
        gateway: joined.gateway.map(|g| g.to_string()).unwrap_or_default(),
        static_routes: Vec::new(),
        disable_gateway_service: false,
    })
}

async fn leave(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: EndpointRef = API.decode(&body)?;
    API.complete(async move { plugin.service.docker_leave(&req.endpoint_id).await })
        .await?;
    empty()
}

async fn program_external_connectivity(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: ProgramExternalConnectivity = API.decode(&body)?;
    let bindings: Vec<PortBinding> = match req.options.get(PORT_MAP) {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|e| API.invalid(format!("invalid {PORT_MAP}: {e}")))?,
    };
    let specs = bindings
        .iter()
        .filter_map(|b| port_spec(b).transpose())
        .collect::<Result<Vec<String>, PluginError>>()?;
    API.complete(async move {
        plugin
            .service
            .docker_publish(&req.endpoint_id, &specs)
            .await
    })
    .await?;
    empty()
}

async fn revoke_external_connectivity(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: EndpointRef = API.decode(&body)?;
    API.complete(async move {
        match plugin.service.docker_publish(&req.endpoint_id, &[]).await {
            // Revoking for an endpoint that already left is done.
            Err(crate::service::Error::NotFound(_)) => Ok(()),
            other => other,
        }
    })
    .await?;
    empty()
}

/// A Docker port binding as a `-p` spec; `None` for an IPv6 binding, which netd leaves to
/// Docker (it publishes IPv4 only).
fn port_spec(binding: &PortBinding) -> Result<Option<String>, PluginError> {
    let protocol = match binding.proto {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        132 => Protocol::Sctp,
        other => {
            return Err(API.invalid(format!(
                "invalid port binding: unknown protocol number {other}"
            )))
        }
    };
    if binding.host_ip.contains(':') {
        tracing::info!(
            host_ip = binding.host_ip,
            "IPv6 port binding ignored: netd publishes IPv4 only"
        );
        return Ok(None);
    }
    let host_ports = match (binding.host_port, binding.host_port_end) {
        (0, _) => String::new(),
        (start, end) if end > start => format!("{start}-{end}"),
        (start, _) => start.to_string(),
    };
    let (ip, port, proto) = (&binding.host_ip, binding.port, protocol.name());
    Ok(Some(match (ip.is_empty(), host_ports.is_empty()) {
        (true, true) => format!("{port}/{proto}"),
        (true, false) => format!("{host_ports}:{port}/{proto}"),
        (false, _) => format!("{ip}:{host_ports}:{port}/{proto}"),
    }))
}

fn port_binding(mapping: &PortMapping) -> PortBinding {
    PortBinding {
        proto: mapping.protocol.number(),
        ip: String::new(),
        port: mapping.container_port,
        host_ip: mapping.host_ip.to_string(),
        host_port: mapping.host_port,
        host_port_end: mapping.host_port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(proto: u8, host_ip: &str, host_port: u16, end: u16) -> PortBinding {
        PortBinding {
            proto,
            port: 80,
            host_ip: host_ip.into(),
            host_port,
            host_port_end: end,
            ..Default::default()
        }
    }

    #[test]
    fn docker_port_bindings_become_p_specs() {
        let spec = |b: PortBinding| port_spec(&b).ok().flatten();
        assert_eq!(spec(binding(6, "", 8080, 8080)), Some("8080:80/tcp".into()));
        assert_eq!(
            spec(binding(17, "127.0.0.1", 8080, 8090)),
            Some("127.0.0.1:8080-8090:80/udp".into())
        );
        assert_eq!(spec(binding(132, "", 0, 0)), Some("80/sctp".into()));
        assert_eq!(
            spec(binding(6, "127.0.0.1", 0, 0)),
            Some("127.0.0.1::80/tcp".into())
        );
        for b in [binding(6, "", 8080, 8080), binding(6, "127.0.0.1", 0, 0)] {
            let text = spec(b).unwrap();
            assert!(crate::ports::PortSpec::parse(&text).is_ok(), "{text}");
        }
        assert_eq!(spec(binding(6, "::", 8080, 8080)), None);
        assert!(port_spec(&binding(1, "", 1, 1)).is_err());
    }
}
