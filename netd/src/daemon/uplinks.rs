//! Which interfaces are the uplinks, what address each masquerades to, and which netns
//! the socket hooks serve.
use std::os::fd::AsRawFd as _;

use anyhow::{bail, Context as _};
use netd_common::UplinkInfo;

use crate::netlink::Netlink;

/// The named uplinks, or the default route's interface when none is named (none at all
/// when there is no default route: traffic to the outside then goes to the host stack).
pub async fn resolve(
    netlink: &Netlink,
    names: &[String],
) -> anyhow::Result<Vec<(String, UplinkInfo)>> {
    let names = if names.is_empty() {
        match netlink.default_route_ifindex().await? {
            Some(index) => match netlink.link_name(index).await? {
                Some(name) => vec![name],
                None => Vec::new(),
            },
            None => {
                tracing::info!("no default route and no --uplink: nothing is masqueraded");
                Vec::new()
            }
        }
    } else {
        names.to_vec()
    };
    let mut uplinks = Vec::new();
    for name in names {
        let Some(ifindex) = netlink.link_index(&name).await? else {
            bail!("uplink {name} does not exist");
        };
        let Some(ip) = netlink.first_ipv4(ifindex).await? else {
            bail!("uplink {name} has no IPv4 address to masquerade to");
        };
        tracing::info!(uplink = name, %ip, "uplink");
        uplinks.push((
            name,
            UplinkInfo {
                ifindex,
                ip: ip.octets(),
            },
        ));
    }
    Ok(uplinks)
}

/// SO_NETNS_COOKIE of the daemon's network namespace (read off a throwaway socket).
pub fn netns_cookie() -> anyhow::Result<u64> {
    const SO_NETNS_COOKIE: libc::c_int = 71;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").context("socket for the netns cookie")?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: valid fd, and an out-buffer of the size given.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("getsockopt(SO_NETNS_COOKIE)");
    }
    Ok(cookie)
}

/// Lets the programs' route lookups run: bpf_fib_lookup wants forwarding enabled on the
/// device it looks up from, and they look up from `lo` (netd-ebpf/src/route.rs). Nothing
/// from outside arrives on `lo`, so the host forwards nothing more than before. Called
/// at start and by the periodic upkeep: setting `ip_forward` resets every device's flag.
pub fn enable_route_lookups() -> anyhow::Result<()> {
    let path = "/proc/sys/net/ipv4/conf/lo/forwarding";
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").with_context(|| format!("cannot enable {path}"))
}
