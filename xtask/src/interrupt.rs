//! Ctrl-C (or SIGTERM/SIGHUP) handling that keeps cleanup guards working.
//!
//! The default action would kill xtask at once and leave namespaces, daemons and pins behind.
//! Instead the signal only sets a flag: children in the foreground process group still get
//! the signal and exit, the waiting code sees a failure or calls [`check`], and the guards'
//! `Drop` impls run while the error unwinds to `main`.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Only an atomic store: the one thing that is safe inside a signal handler.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn install_handler() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(signal, handler) };
    }
}

/// Fails once a stop signal has arrived, so bounded loops end early and cleanup runs.
pub fn check() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}
