//! The CLI's error: each variant renders as the one stderr line a user sees.
use std::error::Error as StdError;
use std::path::Path;

/// Why a CLI command failed. `Display` is the full line printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon answered with an error status; the text is its `ErrorReply` message.
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
    /// The socket could not be connected to.
    #[error(
        "Error: cannot connect to the netd daemon at {socket}: {reason}. Is the daemon running?"
    )]
    Unreachable { socket: String, reason: String },
    /// The connection broke or timed out after it was made.
    #[error("Error: {0}")]
    Transport(String),
    /// Bad input or an unexpected reply, found on this side.
    #[error("Error: {0}")]
    Client(String),
    /// Already printed: some names of a multi-name command failed.
    #[error("one or more names failed")]
    Reported,
}

impl CliError {
    pub fn unreachable(socket: &Path, err: &std::io::Error) -> Self {
        Self::Unreachable {
            socket: socket.display().to_string(),
            reason: err.to_string(),
        }
    }

    /// A transport error, with its chain of causes joined by `: `.
    pub fn transport(what: &str, err: &(dyn StdError + 'static)) -> Self {
        let mut text = format!("{what}: {err}");
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport(text)
    }

    /// Whether the daemon is out of reach, so trying the next name of a
    /// multi-name command would only repeat the same error.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Transport(_))
    }
}

/// Per-name failures of a multi-name command (`rm`, `inspect`), handled like docker:
/// print each failure, go on with the next name, fail the command at the end.
#[derive(Debug, Default)]
pub struct Failures {
    /// Whether any name failed so far.
    any: bool,
}

impl Failures {
    /// Prints a per-name error and goes on; hands fatal errors back to stop the loop.
    pub fn record(&mut self, err: CliError) -> Result<(), CliError> {
        if err.is_fatal() {
            return Err(err);
        }
        eprintln!("{err}");
        self.any = true;
        Ok(())
    }

    pub fn finish(self) -> Result<(), CliError> {
        if self.any {
            Err(CliError::Reported)
        } else {
            Ok(())
        }
    }
}
