//! A throwaway network namespace for BPF_PROG_TEST_RUN cases that route: the programs'
//! bpf_fib_lookup runs in the caller's netns, so the packet tests and prog-cost give it
//! one with an uplink and a next hop, never the machine's own routes.
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd as _;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context as _};

use crate::packets::Mac;

/// The uplink's address (on `up0`, a /24).
pub const UPLINK_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
pub const UPLINK_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];
/// The next hop: the default route's gateway, a permanent neighbour.
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 254);
pub const ROUTER_MAC: Mac = [0x02, 0, 0, 0, 0, 0xfe];

/// Runs `body` on a thread inside a fresh netns holding `up0` (UPLINK_IP/24; a veth whose
/// peer stays beside it, as this kernel has no dummy driver), ROUTER as permanent
/// neighbour and default route, forwarding on `lo` as the daemon sets it, and no IPv6
/// (its DAD probes would reach a program attached to `up0`). `body` gets `up0`'s
/// ifindex. The netns is deleted afterwards, also when `body` panics (the panic goes on).
pub fn in_uplink_netns<T: Send + 'static>(
    prefix: &str,
    body: impl FnOnce(u32) -> T + Send + 'static,
) -> anyhow::Result<T> {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}{}x{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    run(&["netns", "add", &name])?;
    let _cleanup = Cleanup(name.clone());
    let exec = |args: &[&str]| run(&[&["netns", "exec", name.as_str()][..], args].concat());
    let ip = |args: &[&str]| run(&[&["-n", name.as_str()][..], args].concat());
    exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
    ip(&["link", "set", "lo", "up"])?;
    let mac = format_mac(UPLINK_MAC);
    ip(&[
        "link", "add", "up0", "address", &mac, "type", "veth", "peer", "name", "up0p",
    ])?;
    ip(&["addr", "add", &format!("{UPLINK_IP}/24"), "dev", "up0"])?;
    ip(&["link", "set", "up0p", "up"])?;
    ip(&["link", "set", "up0", "up"])?;
    let (router, router_mac) = (ROUTER.to_string(), format_mac(ROUTER_MAC));
    ip(&[
        "neigh",
        "add",
        &router,
        "lladdr",
        &router_mac,
        "dev",
        "up0",
        "nud",
        "permanent",
    ])?;
    ip(&["route", "add", "default", "via", &router])?;
    exec(&["sysctl", "-qw", "net.ipv4.conf.lo.forwarding=1"])?;
    let ns = std::fs::File::open(format!("/run/netns/{name}")).context("opening the netns")?;
    let joined = std::thread::spawn(move || {
        // SAFETY: setns on this thread only, with a valid netns fd.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        // /sys is the mount of the caller's netns: ask the kernel by name instead.
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(c"up0".as_ptr()) };
        assert_ne!(ifindex, 0, "no up0 in the test netns");
        body(ifindex)
    })
    .join();
    match joined {
        Ok(value) => Ok(value),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("ip")
        .args(args)
        .status()
        .context("running ip")?;
    if !status.success() {
        bail!("ip {args:?} failed");
    }
    Ok(())
}

fn format_mac(mac: Mac) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
