//! The operator tools `spread-tail` and `spread-pipe`.

pub mod pipe;
pub mod tail;

/// What a tool's command line asks for (conventions: `spread_sys::cli`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<T> {
    Run(T),
    Help,
    Version,
}

/// The options to run with, or the exit code when the command line asked for help or the
/// version (answered here) or was wrong (said here).
pub(crate) fn options_or_exit<T, E: std::fmt::Display>(
    parsed: Result<Parsed<T>, E>,
    program: &str,
    usage: &str,
) -> Result<T, i32> {
    match parsed {
        Ok(Parsed::Run(o)) => Ok(o),
        Ok(other) => Err(other.answer(program, usage)),
        Err(e) => Err(spread_sys::cli::usage_error(program, e)),
    }
}

impl<T> Parsed<T> {
    /// Answer `--help` or `--version` for `program`; the exit code.
    pub(crate) fn answer(self, program: &str, usage: &str) -> i32 {
        match self {
            Parsed::Help => println!("{usage}"),
            Parsed::Version => println!("{}", spread_sys::cli::version_line(program)),
            Parsed::Run(_) => {}
        }
        0
    }
}
