//! `netd daemon`: opens the store, adopts the pinned dataplane, reconciles, serves the API.
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ipnet::Ipv4Net;
use tokio::net::UnixListener;

use netd_common::DEFAULT_NAT_ENTRIES;

use crate::cluster::{Cluster, ClusterSettings};
use crate::dataplane::{Dataplane, Timeouts};
use crate::netlink::Netlink;
use crate::service::{Service, Settings};
use crate::store::Store;

mod uplinks;

/// Flags of `netd daemon`. Every path is a flag so several daemons can share a machine.
#[derive(Clone, Debug, clap::Args)]
pub struct DaemonArgs {
    /// Directory of the embedded state store.
    #[arg(long, default_value = "/var/lib/netd")]
    pub state_dir: PathBuf,
    /// Unix socket of the HTTP+JSON API.
    #[arg(long, default_value = "/run/netd/netd.sock")]
    pub socket: PathBuf,
    /// bpffs directory for pinned maps and links.
    #[arg(long, default_value = "/sys/fs/bpf/netd")]
    pub bpffs: PathBuf,
    /// Subnet of the predefined `bridge` network (default: the first free default pool).
    #[arg(long)]
    pub bridge_subnet: Option<Ipv4Net>,
    /// Where the outside world is: masqueraded traffic leaves and published ports are
    /// reached through it. Repeatable. Default: the interface of the default route.
    #[arg(long = "uplink", value_name = "IFACE")]
    pub uplinks: Vec<String>,
    /// Capacity of the NAT/conntrack table (two entries per flow); LRU when full.
    #[arg(long, default_value_t = DEFAULT_NAT_ENTRIES,
          value_parser = clap::value_parser!(u32).range(16..=16_777_216))]
    pub nat_max_entries: u32,
    /// cgroup v2 directory whose sockets reach published ports through the socket hooks
    /// (only sockets in the daemon's own netns are rewritten). Default: the cgroup2 root,
    /// /sys/fs/cgroup or, on hybrid hosts, /sys/fs/cgroup/unified.
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// Unix socket of the Docker network and IPAM plugin; Docker names the driver after
    /// the file (`netd.sock`: `docker network create -d netd`). `none` turns it off.
    #[arg(long, default_value = "/run/docker/plugins/netd.sock")]
    pub docker_plugin_socket: PathBuf,
    /// Docker's API, asked for the names of the networks Docker creates through the plugin.
    #[arg(long, default_value = "unix:///var/run/docker.sock", value_parser = unix_url)]
    pub docker_host: PathBuf,
    /// The etcd cluster store that makes overlay networks span hosts:
    /// `etcd://HOST:PORT[,HOST:PORT...]`. Without it, overlay networks are refused.
    #[arg(long, value_name = "URL", requires = "advertise_addr")]
    pub cluster_store: Option<String>,
    /// This host's address on the underlay: the source of its VXLAN packets, and where the
    /// other hosts send theirs. Its interface gets the decapsulating program.
    #[arg(long, value_name = "IP", requires = "cluster_store")]
    pub advertise_addr: Option<Ipv4Addr>,
    /// MTU of sandboxes on overlay networks (default: the underlay's minus 50, the VXLAN
    /// overhead).
    #[arg(long, value_parser = clap::value_parser!(u32).range(68..=65485))]
    pub mtu: Option<u32>,
    /// Seconds this host's endpoints outlive it in the cluster store when it stops renewing
    /// its lease (a dead host disappears from the others after this).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub cluster_ttl: u64,
}

/// `unix:///path` as a path: the only kind of Docker host netd talks to.
fn unix_url(url: &str) -> Result<PathBuf, String> {
    url.strip_prefix("unix://")
        .filter(|path| path.starts_with('/'))
        .map(PathBuf::from)
        .ok_or_else(|| format!("expected unix:///PATH, got {url:?}"))
}

/// How often to look for endpoints whose sandbox disappeared, expire idle flows and
/// re-read the host's addresses.
const REAP_INTERVAL: Duration = Duration::from_secs(5);
/// Source ports masquerading and hairpin flows take: above the kernel's default
/// ephemeral range (32768-60999), so they never collide with the host's own connections.
const NAT_PORTS: std::ops::RangeInclusive<u16> = 61000..=65535;

/// Runs the daemon until SIGINT/SIGTERM. The dataplane outlives it: maps and links are
/// pinned, so traffic keeps flowing while the daemon is down or restarting.
pub async fn run(args: DaemonArgs) -> anyhow::Result<()> {
    let store = Store::open(&args.state_dir)?;
    let netlink = Netlink::connect().await?;
    let uplinks = uplinks::resolve(&netlink, &args.uplinks).await?;
    uplinks::enable_route_lookups()?;
    let mut dataplane = Dataplane::open(&args.bpffs, args.nat_max_entries)?;
    dataplane.set_uplinks(&uplinks)?;
    let cgroup = match &args.cgroup {
        Some(path) => path.clone(),
        None => crate::dataplane::cgroup2_root()?,
    };
    dataplane.attach_socket_hooks(&args.bpffs, &cgroup, uplinks::netns_cookie()?, NAT_PORTS)?;
    let cluster = match (&args.cluster_store, args.advertise_addr) {
        (Some(url), Some(vtep)) => {
            let settings = cluster_settings(&netlink, url, vtep, &args).await?;
            dataplane.set_overlay(vtep, &settings.1)?;
            Some(Arc::new(Cluster::connect(settings.0).await?))
        }
        _ => None,
    };
    let settings = Settings {
        bridge_subnet: args.bridge_subnet,
    };
    let service = Service::start(store, netlink, dataplane, cluster.clone(), &settings).await?;
    // The store may be away: the session keeps trying, the dataplane forwards meanwhile.
    let session = cluster.map(|c| tokio::spawn(crate::cluster::run_session(c, service.clone())));
    let listener = bind(&args.socket)?;
    let plugin = match args.docker_plugin_socket.as_os_str() == "none" {
        true => None,
        false => Some(bind(&args.docker_plugin_socket)?),
    };
    tracing::info!(socket = %args.socket.display(), "netd daemon ready");

    let reaper = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_INTERVAL);
            loop {
                tick.tick().await;
                if let Err(err) = service.reap_dead_endpoints().await {
                    tracing::warn!("reaping dead endpoints failed: {err:#}");
                }
                let upkeep = uplinks::enable_route_lookups();
                if let Err(err) = upkeep.and(service.maintain_nat(&Timeouts::default()).await) {
                    tracing::warn!("NAT upkeep failed: {err:#}");
                }
            }
        })
    };
    let docker_plugin = plugin.map(|listener| {
        let router = crate::docker::router(service.clone(), args.docker_host.clone());
        tracing::info!(socket = %args.docker_plugin_socket.display(), "Docker plugin ready");
        tokio::spawn(crate::docker::adopt_missing_names(
            service.clone(),
            args.docker_host.clone(),
        ));
        tokio::spawn(async move { axum::serve(listener, router).await })
    });
    axum::serve(listener, crate::api::server::router(service))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("API server failed")?;
    reaper.abort();
    if let Some(session) = session {
        session.abort();
    }
    if let Some(server) = docker_plugin {
        server.abort();
        let _ = std::fs::remove_file(&args.docker_plugin_socket);
    }
    let _ = std::fs::remove_file(&args.socket);
    tracing::info!("netd daemon stopped; the dataplane keeps forwarding");
    Ok(())
}

/// The cluster flags, checked against the host; and the underlay interface's name.
async fn cluster_settings(
    netlink: &Netlink,
    url: &str,
    vtep: Ipv4Addr,
    args: &DaemonArgs,
) -> anyhow::Result<(ClusterSettings, String)> {
    let Some((underlay, underlay_mtu)) = netlink.interface_with_address(vtep).await? else {
        anyhow::bail!("--advertise-addr {vtep} is not an address of this host");
    };
    let overlay_mtu = args
        .mtu
        .unwrap_or(underlay_mtu.saturating_sub(netd_common::VXLAN_OVERHEAD));
    if overlay_mtu + netd_common::VXLAN_OVERHEAD > underlay_mtu || overlay_mtu < 68 {
        anyhow::bail!(
            "--mtu {overlay_mtu} does not fit the underlay {underlay} (MTU {underlay_mtu}) with the {} bytes VXLAN adds",
            netd_common::VXLAN_OVERHEAD
        );
    }
    tracing::info!(%vtep, underlay, overlay_mtu, "cluster member");
    let settings = ClusterSettings {
        url: url.to_owned(),
        vtep,
        underlay_mtu,
        overlay_mtu,
        ttl: Duration::from_secs(args.cluster_ttl),
    };
    Ok((settings, underlay))
}

/// Binds the API socket with mode 0660, replacing a stale one left by a crash.
fn bind(socket: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove stale {}", socket.display()))
        }
        _ => {}
    }
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
