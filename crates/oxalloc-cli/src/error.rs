//! The tool's one error type: a message for one line on stderr and the exit code to use.

use std::fmt;

/// Exit code for errors of the tool itself (bad usage, missing library, process gone).
pub const EXIT_TOOL_ERROR: u8 = 2;

#[derive(Debug)]
pub struct Error {
    pub msg: String,
    pub code: u8,
}

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            code: EXIT_TOOL_ERROR,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
