//! The floor: one veth pair straight from the client namespace to the server namespace.

use std::net::Ipv4Addr;

use anyhow::Result;

use super::topology::{Kind, Topology};
use crate::cmd;
use crate::netns::Netns;

const CLIENT_IP: &str = "10.214.1.1/24";
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 214, 1, 2);

pub struct VethFloor {
    client: Netns,
    server: Netns,
}

impl VethFloor {
    pub fn setup(prefix: &str) -> Result<Self> {
        let floor = Self {
            client: Netns::create(&format!("{prefix}fc"))?,
            server: Netns::create(&format!("{prefix}fs"))?,
        };
        floor.client.add_veth_to("eth0", &floor.server)?;
        cmd::run(
            &mut floor
                .client
                .exec("ip", ["addr", "add", CLIENT_IP, "dev", "eth0"]),
        )?;
        cmd::run(&mut floor.server.exec(
            "ip",
            ["addr", "add", &format!("{SERVER_IP}/24"), "dev", "eth0"],
        ))?;
        for netns in [&floor.client, &floor.server] {
            cmd::run(&mut netns.exec("ip", ["link", "set", "eth0", "up"]))?;
        }
        Ok(floor)
    }
}

impl Topology for VethFloor {
    fn kind(&self) -> Kind {
        Kind::Floor
    }
    fn client(&self) -> &Netns {
        &self.client
    }
    fn server(&self) -> &Netns {
        &self.server
    }
    fn server_ip(&self) -> Ipv4Addr {
        SERVER_IP
    }
}
