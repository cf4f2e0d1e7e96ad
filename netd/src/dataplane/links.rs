//! tcx links: one per host veth, pinned at `<bpffs>/links/<ifname>` so it outlives the
//! daemon. Removing the pin detaches the program (nothing else holds the link).

use std::{io, path::Path};

use anyhow::Context as _;
use aya::programs::{
    links::{FdLink, LinkOrder, PinnedLink},
    tc::{SchedClassifierLink, TcAttachOptions},
    SchedClassifier, TcAttachType,
};

pub fn attach(prog: &mut SchedClassifier, dir: &Path, ifname: &str) -> anyhow::Result<()> {
    let pin = dir.join(ifname);
    let our_prog = prog.info()?.id();
    if let Ok(pinned) = PinnedLink::from_pin(&pin) {
        let link = FdLink::from(pinned);
        // A pin that is not a readable link is as stale as a detached one.
        let link_prog = link.info().map(|info| info.program_id()).unwrap_or(0);
        if link_prog != 0 && runs_on(ifname, link_prog) {
            if link_prog != our_prog {
                // A link from an older daemon: swap in this build's program atomically.
                let link = SchedClassifierLink::try_from(link)?;
                let id = prog
                    .attach_to_link(link)
                    .with_context(|| format!("updating the tcx link of {ifname}"))?;
                // Drop our fd; the pin keeps the link.
                drop(prog.take_link(id)?);
            }
            return Ok(());
        }
        // The veth it was attached to is gone (maybe recreated under the same name).
        remove_pin(&pin)?;
    }
    let id = prog
        .attach_with_options(
            ifname,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .with_context(|| format!("attaching from_sandbox at tcx ingress of {ifname}"))?;
    let link = FdLink::try_from(prog.take_link(id)?)?;
    // The returned PinnedLink holds the last fd; dropping it leaves only the pin.
    link.pin(&pin)
        .with_context(|| format!("pinning the link at {}", pin.display()))?;
    Ok(())
}

/// Whether program `prog_id` is attached at tcx ingress of `ifname` right now.
fn runs_on(ifname: &str, prog_id: u32) -> bool {
    SchedClassifier::query_tcx(ifname, TcAttachType::Ingress)
        .map(|(_, progs)| progs.iter().any(|p| p.id() == prog_id))
        .unwrap_or(false)
}

pub fn detach(dir: &Path, ifname: &str) -> anyhow::Result<()> {
    remove_pin(&dir.join(ifname))
}

pub fn attached(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn remove_pin(pin: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(pin) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", pin.display()))
        }
        _ => Ok(()),
    }
}
