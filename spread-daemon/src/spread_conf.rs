//! The single-node subset of a real Spread `spread.conf` (PROTOCOL.md §15): one segment with one
//! daemon line, plus the handful of keys that mean something to a one-machine daemon. A config that
//! names several daemons describes a ring, which this daemon cannot be: that is an error that says so.

use std::path::PathBuf;

/// What a spread.conf contributes to our settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpreadConf {
    /// Port of the `Spread_Segment` (client port: TCP and unix socket name).
    pub port: Option<u16>,
    /// First word of the daemon line.
    pub daemon_name: Option<String>,
    pub max_session_messages: Option<usize>,
    /// We put the unix socket here (the C daemon's compile-time `/tmp` has no config key).
    pub runtime_dir: Option<PathBuf>,
    pub allowed_auth_methods: Option<Vec<String>>,
    pub required_auth_methods: Option<Vec<String>>,
    /// Keys real Spread knows that do nothing here; the caller logs them.
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpreadConfError {
    #[error("line {line}: {msg}")]
    Syntax { line: usize, msg: String },
    #[error(
        "this spread.conf names {count} daemons ({names}); spread-daemon is a single-node daemon: \
         run a real Spread ring for a multi-daemon configuration"
    )]
    MultiDaemon { count: usize, names: String },
    #[error("line {line}: AccessControlPolicy {0:?} is not supported (only PERMIT)", .policy)]
    Policy { line: usize, policy: String },
}

/// Keys of real Spread that have no meaning for a single-node daemon; accepted and reported.
const IGNORED_KEYS: &[&str] = &[
    "DebugFlags",
    "EventLogFile",
    "EventTimeStamp",
    "EventPriority",
    "DaemonUser",
    "DaemonGroup",
    "SocketPortReuse",
    "ActiveIPVersion",
    "DangerousMonitor",
    "MaxMessageSize",
    "VirtualID",
    "RequiredIPVersion",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Equals,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Tok)>, SpreadConfError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut chars = raw.chars().peekable();
        while let Some(&c) = chars.peek() {
            match c {
                '#' => break,
                c if c.is_whitespace() => {
                    chars.next();
                }
                '{' => {
                    chars.next();
                    out.push((line, Tok::Open));
                }
                '}' => {
                    chars.next();
                    out.push((line, Tok::Close));
                }
                '=' => {
                    chars.next();
                    out.push((line, Tok::Equals));
                }
                '"' => {
                    chars.next();
                    let mut s = String::new();
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some(c) => s.push(c),
                            None => {
                                return Err(SpreadConfError::Syntax {
                                    line,
                                    msg: "unterminated quote".into(),
                                });
                            }
                        }
                    }
                    out.push((line, Tok::Word(s)));
                }
                _ => {
                    let mut s = String::new();
                    while let Some(&c) = chars.peek() {
                        if c.is_whitespace() || matches!(c, '{' | '}' | '=' | '#' | '"') {
                            break;
                        }
                        s.push(c);
                        chars.next();
                    }
                    out.push((line, Tok::Word(s)));
                }
            }
        }
    }
    Ok(out)
}

fn syntax(line: usize, msg: impl Into<String>) -> SpreadConfError {
    SpreadConfError::Syntax {
        line,
        msg: msg.into(),
    }
}

/// Parse spread.conf text.
pub fn parse(text: &str) -> Result<SpreadConf, SpreadConfError> {
    let toks = tokenize(text)?;
    let mut conf = SpreadConf::default();
    let mut daemons: Vec<String> = Vec::new();
    let mut i = 0;
    let word = |i: usize| -> Option<(usize, &str)> {
        match toks.get(i) {
            Some((l, Tok::Word(w))) => Some((*l, w.as_str())),
            _ => None,
        }
    };
    while i < toks.len() {
        let (line, key) =
            word(i).ok_or_else(|| syntax(toks[i].0, "expected a key or Spread_Segment"))?;
        if key.eq_ignore_ascii_case("Spread_Segment") {
            let (_, addr) =
                word(i + 1).ok_or_else(|| syntax(line, "Spread_Segment needs an address"))?;
            if let Some((_, port)) = addr.rsplit_once(':') {
                let port: u16 = port
                    .parse()
                    .map_err(|_| syntax(line, format!("bad segment port in {addr:?}")))?;
                if conf.port.is_some_and(|p| p != port) {
                    return Err(syntax(line, "segments with different ports"));
                }
                conf.port = Some(port);
            }
            if toks.get(i + 2).map(|t| &t.1) != Some(&Tok::Open) {
                return Err(syntax(line, "expected '{' after the segment address"));
            }
            i += 3;
            // Daemon lines: NAME ADDR [ { interface lines } ]
            loop {
                match toks.get(i) {
                    Some((_, Tok::Close)) => {
                        i += 1;
                        break;
                    }
                    Some((l, Tok::Word(name))) => {
                        let l = *l;
                        if word(i + 1).is_none() {
                            return Err(syntax(l, format!("daemon {name:?} needs an address")));
                        }
                        daemons.push(name.clone());
                        i += 2;
                        if toks.get(i).map(|t| &t.1) == Some(&Tok::Open) {
                            // Interface block: skip to its closing brace.
                            i += 1;
                            while !matches!(toks.get(i), Some((_, Tok::Close)) | None) {
                                i += 1;
                            }
                            if toks.get(i).is_none() {
                                return Err(syntax(l, "unterminated interface block"));
                            }
                            i += 1;
                        }
                    }
                    Some((l, _)) => return Err(syntax(*l, "expected a daemon line or '}'")),
                    None => return Err(syntax(line, "unterminated Spread_Segment block")),
                }
            }
            continue;
        }
        if toks.get(i + 1).map(|t| &t.1) != Some(&Tok::Equals) {
            return Err(syntax(line, format!("expected '=' after {key:?}")));
        }
        let (_, value) = word(i + 2).ok_or_else(|| syntax(line, format!("{key} needs a value")))?;
        i += 3;
        match key {
            "MaxSessionMessages" => {
                let n: usize = value.parse().map_err(|_| {
                    syntax(
                        line,
                        format!("MaxSessionMessages {value:?} is not a number"),
                    )
                })?;
                if n == 0 {
                    return Err(syntax(line, "MaxSessionMessages must be at least 1"));
                }
                conf.max_session_messages = Some(n);
            }
            "RuntimeDir" => conf.runtime_dir = Some(PathBuf::from(value)),
            "AllowedAuthMethods" => {
                conf.allowed_auth_methods =
                    Some(value.split_whitespace().map(str::to_owned).collect())
            }
            "RequiredAuthMethods" => {
                conf.required_auth_methods =
                    Some(value.split_whitespace().map(str::to_owned).collect())
            }
            "AccessControlPolicy" => {
                if !value.eq_ignore_ascii_case("PERMIT") {
                    return Err(SpreadConfError::Policy {
                        line,
                        policy: value.to_owned(),
                    });
                }
            }
            k if IGNORED_KEYS.iter().any(|x| x.eq_ignore_ascii_case(k)) => {
                conf.ignored.push(k.to_owned())
            }
            other => return Err(syntax(line, format!("unknown key {other:?}"))),
        }
    }
    match daemons.len() {
        0 | 1 => conf.daemon_name = daemons.pop(),
        n => {
            return Err(SpreadConfError::MultiDaemon {
                count: n,
                names: daemons.join(", "),
            });
        }
    }
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_single_daemon() {
        let c = parse("Spread_Segment 127.0.0.255:4903 {\n    localhost 127.0.0.1\n}\n").unwrap();
        assert_eq!(c.port, Some(4903));
        assert_eq!(c.daemon_name.as_deref(), Some("localhost"));
    }

    #[test]
    fn keys_comments_and_interfaces() {
        let text = r#"
# a comment
Spread_Segment 10.0.0.255:4803 {
    web1 10.0.0.1 {
        D 10.0.0.1
        C 127.0.0.1
    }
}
MaxSessionMessages = 5000   # trailing comment
RuntimeDir = /run/spread
AllowedAuthMethods = "NULL IP"
AccessControlPolicy = PERMIT
EventLogFile = /var/log/spread.log
"#;
        let c = parse(text).unwrap();
        assert_eq!(c.daemon_name.as_deref(), Some("web1"));
        assert_eq!(c.max_session_messages, Some(5000));
        assert_eq!(c.runtime_dir, Some(PathBuf::from("/run/spread")));
        assert_eq!(
            c.allowed_auth_methods,
            Some(vec!["NULL".to_owned(), "IP".to_owned()])
        );
        assert_eq!(c.ignored, vec!["EventLogFile".to_owned()]);
    }

    #[test]
    fn ring_config_is_refused_with_advice() {
        let err =
            parse("Spread_Segment 10.0.0.255:4803 {\n a 10.0.0.1\n b 10.0.0.2\n}\n").unwrap_err();
        assert!(matches!(err, SpreadConfError::MultiDaemon { count: 2, .. }));
        assert!(err.to_string().contains("real Spread ring"), "{err}");
    }

    #[test]
    fn errors_name_the_line() {
        let err =
            parse("Spread_Segment 1.2.3.4:4803 {\n x 1.2.3.4\n}\nBogusKey = 3\n").unwrap_err();
        assert_eq!(err.to_string(), "line 4: unknown key \"BogusKey\"");
        assert!(parse("MaxSessionMessages = many").is_err());
        assert!(parse("Spread_Segment 1.2.3.4:4803 {\n x 1.2.3.4\n").is_err());
        assert!(parse("AccessControlPolicy = DENY").is_err());
    }
}
