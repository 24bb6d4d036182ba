//! Errors of a command and the documented exit codes.

use std::fmt;
use std::process::ExitCode;

use keyward::store::StoreError;

/// Success.
pub(crate) const OK: u8 = 0;
/// Internal or store backend error.
const INTERNAL: u8 = 1;
/// Bad usage or invalid input (also clap's code for usage errors).
const INVALID: u8 = 2;
/// The account or key does not exist.
const NOT_FOUND: u8 = 3;
/// Already exists, changed concurrently, a protected key, or an
/// application that still has keys.
const CONFLICT: u8 = 4;
/// The store cannot be reached.
const UNAVAILABLE: u8 = 5;

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// From the service.
    Keyward(keyward::Error),
    /// From opening or migrating the store.
    Store(StoreError),
    /// An argument the CLI itself could not use.
    Input(String),
}

impl Failure {
    /// The process exit code for this failure.
    pub(crate) fn code(&self) -> u8 {
        use keyward::Error as E;
        match self {
            Self::Input(_) => INVALID,
            Self::Store(StoreError::Unavailable(_)) => UNAVAILABLE,
            Self::Store(StoreError::NotFound) => NOT_FOUND,
            Self::Store(StoreError::Conflict(_)) => CONFLICT,
            Self::Store(_) => INTERNAL,
            Self::Keyward(e) => match e {
                E::InvalidInput { .. } | E::NotGrantable { .. } | E::Malformed(_) => INVALID,
                E::NotFound(_) => NOT_FOUND,
                E::Conflict(_) | E::Protected | E::AppHasKeys => CONFLICT,
                E::Unavailable(_) => UNAVAILABLE,
                _ => INTERNAL,
            },
        }
    }

    /// The exit code as a process status.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e: &dyn std::error::Error = match self {
            Self::Input(s) => return f.write_str(s),
            Self::Keyward(e) => e,
            Self::Store(e) => e,
        };
        write!(f, "{e}")?;
        let mut source = e.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl From<keyward::Error> for Failure {
    fn from(e: keyward::Error) -> Self {
        Self::Keyward(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Shorthand for an invalid argument.
pub(crate) fn input(what: &str, e: impl fmt::Display) -> Failure {
    Failure::Input(format!("invalid {what}: {e}"))
}

/// A command's result.
pub(crate) type CliResult<T = ()> = Result<T, Failure>;
