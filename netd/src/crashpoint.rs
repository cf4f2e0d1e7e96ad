//! Deliberate crashes for recovery tests: `NETD_CRASH_AT=<point>` aborts the daemon when it
//! reaches that point, the way a power cut or `kill -9` would mid-operation.

/// Aborts the process if `NETD_CRASH_AT` names `point`.
pub fn hit(point: &str) {
    if std::env::var("NETD_CRASH_AT").is_ok_and(|p| p == point) {
        tracing::error!(point, "NETD_CRASH_AT reached: aborting");
        std::process::abort();
    }
}
