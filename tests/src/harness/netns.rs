//! Servers that run inside a test namespace, on a thread that `setns`-es into it, so the
//! suite needs no netcat: bash's `/dev/tcp` and `/dev/udp` are the clients.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
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

// ---- helpers for NAT and port publishing: servers that tell the client which source
// address they saw, clients that run in a namespace, and sockets held open ----

/// At most this long does an [`EchoServer`] live, even if nobody stops it.
const ECHO_LIFETIME: Duration = Duration::from_secs(120);
/// How often server loops look at their stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Runs `f` on a new thread that entered netns `ns` and waits at most `timeout` for it.
/// Sockets `f` creates belong to `ns` for their whole life, wherever they are used later.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    timeout: Duration,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    let name = ns.to_string();
    std::thread::spawn(move || {
        let r = enter_netns(&name).and_then(|()| f());
        let _ = tx.send(r);
    });
    rx.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(format!(
            "helper in netns {ns} did not finish within {timeout:?}"
        ))
    })
}

/// Transport protocol of an [`EchoServer`] or a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// `tcp` / `udp`, as in `-p` specs and `port ls`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A server in a netns that answers every line (TCP) or datagram (UDP) with
/// `<peer ip>:<peer port> <what it got>`, so the client learns which source address the
/// server saw. Serves any number of clients (TCP connections concurrently) until dropped.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
    /// Where it listens.
    pub addr: SocketAddr,
    pub proto: Proto,
}

impl EchoServer {
    /// Starts an echo server on `bind` (`ip:port`, port 0 for any) in netns `ns`.
    pub fn start(ns: &str, proto: Proto, bind: &str) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let ns_name = ns.to_string();
        let bind_addr = bind.to_string();
        let stop2 = stop.clone();
        let hits = Arc::new(AtomicUsize::new(0));
        let hits2 = hits.clone();
        let handle = std::thread::spawn(move || {
            if let Err(e) = enter_netns(&ns_name) {
                let _ = tx.send(Err(e));
                return;
            }
            match proto {
                Proto::Tcp => match TcpListener::bind(bind_addr.as_str()) {
                    Ok(l) => {
                        let _ = tx.send(l.local_addr().map_err(|e| e.to_string()));
                        tcp_echo_loop(l, stop2, hits2);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("bind tcp {bind_addr}: {e}")));
                    }
                },
                Proto::Udp => match UdpSocket::bind(bind_addr.as_str()) {
                    Ok(s) => {
                        let _ = tx.send(s.local_addr().map_err(|e| e.to_string()));
                        udp_echo_loop(s, stop2, hits2);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("bind udp {bind_addr}: {e}")));
                    }
                },
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => panic!("echo server ({proto:?}) in {ns}: {e}"),
            Err(_) => panic!("echo server ({proto:?}) in {ns} did not start within 5 s"),
        };
        EchoServer {
            stop,
            hits,
            handle: Some(handle),
            addr,
            proto,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// TCP connections accepted / UDP datagrams received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn tcp_echo_loop(l: TcpListener, stop: Arc<AtomicBool>, hits: Arc<AtomicUsize>) {
    let deadline = Instant::now() + ECHO_LIFETIME;
    if l.set_nonblocking(true).is_err() {
        return;
    }
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match l.accept() {
            Ok((stream, peer)) => {
                hits.fetch_add(1, Ordering::SeqCst);
                let stop = stop.clone();
                std::thread::spawn(move || tcp_echo_conn(stream, peer, stop, deadline));
            }
            Err(e) if would_block(&e) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn tcp_echo_conn(mut s: TcpStream, peer: SocketAddr, stop: Arc<AtomicBool>, deadline: Instant) {
    if s.set_nonblocking(false).is_err() || s.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                    if s.write_all(format!("{peer} {text}\n").as_bytes()).is_err() {
                        return;
                    }
                }
            }
            Err(e) if would_block(&e) => {}
            Err(_) => return,
        }
    }
}

fn udp_echo_loop(s: UdpSocket, stop: Arc<AtomicBool>, hits: Arc<AtomicUsize>) {
    let deadline = Instant::now() + ECHO_LIFETIME;
    if s.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        if let Ok((n, peer)) = s.recv_from(&mut buf) {
            hits.fetch_add(1, Ordering::SeqCst);
            let text = String::from_utf8_lossy(&buf[..n]).trim().to_string();
            let _ = s.send_to(format!("{peer} {text}\n").as_bytes(), peer);
        }
    }
}

/// What an [`EchoServer`] answered.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The source address the server saw (IP only).
    pub seen_from: String,
    /// The source port the server saw.
    pub seen_port: u16,
    /// The whole answer line.
    pub text: String,
    /// The client's own address.
    pub local: SocketAddr,
    /// The server address as the client's socket reports it: `getpeername` for TCP, the
    /// source of the answer (`recvfrom`) for UDP.
    pub peer: SocketAddr,
}

fn parse_reply(text: &str, local: SocketAddr, peer: SocketAddr) -> Result<Reply, String> {
    let text = text.trim().to_string();
    let first = text.split_whitespace().next().unwrap_or_default();
    let seen: SocketAddr = first
        .parse()
        .map_err(|e| format!("echo answer {text:?} does not start with ip:port: {e}"))?;
    Ok(Reply {
        seen_from: seen.ip().to_string(),
        seen_port: seen.port(),
        text,
        local,
        peer,
    })
}

fn sock_addr(ip: &str, port: u16) -> Result<SocketAddr, String> {
    format!("{ip}:{port}")
        .parse()
        .map_err(|e| format!("address {ip}:{port}: {e}"))
}

/// One TCP exchange from netns `ns` with the [`EchoServer`] at `ip:port`: connect, send
/// `ping`, read the answer; every step bounded by `timeout`.
pub fn tcp_ask(ns: &str, ip: &str, port: u16, timeout: Duration) -> Result<Reply, String> {
    let dst = sock_addr(ip, port)?;
    in_netns(ns, timeout * 3 + Duration::from_secs(2), move || {
        let mut session = TcpSession::connect(dst, timeout)?;
        session.ask("ping")
    })
}

/// [`tcp_ask`] from source port `src_port` (bound before connecting).
pub fn tcp_ask_from(
    ns: &str,
    src_port: u16,
    ip: &str,
    port: u16,
    timeout: Duration,
) -> Result<Reply, String> {
    let dst = sock_addr(ip, port)?;
    in_netns(ns, timeout * 3 + Duration::from_secs(2), move || {
        let stream = tcp_connect_from(src_port, dst, timeout)?;
        let mut session = TcpSession::from_stream(stream, timeout)?;
        session.ask("ping")
    })
}

/// A blocking TCP connect from `0.0.0.0:src_port` to `dst`, bounded by `timeout`
/// (SO_SNDTIMEO bounds connect(2) on Linux).
fn tcp_connect_from(
    src_port: u16,
    dst: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let SocketAddr::V4(dst4) = dst else {
        return Err(format!("{dst} is not IPv4"));
    };
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: socket(2) with constant arguments; the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let src = sin(Ipv4Addr::UNSPECIFIED, src_port);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: bind(2) with a sockaddr_in of the length passed.
    if unsafe { libc::bind(fd, (&src as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(format!(
            "bind 0.0.0.0:{src_port}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let to = sin(*dst4.ip(), dst4.port());
    // SAFETY: connect(2) with a sockaddr_in of the length passed.
    if unsafe { libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(format!(
            "TCP connect 0.0.0.0:{src_port} -> {dst}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(stream)
}

/// One UDP exchange from netns `ns` with the [`EchoServer`] at `ip:port` from a fresh
/// unconnected socket: up to 3 tries, each waiting `timeout / 3` for the answer.
pub fn udp_ask(ns: &str, ip: &str, port: u16, timeout: Duration) -> Result<Reply, String> {
    udp_ask_from(ns, 0, ip, port, timeout)
}

/// [`udp_ask`] from source port `src_port` (0: any).
pub fn udp_ask_from(
    ns: &str,
    src_port: u16,
    ip: &str,
    port: u16,
    timeout: Duration,
) -> Result<Reply, String> {
    udp_exchange(ns, src_port, ip, port, b"ping\n".to_vec(), timeout)
}

/// [`udp_ask`] with a datagram of `size` bytes (`ping` then `x`s): above the MTU it leaves
/// as IP fragments, and so does the echo.
pub fn udp_ask_sized(
    ns: &str,
    ip: &str,
    port: u16,
    size: usize,
    timeout: Duration,
) -> Result<Reply, String> {
    let mut payload = b"ping".to_vec();
    payload.resize(size.max(4), b'x');
    udp_exchange(ns, 0, ip, port, payload, timeout)
}

fn udp_exchange(
    ns: &str,
    src_port: u16,
    ip: &str,
    port: u16,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<Reply, String> {
    let dst = sock_addr(ip, port)?;
    in_netns(ns, timeout + Duration::from_secs(3), move || {
        let s = UdpSocket::bind(("0.0.0.0", src_port))
            .map_err(|e| format!("bind 0.0.0.0:{src_port}: {e}"))?;
        let each = (timeout / 3).max(Duration::from_millis(100));
        s.set_read_timeout(Some(each)).map_err(|e| e.to_string())?;
        let local = s.local_addr().map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65536];
        let mut last = String::from("no answer");
        for _ in 0..3 {
            s.send_to(&payload, dst)
                .map_err(|e| format!("send_to {dst}: {e}"))?;
            match s.recv_from(&mut buf) {
                Ok((n, from)) => {
                    return parse_reply(&String::from_utf8_lossy(&buf[..n]), local, from)
                }
                Err(e) if would_block(&e) => last = format!("no answer within {each:?}"),
                Err(e) => last = format!("recv_from: {e}"),
            }
        }
        Err(format!("UDP {local} -> {dst}: {last} (3 tries)"))
    })
}

/// [`udp_ask`] from a `connect`ed UDP socket (`send`/`recv`, as many resolvers do): the
/// destination is rewritten at connect time, not per datagram.
pub fn udp_ask_connected(
    ns: &str,
    ip: &str,
    port: u16,
    timeout: Duration,
) -> Result<Reply, String> {
    let dst = sock_addr(ip, port)?;
    in_netns(ns, timeout + Duration::from_secs(3), move || {
        let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
        s.connect(dst).map_err(|e| format!("connect {dst}: {e}"))?;
        let each = (timeout / 3).max(Duration::from_millis(100));
        s.set_read_timeout(Some(each)).map_err(|e| e.to_string())?;
        let local = s.local_addr().map_err(|e| e.to_string())?;
        let peer = s.peer_addr().map_err(|e| format!("getpeername: {e}"))?;
        let mut buf = [0u8; 2048];
        let mut last = String::from("no answer");
        for _ in 0..3 {
            s.send(b"ping\n")
                .map_err(|e| format!("send to {dst}: {e}"))?;
            match s.recv(&mut buf) {
                Ok(n) => return parse_reply(&String::from_utf8_lossy(&buf[..n]), local, peer),
                Err(e) if would_block(&e) => last = format!("no answer within {each:?}"),
                Err(e) => last = format!("recv: {e}"),
            }
        }
        Err(format!("connected UDP {local} -> {dst}: {last} (3 tries)"))
    })
}

/// The proto-generic form of [`tcp_ask`] / [`udp_ask`].
pub fn ask(
    proto: Proto,
    ns: &str,
    ip: &str,
    port: u16,
    timeout: Duration,
) -> Result<Reply, String> {
    match proto {
        Proto::Tcp => tcp_ask(ns, ip, port, timeout),
        Proto::Udp => udp_ask(ns, ip, port, timeout),
    }
}

/// A long-lived TCP connection to an [`EchoServer`], usable from any thread.
pub struct TcpSession {
    stream: TcpStream,
    buf: Vec<u8>,
    local: SocketAddr,
    peer: SocketAddr,
}

impl TcpSession {
    fn connect(dst: SocketAddr, timeout: Duration) -> Result<TcpSession, String> {
        let stream = TcpStream::connect_timeout(&dst, timeout)
            .map_err(|e| format!("TCP connect to {dst}: {e}"))?;
        TcpSession::from_stream(stream, timeout)
    }

    fn from_stream(stream: TcpStream, timeout: Duration) -> Result<TcpSession, String> {
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let local = stream.local_addr().map_err(|e| e.to_string())?;
        let peer = stream.peer_addr().map_err(|e| e.to_string())?;
        Ok(TcpSession {
            stream,
            buf: Vec::new(),
            local,
            peer,
        })
    }

    /// Connects from netns `ns` to `ip:port` (bounded by `timeout`).
    pub fn open(ns: &str, ip: &str, port: u16, timeout: Duration) -> Result<TcpSession, String> {
        let dst = sock_addr(ip, port)?;
        in_netns(ns, timeout + Duration::from_secs(2), move || {
            TcpSession::connect(dst, timeout)
        })
    }

    /// Connects from netns `ns`, source port `src_port`, to `ip:port`.
    pub fn open_from(
        ns: &str,
        src_port: u16,
        ip: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<TcpSession, String> {
        let dst = sock_addr(ip, port)?;
        in_netns(ns, timeout + Duration::from_secs(2), move || {
            let stream = tcp_connect_from(src_port, dst, timeout)?;
            TcpSession::from_stream(stream, timeout)
        })
    }

    /// Sends `msg` as one line and reads the echo server's answer line.
    pub fn ask(&mut self, msg: &str) -> Result<Reply, String> {
        let what = format!("TCP {} -> {}", self.local, self.peer);
        self.stream
            .write_all(format!("{msg}\n").as_bytes())
            .map_err(|e| format!("{what}: write: {e}"))?;
        let mut chunk = [0u8; 2048];
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return parse_reply(&String::from_utf8_lossy(&line), self.local, self.peer);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(format!("{what}: connection closed by the peer")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("{what}: read: {e}")),
            }
        }
    }
}

/// Sends one datagram to `ip:port` from each of `count` fresh sockets in netns `ns`, all
/// open at once so each is a distinct flow (distinct source port). Returns how many went
/// out.
pub fn udp_spray(ns: &str, ip: &str, port: u16, count: usize) -> Result<usize, String> {
    let dst = sock_addr(ip, port)?;
    in_netns(ns, Duration::from_secs(20), move || {
        let mut socks = Vec::with_capacity(count);
        for i in 0..count {
            let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind #{i}: {e}"))?;
            s.send_to(format!("spray {i}\n").as_bytes(), dst)
                .map_err(|e| format!("send #{i} to {dst}: {e}"))?;
            socks.push(s);
        }
        Ok(socks.len())
    })
}

/// A TCP listener on `addr` in netns `ns`, held open by the caller (e.g. to occupy a port).
pub fn hold_tcp_listener(ns: &str, addr: &str) -> TcpListener {
    let a = addr.to_string();
    in_netns(ns, Duration::from_secs(5), move || {
        TcpListener::bind(a.as_str()).map_err(|e| format!("bind tcp {a}: {e}"))
    })
    .unwrap_or_else(|e| panic!("in {ns}: {e}"))
}

/// A UDP socket bound to `addr` in netns `ns`, held open by the caller.
pub fn hold_udp_socket(ns: &str, addr: &str) -> UdpSocket {
    let a = addr.to_string();
    in_netns(ns, Duration::from_secs(5), move || {
        UdpSocket::bind(a.as_str()).map_err(|e| format!("bind udp {a}: {e}"))
    })
    .unwrap_or_else(|e| panic!("in {ns}: {e}"))
}

/// Records the source address of every ICMP echo request that reaches netns `ns`, with a
/// raw socket (no tcpdump needed).
pub struct IcmpWatch {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Ipv4Addr>>>,
}

impl IcmpWatch {
    pub fn start(ns: &str) -> IcmpWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let (tx, rx) = mpsc::channel();
        let name = ns.to_string();
        let handle = std::thread::spawn(move || {
            let fd = match enter_netns(&name).and_then(|()| raw_icmp_socket()) {
                Ok(fd) => {
                    let _ = tx.send(Ok(()));
                    fd
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Vec::new();
                }
            };
            let deadline = Instant::now() + ECHO_LIFETIME;
            let mut seen = Vec::new();
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                // SAFETY: recv(2) into a buffer we own, of its length, on our own fd.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 20 {
                    continue;
                }
                let n = n as usize;
                let ihl = ((buf[0] & 0x0f) as usize) * 4;
                if n > ihl && buf[ihl] == 8 {
                    seen.push(Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]));
                }
            }
            seen
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("ICMP watch in {ns}: {e}"),
            Err(_) => panic!("ICMP watch in {ns} did not start within 5 s"),
        }
        IcmpWatch {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops watching; the sources of the echo requests seen, in order.
    pub fn sources(mut self) -> Vec<Ipv4Addr> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for IcmpWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn raw_icmp_socket() -> Result<OwnedFd, String> {
    // SAFETY: socket(2) with constant arguments; the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd < 0 {
        return Err(format!(
            "raw ICMP socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: POLL.as_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt(2) with a pointer to a timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!("SO_RCVTIMEO: {}", std::io::Error::last_os_error()));
    }
    Ok(fd)
}
