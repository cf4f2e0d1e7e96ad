//! TEMPORARY contract stub; replaced by the dataplane branch.
use std::net::Ipv4Addr;

use netd_common::RemoteEndpoint;

use super::Dataplane;

impl Dataplane {
    pub fn set_overlay(
        &mut self,
        _local_ip: Ipv4Addr,
        _underlay_ifname: &str,
    ) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn put_vni(&mut self, _vni: u32, _net_id: u32) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn remove_vni(&mut self, _vni: u32) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn put_remote_endpoint(
        &mut self,
        _ip: Ipv4Addr,
        _remote: &RemoteEndpoint,
    ) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn remove_remote_endpoint(&mut self, _ip: Ipv4Addr) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn remote_endpoints(&self) -> anyhow::Result<Vec<(Ipv4Addr, RemoteEndpoint)>> {
        Ok(Vec::new())
    }
}
