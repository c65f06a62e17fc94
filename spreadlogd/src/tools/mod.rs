//! The operator tools `spread-tail` and `spread-pipe`.

pub mod pipe;
pub mod tail;

/// `-s NAME` / `-sNAME` / `--spread NAME` plus positional arguments, shared by both tools.
pub(crate) fn take_value(
    arg: &str,
    flag: &str,
    it: &mut impl Iterator<Item = String>,
) -> Option<Result<String, String>> {
    if arg == flag {
        return Some(
            it.next()
                .ok_or_else(|| format!("option {flag} needs a value")),
        );
    }
    if flag.len() == 2 && arg.starts_with(flag) && arg.len() > 2 {
        return Some(Ok(arg[2..].to_owned()));
    }
    None
}
