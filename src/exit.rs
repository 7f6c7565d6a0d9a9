//! Exit statuses shared by every command (design §3.3), and the error type that carries one.

use std::fmt;

/// How a command ended, as the process exit code users' scripts rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done, or nothing to do.
    Success = 0,
    /// Some site or certificate failed; others may have succeeded.
    Failed = 1,
    /// Usage or configuration error: bad flags, unreadable or unparseable nginx config, missing
    /// credentials, `nginx -t` failing before we touched anything.
    Usage = 2,
    /// Another run holds the lock.
    Locked = 3,
}

impl ExitStatus {
    /// The numeric process exit code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An error that ends a command, with the exit status it maps to.
#[derive(Debug)]
pub struct Failure {
    /// The exit status the process ends with.
    pub status: ExitStatus,
    /// What went wrong, with context for the user.
    pub error: anyhow::Error,
}

impl Failure {
    /// A usage or configuration error (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            status: ExitStatus::Usage,
            error: error.into(),
        }
    }

    /// A failure of the work itself (exit 1).
    pub fn failed(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            status: ExitStatus::Failed,
            error: error.into(),
        }
    }

    /// Another run holds the lock (exit 3).
    pub fn locked(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            status: ExitStatus::Locked,
            error: error.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl From<anyhow::Error> for Failure {
    /// Errors without an explicit status are failures of the work (exit 1).
    fn from(error: anyhow::Error) -> Failure {
        Failure::failed(error)
    }
}

/// What every command returns.
pub type CommandResult = Result<ExitStatus, Failure>;
