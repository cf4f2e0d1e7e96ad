//! Servers that run inside a test namespace, on a thread that `setns`-es into it, so the
//! suite needs no netcat: bash's `/dev/tcp` and `/dev/udp` are the clients.
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Moves the calling thread into the network namespace `/run/netns/<name>`. Only this
/// thread changes namespace; the test's other threads stay where they were.
fn enter_netns(name: &str) -> Result<(), String> {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
    // SAFETY: setns(2) on a valid fd with CLONE_NEWNET affects only the calling thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// A one-shot server: answers the first request it gets with `pong` and reports the line
/// it read.
pub struct Server {
    handle: JoinHandle<Result<String, String>>,
    pub port: u16,
}

impl Server {
    /// The line the client sent, or why none arrived.
    pub fn result(self) -> Result<String, String> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err("server thread panicked".into()))
    }
}

/// Starts a TCP server on `ip:0` inside netns `ns`; it gives up after `timeout`.
pub fn tcp_server(ns: &str, ip: &str, timeout: Duration) -> Server {
    let (tx, rx) = mpsc::channel();
    let ns_name = ns.to_string();
    let ip = ip.to_string();
    let handle = std::thread::spawn(move || -> Result<String, String> {
        let setup = (|| {
            enter_netns(&ns_name)?;
            let l = TcpListener::bind((ip.as_str(), 0)).map_err(|e| format!("bind {ip}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok::<_, String>(l)
        })();
        let listener = match setup {
            Ok(l) => {
                let _ = tx.send(Ok(l.local_addr().map(|a| a.port()).unwrap_or(0)));
                l
            }
            Err(e) => {
                let _ = tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        let deadline = Instant::now() + timeout;
        let (stream, _) = loop {
            match listener.accept() {
                Ok(s) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(format!("no TCP connection within {timeout:?}"));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        (&stream)
            .write_all(b"pong\n")
            .map_err(|e| format!("write: {e}"))?;
        Ok(line.trim().to_string())
    });
    let port = match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => panic!("TCP server in {ns}: {e}"),
        Err(_) => panic!("TCP server did not start within 5 s"),
    };
    Server { handle, port }
}

/// Starts a UDP server on `ip:0` inside netns `ns`: it answers every datagram with
/// `pong` until `timeout` passes or one datagram was answered.
pub fn udp_server(ns: &str, ip: &str, timeout: Duration) -> Server {
    let (tx, rx) = mpsc::channel();
    let ns_name = ns.to_string();
    let ip = ip.to_string();
    let handle = std::thread::spawn(move || -> Result<String, String> {
        let setup = (|| {
            enter_netns(&ns_name)?;
            let s = UdpSocket::bind((ip.as_str(), 0)).map_err(|e| format!("bind {ip}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(s)
        })();
        let sock = match setup {
            Ok(s) => {
                let _ = tx.send(Ok(s.local_addr().map(|a| a.port()).unwrap_or(0)));
                s
            }
            Err(e) => {
                let _ = tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 1500];
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    sock.send_to(b"pong\n", from)
                        .map_err(|e| format!("send_to {from}: {e}"))?;
                    return Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string());
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(format!("recv: {e}")),
            }
            if Instant::now() >= deadline {
                return Err(format!("no UDP datagram within {timeout:?}"));
            }
        }
    });
    let port = match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => panic!("UDP server in {ns}: {e}"),
        Err(_) => panic!("UDP server did not start within 5 s"),
    };
    Server { handle, port }
}

/// bash client for [`tcp_server`]: sends `ping`, prints the reply.
pub fn tcp_client_script(ip: &str, port: u16) -> String {
    format!("exec 3<>/dev/tcp/{ip}/{port} && echo ping >&3 && read -t 3 -u 3 l && echo \"$l\"")
}

/// bash client for [`udp_server`]: sends `ping` up to three times, prints the first reply.
/// The reply is read with `dd` (one read(2) of a whole datagram): bash's `read` reads a
/// byte at a time, which on a datagram socket keeps only the first byte.
pub fn udp_client_script(ip: &str, port: u16) -> String {
    format!(
        "exec 3<>/dev/udp/{ip}/{port} || exit 1; for i in 1 2 3; do echo ping >&3; \
         r=$(timeout 1 dd bs=1500 count=1 <&3 2>/dev/null) && [ -n \"$r\" ] && \
         {{ echo \"$r\"; exit 0; }}; done; exit 1"
    )
}
