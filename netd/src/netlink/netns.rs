//! Network namespaces: resolving the user's NETNS argument, persisting named ones under
//! `/run/netns` the way `ip netns add` does, and running code inside one.
//!
//! A thread's network namespace is a per-thread property (`setns(CLONE_NEWNET)` and
//! `unshare(CLONE_NEWNET)` affect only the calling thread). Work that lives inside a namespace
//! runs on a fresh OS thread that enters it and then exits ([`run_in`], [`create_named`]). The
//! one exception is [`Visit`]: a daemon thread steps in for a synchronous moment to open a
//! socket or write a sysctl, which stay bound to that namespace, and steps back out; this
//! keeps thread hand-offs (and their scheduling delays) off the `network connect` path.
//! `rtnetlink::NetworkNamespace` is not used: it forks, which does not fit a multithreaded
//! daemon.
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::future::Future;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

/// Where named network namespaces live (iproute2's NETNS_RUN_DIR).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A name under /run/netns, or an absolute path to a netns file (such as `/proc/PID/ns/net`).
/// Fails with "no such network namespace: X" if it is absent or not a network namespace.
pub fn resolve(arg: &str) -> Result<PathBuf> {
    let path = if arg.contains('/') {
        PathBuf::from(arg)
    } else {
        Path::new(NETNS_RUN_DIR).join(arg)
    };
    match open(&path) {
        Ok(_) if !arg.is_empty() => Ok(path),
        _ => bail!("no such network namespace: {arg}"),
    }
}

/// Opens a netns file and checks that it is one (nsfs + `NS_GET_NSTYPE`), without entering it.
/// Errors: "network namespace P does not exist" or "P is not a network namespace".
pub fn open(path: &Path) -> Result<File> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("network namespace {} does not exist", path.display())
        }
        Err(e) => bail!("cannot open network namespace {}: {e}", path.display()),
    };
    let is_nsfs = fstatfs(&file).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC);
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor's namespace type.
    let is_net = is_nsfs
        && unsafe { libc::ioctl(file.as_raw_fd(), libc::NS_GET_NSTYPE) } == libc::CLONE_NEWNET;
    if !is_net {
        bail!("{} is not a network namespace", path.display());
    }
    Ok(file)
}

/// Like `ip netns add NAME`: a new network namespace, persisted by a bind mount at
/// /run/netns/NAME (with /run/netns made a shared mount, as iproute2 does), with `lo` up.
pub fn create_named(name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let path = mount_point(name)?;
    let target = path.clone();
    let made = spawn_thread(move || {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| anyhow!("cannot create a network namespace: {}", e.desc()))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| anyhow!("cannot bind-mount {}: {}", target.display(), e.desc()))?;
        block_on(super::link_up_lo_here())?
    })
    .and_then(|joined| joined);
    if let Err(e) = made {
        remove_mount_point(&path);
        return Err(e);
    }
    Ok(path)
}

/// Creates the empty file /run/netns/NAME that a namespace gets bind-mounted on.
fn mount_point(name: &str) -> Result<PathBuf> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(NETNS_RUN_DIR)
        .with_context(|| format!("cannot create {NETNS_RUN_DIR}"))?;
    share_run_dir()?;
    let path = Path::new(NETNS_RUN_DIR).join(name);
    // The mount point; iproute2 creates it with mode 0 too.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("network namespace {name} already exists")
        }
        Err(e) => bail!("cannot create {}: {e}", path.display()),
    }
    Ok(path)
}

/// A name under /run/netns for an existing namespace (`source`, e.g. the daemon's own):
/// a bind mount only; nothing is created or changed inside it.
pub fn bind_named(name: &str, source: &str) -> Result<PathBuf> {
    check_name(name)?;
    let path = mount_point(name)?;
    let target = path.clone();
    let source = source.to_owned();
    // A thread of our own, so that thread-self is a thread in the daemon's netns.
    let made = spawn_thread(move || {
        mount(
            Some(source.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| anyhow!("cannot bind-mount {}: {}", target.display(), e.desc()))
    })
    .and_then(|joined| joined);
    if let Err(e) = made {
        remove_mount_point(&path);
        return Err(e);
    }
    Ok(path)
}

/// Like `ip netns del NAME`: detaches the bind mount and removes the file. Missing is fine.
pub fn delete_named(name: &str) -> Result<()> {
    check_name(name)?;
    let path = Path::new(NETNS_RUN_DIR).join(name);
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => bail!("cannot unmount {}: {}", path.display(), e.desc()),
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => bail!("cannot remove {}: {e}", path.display()),
    }
}

/// (st_dev, st_ino) of a netns file: equal for two paths of the same namespace, different once
/// a name is reused for a new namespace.
pub fn identity(path: &Path) -> Result<(u64, u64)> {
    let meta = fs::metadata(path)
        .map_err(|_| anyhow!("network namespace {} does not exist", path.display()))?;
    Ok((meta.dev(), meta.ino()))
}

/// Runs `f` on a fresh thread that has entered the network namespace at `path`, and waits for
/// it. Blocks the caller; from async code prefer [`run_in_async`]. A panic in `f` is resumed.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = open(path)?;
    spawn_thread(move || enter(&ns).and_then(|()| f()))?
}

/// Async form of [`run_in`]: the caller's task waits without blocking its worker thread.
pub async fn run_in_async<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = open(path)?;
    spawn_in(ns, f).await
}

/// Starts `f` on a fresh thread inside the namespace `ns`; the future yields its result.
fn spawn_in<T: Send + 'static>(
    ns: File,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> impl Future<Output = Result<T>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = std::thread::Builder::new()
        .name("netd-netns".into())
        .spawn(move || {
            let _ = tx.send(enter(&ns).and_then(|()| f()));
        });
    async move {
        started.context("cannot start a thread")?;
        rx.await
            .map_err(|_| anyhow!("thread in a network namespace panicked"))?
    }
}

/// Runs a future to completion on a current-thread runtime owned by the calling thread (used on
/// threads that entered a namespace, so their netlink sockets and sysctl files belong to it).
pub(crate) fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot start a tokio runtime")?;
    Ok(rt.block_on(fut))
}

/// While alive, the calling thread is inside another network namespace; dropping it moves the
/// thread back where it was. For short synchronous sections only (opening a socket, writing a
/// sysctl) on threads that must not stay there, such as the daemon's tokio workers: it is
/// `!Send`, so a spawned future cannot hold it across an `.await`.
pub(crate) struct Visit {
    /// The namespace the thread came from.
    home: File,
    /// Pins the guard to its thread.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Visit {
    /// Moves the calling thread into `ns` until the guard is dropped.
    pub(crate) fn enter(ns: &File) -> Result<Visit> {
        let home = File::open("/proc/thread-self/ns/net")
            .context("cannot open the thread's network namespace")?;
        enter(ns)?;
        Ok(Visit {
            home,
            _not_send: std::marker::PhantomData,
        })
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.home, CloneFlags::CLONE_NEWNET) {
            // A worker left in a sandbox would act on the wrong namespace from now on.
            tracing::error!(
                "cannot return to the daemon's network namespace: {}",
                e.desc()
            );
            std::process::abort();
        }
    }
}

/// Moves the calling thread into the network namespace `ns`.
fn enter(ns: &File) -> Result<()> {
    setns(ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| anyhow!("cannot enter network namespace: {}", e.desc()))
}

/// Runs `f` on a fresh thread and joins it, resuming its panic if it panicked.
fn spawn_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let thread = std::thread::Builder::new()
        .name("netd-netns".into())
        .spawn(f)
        .context("cannot start a thread")?;
    match thread.join() {
        Ok(value) => Ok(value),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Makes /run/netns a shared mount (bind-mounting it onto itself first if it is not a mount
/// point), so namespaces mounted there propagate to other mount namespaces, like iproute2.
fn share_run_dir() -> Result<()> {
    let shared = || {
        mount(
            Some(""),
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => return Ok(()),
        Err(Errno::EINVAL) => {}
        Err(e) => bail!("cannot make {NETNS_RUN_DIR} a shared mount: {}", e.desc()),
    }
    mount(
        Some(NETNS_RUN_DIR),
        NETNS_RUN_DIR,
        Some("none"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .and_then(|()| shared())
    .map_err(|e| anyhow!("cannot make {NETNS_RUN_DIR} a shared mount: {}", e.desc()))
}

/// Best-effort removal of a half-made namespace mount point.
fn remove_mount_point(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = fs::remove_file(path);
}

/// A namespace name must be one path component.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['/', '\0'])
    {
        bail!("invalid network namespace name: {name:?}");
    }
    Ok(())
}
