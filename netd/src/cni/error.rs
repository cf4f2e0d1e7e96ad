//! CNI's error result: a code from the spec, a message, and details.
use serde::Serialize;

use crate::cli::error::CliError;

/// Error codes of the CNI specification (1.1.0, "Error").
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const UNDECODABLE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const OTHER: u32 = 999;
}

#[derive(Debug, Serialize)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

pub type Result<T> = std::result::Result<T, CniError>;

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// A failed call to the daemon: out of reach means "try again later"; otherwise the
    /// daemon's status says whose fault it is.
    pub fn from_daemon(err: CliError) -> Self {
        let code = match &err {
            CliError::Unreachable { .. }
            | CliError::Transport(_)
            | CliError::Daemon { status: 503, .. } => code::TRY_AGAIN_LATER,
            CliError::Daemon { status: 400, .. } => code::INVALID_CONFIG,
            CliError::Daemon { status: 404, .. } => code::UNKNOWN_CONTAINER,
            _ => code::OTHER,
        };
        let msg = match err {
            CliError::Daemon { message, .. } => message,
            other => other.to_string().trim_start_matches("Error: ").to_string(),
        };
        Self::new(code, msg)
    }
}
