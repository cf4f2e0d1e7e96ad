//! `/IpamDriver.*`: Docker's remote IPAM calls, mapped onto netd's address pools.
use std::net::Ipv4Addr;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use ipnet::Ipv4Net;

use super::protocol::*;
use super::{empty, ok, Api, Plugin, PluginError, Reply};

const API: Api = Api::Ipam;

/// RequestAddress's option marking the gateway's request (libnetwork's ipamapi).
const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
const GATEWAY: &str = "com.docker.network.gateway";

pub(super) fn routes() -> Router<Plugin> {
    Router::new()
        .route(
            "/IpamDriver.GetCapabilities",
            post(|| async {
                ok(IpamCapabilities {
                    requires_mac_address: false,
                    requires_request_replay: false,
                })
            }),
        )
        .route(
            "/IpamDriver.GetDefaultAddressSpaces",
            post(|| async {
                ok(AddressSpaces {
                    local_default_address_space: "netd",
                    global_default_address_space: "netd-global",
                })
            }),
        )
        .route("/IpamDriver.RequestPool", post(request_pool))
        .route("/IpamDriver.ReleasePool", post(release_pool))
        .route("/IpamDriver.RequestAddress", post(request_address))
        .route("/IpamDriver.ReleaseAddress", post(release_address))
}

fn parse_net(text: &str, what: &str) -> Result<Option<Ipv4Net>, PluginError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| API.invalid(format!("invalid {what} {text:?}: expected IPv4 CIDR")))
}

fn parse_ip(text: &str) -> Result<Option<Ipv4Addr>, PluginError> {
    match text {
        "" => Ok(None),
        text => API.address(text, "address").map(Some),
    }
}

async fn request_pool(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: RequestPool = API.decode(&body)?;
    if req.v6 {
        return Err(API.invalid("netd IPAM is IPv4 only: IPv6 pools are not supported yet"));
    }
    let subnet = parse_net(&req.pool, "pool")?;
    let range = parse_net(&req.sub_pool, "sub-pool (ip-range)")?;
    let pool = API
        .complete(async move { plugin.service.request_pool(subnet, range).await })
        .await?;
    ok(PoolGiven {
        pool_id: pool.id,
        pool: pool.subnet.to_string(),
        data: Default::default(),
    })
}

async fn release_pool(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: ReleasePool = API.decode(&body)?;
    API.complete(async move { plugin.service.release_pool(&req.pool_id).await })
        .await?;
    empty()
}

async fn request_address(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: RequestAddress = API.decode(&body)?;
    let address = parse_ip(&req.address)?;
    let gateway = req.options.get(REQUEST_ADDRESS_TYPE).map(String::as_str) == Some(GATEWAY);
    let given = API
        .complete(async move {
            plugin
                .service
                .request_address(&req.pool_id, address, gateway)
                .await
        })
        .await?;
    ok(AddressGiven {
        address: given.to_string(),
        data: Default::default(),
    })
}

async fn release_address(State(plugin): State<Plugin>, body: Bytes) -> Reply {
    let req: ReleaseAddress = API.decode(&body)?;
    let address =
        parse_ip(&req.address)?.ok_or_else(|| API.invalid("ReleaseAddress needs an Address"))?;
    API.complete(async move { plugin.service.release_address(&req.pool_id, address).await })
        .await?;
    empty()
}
