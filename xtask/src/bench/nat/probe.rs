//! New-connection latency: a client thread in one namespace times connect() to a published
//! port; listeners in the server namespace accept and close. No external tool: a process start
//! per connection would swamp the tens of microseconds being measured.
//!
//! A thread that joins a namespace with setns(2) only changes its own namespace; sockets it
//! creates stay in that namespace for their whole life, whichever thread uses them later.

use std::fs::File;
use std::io::ErrorKind;
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{sleep, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::interrupt;

/// A connect() that takes this long has lost its SYN: the path is broken, not slow.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound of one latency loop, whatever the count.
const LOOP_LIMIT: Duration = Duration::from_secs(60);
/// Upper bound of a listener's life: a forgotten server still ends.
const SERVER_LIMIT: Duration = Duration::from_secs(3600);

/// Runs `work` on a new thread inside `/run/netns/<netns>` and returns its result.
pub fn in_netns<T, F>(netns: &str, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let path = Path::new("/run/netns").join(netns);
    std::thread::spawn(move || {
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: setns(2) with a valid fd; it affects only this thread, which ends after `work`.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!(
                "setns({}): {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        work()
    })
    .join()
    .map_err(|_| anyhow!("the thread in {netns} panicked"))?
}

/// TCP listeners on 0.0.0.0 in a server namespace, drained by one thread; stopped on drop.
pub struct ProbeServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProbeServer {
    pub fn start(netns: &str, ports: &[u16]) -> Result<Self> {
        let ports = ports.to_vec();
        let listeners = in_netns(netns, move || {
            ports
                .iter()
                .map(|&port| {
                    let listener = TcpListener::bind(("0.0.0.0", port))
                        .with_context(|| format!("cannot listen on port {port}"))?;
                    listener.set_nonblocking(true)?;
                    Ok(listener)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || accept_loop(&listeners, &stop_flag));
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

/// Accepts and closes at once: the backlog must never fill, or connect() would stall.
fn accept_loop(listeners: &[TcpListener], stop: &AtomicBool) {
    let started = Instant::now();
    while !stop.load(Ordering::SeqCst) && started.elapsed() < SERVER_LIMIT {
        let mut idle = true;
        for listener in listeners {
            // Bounded: the backlog holds at most a few hundred connections.
            for _ in 0..1024 {
                match listener.accept() {
                    Ok((stream, _)) => {
                        idle = false;
                        drop(stream);
                    }
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
        }
        if idle {
            sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for ProbeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Times `count` connect()+close() cycles from `netns` to `target` after `warmup` untimed ones.
pub fn connect_latency(
    netns: &str,
    target: SocketAddrV4,
    warmup: u32,
    count: u32,
) -> Result<Vec<Duration>> {
    in_netns(netns, move || {
        let started = Instant::now();
        let mut samples = Vec::with_capacity(count as usize);
        for cycle in 0..warmup + count {
            interrupt::check()?;
            if started.elapsed() > LOOP_LIMIT {
                bail!("connect loop to {target} exceeded {LOOP_LIMIT:?} after {cycle} cycles");
            }
            let begin = Instant::now();
            let stream = TcpStream::connect_timeout(&target.into(), CONNECT_TIMEOUT)
                .with_context(|| format!("connect to {target} (cycle {cycle})"))?;
            let elapsed = begin.elapsed();
            drop(stream);
            if cycle >= warmup {
                samples.push(elapsed);
            }
        }
        Ok(samples)
    })
}
