//! `telescope run-app APP_DIR`: an unmodified Panorama application on the simulator.
//!
//! Panorama applications are Python; they run in a Python interpreter with the `panoramasdk`
//! package (`pip install ./telescope-py`), whose runner (`python -m panoramasdk run`) drives
//! the simulator's node through the native module. This command is that runner, started with
//! the interpreter that has it, so both spellings take the same options and give the same
//! exit codes.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Options are those of `python -m panoramasdk run` (see `telescope run-app APP_DIR --help`).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunAppArgs {
    /// The Python interpreter with `panoramasdk` installed (default: $TELESCOPE_PYTHON, the
    /// project venv target/venv, then python3).
    #[arg(long, env = "TELESCOPE_PYTHON")]
    pub python: Option<PathBuf>,
    /// The application directory and the runner's options, passed on as they are.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

fn interpreter(given: Option<PathBuf>) -> PathBuf {
    if let Some(p) = given {
        return p;
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// Runs the application; its exit code becomes this process's.
pub fn run(args: RunAppArgs) -> Result<u8> {
    let python = interpreter(args.python);
    let probe = Command::new(&python)
        .args(["-c", "import panoramasdk, telescope._native"])
        .output()
        .with_context(|| format!("cannot start {}", python.display()))?;
    if !probe.status.success() {
        bail!(
            "{} cannot import panoramasdk: install it with `pip install ./telescope-py` (or give --python)",
            python.display()
        );
    }
    let status = Command::new(&python)
        .args(["-m", "panoramasdk", "run"])
        .args(&args.args)
        .status()
        .with_context(|| format!("cannot start {}", python.display()))?;
    Ok(status.code().map_or(2, |c| u8::try_from(c).unwrap_or(2)))
}
