//! Named network namespaces (under /run/netns) that are deleted when their guard drops.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::cmd;

pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up.
    pub fn create(name: &str) -> Result<Self> {
        cmd::run(&mut cmd::command("ip", ["netns", "add", name]))?;
        // The guard exists before anything else can fail, so the namespace never leaks.
        let netns = Self::adopt(name);
        cmd::run(&mut netns.exec("ip", ["link", "set", "lo", "up"]))?;
        Ok(netns)
    }

    /// Takes over a namespace that someone else (e.g. `netd sandbox create`) made, so that it
    /// is removed on drop if its owner did not remove it.
    pub fn adopt(name: &str) -> Self {
        Self {
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates a veth pair: `ifname` here, its peer `eth0` made straight inside `peer`, so
    /// the root namespace never sees either end.
    pub fn add_veth_to(&self, ifname: &str, peer: &Netns) -> Result<()> {
        cmd::run(&mut self.exec(
            "ip",
            [
                "link", "add", ifname, "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
            ],
        ))
    }

    /// `ip netns exec <name> <program> <args>`.
    pub fn exec<I, S>(&self, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = cmd::command("ip", ["netns", "exec", &self.name, program]);
        cmd.args(args);
        cmd
    }

    /// The first IPv4 address on `dev` inside the namespace.
    pub fn ipv4_of(&self, dev: &str) -> Result<std::net::Ipv4Addr> {
        let text = cmd::capture(&mut self.exec("ip", ["-4", "-o", "addr", "show", "dev", dev]))?;
        // Lines look like: "2: eth0    inet 10.213.0.2/24 brd ... scope global eth0".
        let address = text
            .split_whitespace()
            .skip_while(|word| *word != "inet")
            .nth(1)
            .and_then(|cidr| cidr.split('/').next())
            .ok_or_else(|| anyhow::anyhow!("no IPv4 address on {dev} in {}", self.name))?;
        Ok(address.parse()?)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if Path::new("/run/netns").join(&self.name).exists() {
            let _ = cmd::run(&mut cmd::command("ip", ["netns", "del", &self.name]));
        }
    }
}
