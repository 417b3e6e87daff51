//! `oxalloc bench ARGS...`: hands over to the `oxalloc-bench` binary built next to the tool,
//! with the arguments unchanged (the benchmark suite owns its own options).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use crate::error::{Error, Result};
use crate::lib_locate;

pub fn main(args: Vec<OsString>) -> Result<u8> {
    let bench = lib_locate::bench()?;
    // `exec` only returns on failure.
    let e = std::process::Command::new(&bench).args(args).exec();
    Err(Error::new(format!("cannot run {}: {e}", bench.display())))
}
