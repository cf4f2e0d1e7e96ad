//! The HTTP+JSON API on the daemon's unix socket.
pub mod server;
pub mod types;
