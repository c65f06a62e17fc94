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
