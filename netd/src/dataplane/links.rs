//! How the programs hang on each host veth (`from_sandbox` at ingress, `to_sandbox` at
//! egress) and uplink (`from_uplink`): a cls_bpf filter in direct-action mode on the
//! device's clsact qdisc, at a fixed priority and handle so a later daemon finds it again.
//!
//! Not tcx, by measurement: a tcx attach waits for an RCU grace period (`tcx_entry_sync`),
//! 11-38 ms per attach on the 2-core test VM, several times `network connect`'s 5 ms
//! budget on its own. A clsact qdisc plus a cls_bpf filter, added while the veth is still
//! down (no `dev_deactivate` either), took 0.4-0.7 ms. Both live on the device: they
//! outlive the daemon without a pin, and go away with the veth.

use std::collections::HashMap;
use std::mem::ManuallyDrop;

use anyhow::Context as _;
use aya::programs::tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle};
use aya::programs::{ProgramError, SchedClassifier, TcAttachType};

/// Priority and handle of netd's filter on every host veth.
const PRIORITY: u16 = 1;
const HANDLE: TcHandle = TcHandle::new(0, 1);

/// The filters this process attached or adopted, by interface and direction.
pub struct Links {
    /// Never dropped: dropping an aya tc link deletes its filter, and the filters must
    /// outlive the daemon (a restart must not interrupt forwarding).
    by_ifname: ManuallyDrop<HashMap<(String, Direction), SchedClassifierLink>>,
}

/// Which side of a device a filter hangs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn attach_type(self) -> TcAttachType {
        match self {
            Direction::Ingress => TcAttachType::Ingress,
            Direction::Egress => TcAttachType::Egress,
        }
    }
}

impl Links {
    pub fn new() -> Self {
        Links {
            by_ifname: ManuallyDrop::new(HashMap::new()),
        }
    }

    /// Attaches `prog` on `side` of `ifname`, or adopts the filter a previous daemon left
    /// there and switches it to `prog` in place. Idempotent.
    pub fn attach(
        &mut self,
        prog: &mut SchedClassifier,
        ifname: &str,
        side: Direction,
    ) -> anyhow::Result<()> {
        let key = (ifname.to_owned(), side);
        if self.by_ifname.contains_key(&key) {
            return Ok(());
        }
        let options = TcAttachOptions::Netlink(NlOptions {
            priority: PRIORITY,
            handle: HANDLE,
            ..Default::default()
        });
        let added = match tc::qdisc_add_clsact(ifname) {
            Err(err) if !is_eexist(&err) => Err(ProgramError::from(err)),
            _ => prog.attach_with_options(ifname, side.attach_type(), options),
        };
        let id = match added {
            Err(ProgramError::TcError(err)) if is_eexist(&err) => {
                let existing = SchedClassifierLink::attached(
                    ifname,
                    side.attach_type(),
                    PRIORITY,
                    HANDLE,
                    None,
                )?;
                prog.attach_to_link(existing)
            }
            other => other,
        }
        .with_context(|| format!("attaching a tc program at {side:?} of {ifname}"))?;
        let link = prog.take_link(id)?;
        self.by_ifname.insert(key, link);
        Ok(())
    }

    /// Deletes the filters on `ifname` this process holds. A veth that is already gone
    /// took its filters with it, which is fine.
    pub fn detach(&mut self, ifname: &str) {
        // Dropping a link deletes its filter (errors, e.g. no such device, are ignored).
        for side in [Direction::Ingress, Direction::Egress] {
            self.by_ifname.remove(&(ifname.to_owned(), side));
        }
    }

    /// Interfaces with a filter this process holds.
    pub fn attached(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_ifname.keys().map(|(n, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

fn is_eexist(err: &TcError) -> bool {
    matches!(err, TcError::NetlinkError(e) if e.raw_os_error() == Some(libc::EEXIST))
}
