//! A throwaway etcd server (Debian's etcd-server) for the netd cluster: one member, listening for
//! clients on an underlay address inside a host namespace, its data in the bench's scratch
//! directory. Stopped by PID and its data removed on drop.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::layout::ETCD_CLIENT_PORT;
use crate::cmd;
use crate::netd_daemon::{wait_until_ready, with_log_tail};
use crate::netns::Netns;
use crate::process::Background;

const ETCD: &str = "/usr/bin/etcd";
/// The peer port stays on the host's loopback: the cluster has one member.
const PEER_URL: &str = "http://127.0.0.1:2380";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Etcd {
    /// Where clients reach it: `IP:PORT`.
    pub endpoint: String,
    /// "etcd 3.4.23", for the report.
    pub version: String,
    process: Background,
    /// Data directory and log; removed on drop.
    dir: PathBuf,
}

impl Etcd {
    pub fn start(netns: &Netns, ip: Ipv4Addr, dir: PathBuf) -> Result<Self> {
        let version = cmd::capture(&mut cmd::command(ETCD, ["--version"]))
            .with_context(|| format!("{ETCD} does not run (is etcd-server installed?)"))?
            .lines()
            .find_map(|line| line.strip_prefix("etcd Version:"))
            .map_or_else(|| "etcd".to_string(), |v| format!("etcd {}", v.trim()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let endpoint = format!("{ip}:{ETCD_CLIENT_PORT}");
        let client_url = format!("http://{endpoint}");
        let data_dir = dir.join("data").display().to_string();
        let log = dir.join("etcd.log");
        let mut process = Background::spawn(
            "etcd",
            &mut netns.exec(
                ETCD,
                [
                    "--name",
                    "nbov",
                    "--data-dir",
                    &data_dir,
                    "--listen-client-urls",
                    &client_url,
                    "--advertise-client-urls",
                    &client_url,
                    "--listen-peer-urls",
                    PEER_URL,
                    "--initial-advertise-peer-urls",
                    PEER_URL,
                    "--initial-cluster",
                    &format!("nbov={PEER_URL}"),
                    "--initial-cluster-state",
                    "new",
                ],
            ),
            &log,
        )?;
        let ready = wait_until_ready(
            "etcd",
            &mut process,
            READY_TIMEOUT,
            Duration::from_millis(200),
            || {
                cmd::succeeds(&mut netns.exec(
                    "etcdctl",
                    [
                        "--endpoints",
                        &client_url,
                        "--dial-timeout=1s",
                        "--command-timeout=2s",
                        "endpoint",
                        "health",
                    ],
                ))
            },
            |error| with_log_tail(error, "etcd", &log, 20, |_| true),
        );
        // Held before failing, so that drop stops it and removes its data.
        let etcd = Self {
            endpoint,
            version,
            process,
            dir,
        };
        ready?;
        Ok(etcd)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
