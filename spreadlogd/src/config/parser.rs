//! The grammar over the tokens (see the module docs of `config`).

use std::path::{Path, PathBuf};

use super::lexer::{Token, TokenKind, tokenize};
use super::{Config, ConfigError, DEFAULT_VHOST_OPEN_FILES, FileTarget, LogConf, SpreadConf};
use crate::timestamp::TimestampFormat;

/// Settings outside `Spread` blocks.
pub const GLOBAL_KEYS: &[&str] = &[
    "BufferSize",
    "User",
    "Group",
    "StateFile",
    "ErrorLog",
    "VhostOpenFiles",
    "MetricsListen",
];
/// Settings of a `Spread` block.
pub const SPREAD_KEYS: &[&str] = &["Port", "Host"];
/// Settings of a `Log` block.
pub const LOG_KEYS: &[&str] = &["Group", "File", "Match", "VhostDir", "RewriteTimestamp"];
/// Keywords of the original that need an embedded interpreter or C plug-ins.
const UNSUPPORTED: &[&str] = &[
    "PerlLib",
    "PerlUse",
    "PerlLog",
    "PerlHup",
    "PythonLib",
    "PythonImport",
    "PythonLog",
    "LoadModule",
    "ModuleDir",
    "ModuleLog",
];

struct Parser<'a> {
    file: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    base: &'a Path,
    /// What the configuration does that is accepted but has no effect (`Config::warnings`).
    warnings: Vec<String>,
}

/// A keyword and its value, as found (`Key = v`, `Key=v`, `Key= v`, `Key =v`).
struct Setting {
    key: String,
    value: String,
    quoted: bool,
    line: u32,
}

pub fn parse(file: &str, text: &str, base: &Path) -> Result<Config, ConfigError> {
    let tokens = tokenize(file, text)?;
    let mut p = Parser {
        file,
        tokens,
        pos: 0,
        base,
        warnings: Vec::new(),
    };
    p.config()
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn syntax(&self, tok: Option<&Token>, reason: &str) -> ConfigError {
        let (line, token) = match tok {
            Some(t) => (t.line, t.describe()),
            None => (
                self.tokens.last().map_or(1, |t| t.line),
                "end of file".into(),
            ),
        };
        ConfigError::Syntax {
            file: self.file.into(),
            line,
            token,
            reason: reason.into(),
        }
    }

    fn invalid(&self, line: u32, token: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.into(),
            line,
            token: format!("'{token}'"),
            reason: reason.into(),
        }
    }

    fn expect(&mut self, kind: TokenKind, reason: &str) -> Result<(), ConfigError> {
        match self.peek() {
            Some(t) if t.kind == kind => {
                self.pos += 1;
                Ok(())
            }
            other => Err(self.syntax(other, reason)),
        }
    }

    /// The keyword part of the next word (before any `=`), without consuming it.
    fn peek_keyword(&self) -> Option<(String, u32)> {
        match self.peek() {
            Some(Token {
                kind: TokenKind::Word(w),
                line,
            }) => Some((w.split('=').next().unwrap_or_default().to_owned(), *line)),
            _ => None,
        }
    }

    fn setting(&mut self) -> Result<Setting, ConfigError> {
        let Some(Token {
            kind: TokenKind::Word(word),
            line,
        }) = self.peek().cloned()
        else {
            return Err(self.syntax(self.peek(), "expected a keyword"));
        };
        self.pos += 1;
        let (key, rest) = match word.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (word.clone(), None),
        };
        let inline = match rest {
            Some(v) if !v.is_empty() => Some(v),
            Some(_) => None,
            None => {
                // `Key = value` or `Key =value`
                match self.peek().cloned() {
                    Some(Token {
                        kind: TokenKind::Equals,
                        ..
                    }) => {
                        self.pos += 1;
                        None
                    }
                    Some(Token {
                        kind: TokenKind::Word(w),
                        ..
                    }) if w.starts_with('=') && w.len() > 1 => {
                        self.pos += 1;
                        Some(w[1..].to_owned())
                    }
                    other => {
                        return Err(
                            self.syntax(other.as_ref(), &format!("expected '=' after {key}"))
                        );
                    }
                }
            }
        };
        if let Some(value) = inline {
            return Ok(Setting {
                key,
                value,
                quoted: false,
                line,
            });
        }
        match self.peek().cloned() {
            Some(Token {
                kind: TokenKind::Word(w),
                ..
            }) => {
                self.pos += 1;
                Ok(Setting {
                    key,
                    value: w,
                    quoted: false,
                    line,
                })
            }
            Some(Token {
                kind: TokenKind::Quoted(q),
                ..
            }) => {
                self.pos += 1;
                Ok(Setting {
                    key,
                    value: q,
                    quoted: true,
                    line,
                })
            }
            other => Err(self.syntax(other.as_ref(), &format!("expected a value for {key}"))),
        }
    }

    /// Consume the block's keyword and its `{`; the keyword's line.
    fn open_block(&mut self, keyword: &str) -> Result<u32, ConfigError> {
        let line = self.peek().map_or(1, |t| t.line);
        self.pos += 1;
        self.expect(TokenKind::Open, &format!("expected '{{' after {keyword}"))?;
        Ok(line)
    }

    /// Consume a `}` if it comes next.
    fn take_close(&mut self) -> bool {
        let close = matches!(
            self.peek(),
            Some(Token {
                kind: TokenKind::Close,
                ..
            })
        );
        self.pos += usize::from(close);
        close
    }

    fn reject_unsupported(&self) -> Result<(), ConfigError> {
        if let Some((k, line)) = self.peek_keyword()
            && (UNSUPPORTED.contains(&k.as_str()) || k.starts_with("Python"))
        {
            return Err(ConfigError::Unsupported {
                file: self.file.into(),
                line,
                keyword: k,
            });
        }
        Ok(())
    }

    fn config(&mut self) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            file: self.file.into(),
            buffer_size: None,
            user: None,
            group: None,
            state_file: None,
            error_log: None,
            vhost_open_files: DEFAULT_VHOST_OPEN_FILES,
            metrics_listen: None,
            spreads: Vec::new(),
            warnings: Vec::new(),
        };
        while self.peek().is_some() {
            self.reject_unsupported()?;
            match self.peek_keyword() {
                Some((k, _)) if k == "Spread" && !self.peek_is_setting() => {
                    let s = self.spread_block()?;
                    if let Some(prev) = cfg
                        .spreads
                        .iter()
                        .find(|p| p.daemon_name() == s.daemon_name())
                    {
                        return Err(self.invalid(
                            s.line,
                            &s.daemon_name(),
                            format!(
                                "a Spread block for this daemon already starts at line {}",
                                prev.line
                            ),
                        ));
                    }
                    cfg.spreads.push(s);
                }
                Some((k, _)) if GLOBAL_KEYS.contains(&k.as_str()) => {
                    let s = self.setting()?;
                    match s.key.as_str() {
                        "BufferSize" => cfg.buffer_size = Some(self.size(&s)?),
                        "User" => cfg.user = Some(s.value),
                        "Group" => cfg.group = Some(s.value),
                        "StateFile" => cfg.state_file = Some(self.path(&s.value)),
                        "ErrorLog" => cfg.error_log = Some(self.path(&s.value)),
                        "VhostOpenFiles" => {
                            let n = self.size(&s)?;
                            if n == 0 {
                                return Err(self.invalid(s.line, &s.value, "must be at least 1"));
                            }
                            cfg.vhost_open_files = n;
                        }
                        "MetricsListen" => {
                            let addr: std::net::SocketAddr = s.value.parse().map_err(|_| {
                                self.invalid(
                                    s.line,
                                    &s.value,
                                    "not an ADDRESS:PORT (such as 127.0.0.1:9466 or [::1]:9466)",
                                )
                            })?;
                            cfg.metrics_listen = Some(addr);
                        }
                        _ => unreachable!("GLOBAL_KEYS"),
                    }
                }
                _ => {
                    return Err(
                        self.syntax(self.peek(), "expected a global keyword or a Spread block")
                    );
                }
            }
        }
        if cfg.spreads.is_empty() {
            return Err(ConfigError::Syntax {
                file: self.file.into(),
                line: self.tokens.last().map_or(1, |t| t.line),
                token: "end of file".into(),
                reason: "at least one Spread { } block is required".into(),
            });
        }
        cfg.warnings = std::mem::take(&mut self.warnings);
        Ok(cfg)
    }

    /// `Spread` followed by `=`? (Then it is a mistake, not a block.)
    fn peek_is_setting(&self) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Word(w), .. }) if w.contains('='))
    }

    fn spread_block(&mut self) -> Result<SpreadConf, ConfigError> {
        let line = self.open_block("Spread")?;
        let mut s = SpreadConf {
            line,
            port: "4803".into(),
            host: None,
            logs: Vec::new(),
        };
        loop {
            if self.take_close() {
                break;
            }
            self.reject_unsupported()?;
            match self.peek_keyword() {
                Some((k, _)) if k == "Log" && !self.peek_is_setting() => {
                    s.logs.push(self.log_block()?)
                }
                Some((k, _)) if SPREAD_KEYS.contains(&k.as_str()) => {
                    let st = self.setting()?;
                    if st.value.is_empty() {
                        return Err(self.invalid(
                            st.line,
                            &st.value,
                            format!("{} must not be empty", st.key),
                        ));
                    }
                    match st.key.as_str() {
                        "Port" => s.port = st.value,
                        _ => s.host = Some(st.value),
                    }
                }
                _ => {
                    return Err(self.syntax(
                        self.peek(),
                        "expected Port, Host, Log { } or '}' in a Spread block",
                    ));
                }
            }
        }
        if let Err(e) = spread_sys::SpreadName::parse(&s.daemon_name()) {
            return Err(self.invalid(line, &s.daemon_name(), e.to_string()));
        }
        if s.logs.is_empty() {
            return Err(self.invalid(line, "Spread", "this Spread block has no Log { } block"));
        }
        Ok(s)
    }

    fn log_block(&mut self) -> Result<LogConf, ConfigError> {
        let line = self.open_block("Log")?;
        let mut l = LogConf {
            line,
            group: String::new(),
            file: None,
            matches: Vec::new(),
            vhost_dir: None,
            rewrite: None,
        };
        loop {
            if self.take_close() {
                break;
            }
            self.reject_unsupported()?;
            match self.peek_keyword() {
                Some((k, _)) if LOG_KEYS.contains(&k.as_str()) => {
                    let st = self.setting()?;
                    match st.key.as_str() {
                        "Group" => {
                            check_group(&st.value)
                                .map_err(|r| self.invalid(st.line, &st.value, r))?;
                            l.group = st.value;
                        }
                        "File" => {
                            l.file = Some(match st.value.strip_prefix('|') {
                                Some(cmd) if !cmd.trim().is_empty() => {
                                    FileTarget::Pipe(cmd.trim().to_owned())
                                }
                                Some(_) => {
                                    return Err(self.invalid(
                                        st.line,
                                        &st.value,
                                        "empty piped command",
                                    ));
                                }
                                None if st.value.is_empty() => {
                                    return Err(self.invalid(
                                        st.line,
                                        &st.value,
                                        "empty file name",
                                    ));
                                }
                                None => FileTarget::Path(self.path(&st.value)),
                            })
                        }
                        "Match" => {
                            if let Err(e) = regex::bytes::Regex::new(&st.value) {
                                return Err(self.invalid(
                                    st.line,
                                    &st.value,
                                    format!("regex does not compile: {e}"),
                                ));
                            }
                            l.matches.push((st.value, st.line));
                        }
                        "VhostDir" => l.vhost_dir = Some(self.path(&st.value)),
                        _ => {
                            l.rewrite = Some(if st.value == "CommonLogFormat" && !st.quoted {
                                TimestampFormat::CommonLogFormat
                            } else {
                                TimestampFormat::strftime(&st.value)
                                    .map_err(|r| self.invalid(st.line, &st.value, r))?
                            })
                        }
                    }
                }
                _ => {
                    return Err(self.syntax(
                        self.peek(),
                        "expected Group, File, Match, VhostDir, RewriteTimestamp or '}' in a Log block",
                    ));
                }
            }
        }
        if l.group.is_empty() {
            return Err(self.invalid(line, "Log", "this Log block has no Group"));
        }
        if l.file.is_none() && l.vhost_dir.is_none() {
            return Err(self.invalid(line, "Log", "this Log block has neither File nor VhostDir"));
        }
        // The original needed a dummy File beside VhostDir and ignored it: so do we, and say so.
        if l.file.is_some() && l.vhost_dir.is_some() {
            l.file = None;
            self.warnings.push(format!(
                "{}:{line}: File in a Log block with VhostDir is ignored (the original spreadlogd \
                 needed it and ignored it too); lines go to one file per host in VhostDir",
                self.file
            ));
        }
        Ok(l)
    }

    fn size(&self, s: &Setting) -> Result<usize, ConfigError> {
        s.value
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                self.invalid(
                    s.line,
                    &s.value,
                    format!("{} must be a positive number", s.key),
                )
            })
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }
}

/// A Log block's group: the shared rule for log groups (`spread_sys::names`).
fn check_group(g: &str) -> Result<(), String> {
    spread_sys::names::check_log_group(g.as_bytes()).map_err(|e| match e {
        spread_sys::names::NameError::Reserved => {
            format!("{e} (spreadlogd joins the control channel by itself)")
        }
        e => format!("not allowed in a Spread group name: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Config {
        parse("test.conf", text, Path::new("/base")).unwrap()
    }
    fn err(text: &str) -> String {
        parse("test.conf", text, Path::new("/base"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn original_sample_parses() {
        let c = ok(r#"
# the original's sample, more or less
BufferSize = 65536
Spread {
    Port = 4803
    Log {
        Group = "flooder"
        File = /var/log/flood.log
        RewriteTimestamp = CommonLogFormat
    }
    Log {
        Group = apache
        File = apache.log
        Match = "GET"
        Match = 'POST /x=1'
    }
}
Spread {
    Port = 4913
    Host = gollum.example.com
    Log { Group = vh VhostDir = /var/log/vhosts RewriteTimestamp = "[%d/%b/%Y %H]" }
}
"#);
        assert_eq!(c.buffer_size, Some(65536));
        assert_eq!(c.spreads.len(), 2);
        assert_eq!(c.spreads[0].daemon_name(), "4803");
        assert_eq!(c.spreads[1].daemon_name(), "4913@gollum.example.com");
        let l = &c.spreads[0].logs;
        assert_eq!(
            l[0].file,
            Some(FileTarget::Path("/var/log/flood.log".into()))
        );
        assert_eq!(l[0].rewrite, Some(TimestampFormat::CommonLogFormat));
        assert_eq!(l[1].file, Some(FileTarget::Path("/base/apache.log".into())));
        assert_eq!(l[1].matches.len(), 2);
        assert_eq!(l[1].matches[1].0, "POST /x=1");
        assert_eq!(
            c.spreads[1].logs[0].vhost_dir,
            Some("/var/log/vhosts".into())
        );
        assert!(matches!(
            c.spreads[1].logs[0].rewrite,
            Some(TimestampFormat::Strftime(_))
        ));
    }

    #[test]
    fn keyword_equals_value_without_spaces() {
        let c = ok(
            "BufferSize=100\nSpread{Port=/run/spread/4803\nLog{Group=g File=|/usr/bin/logger Match=a=b}}",
        );
        assert_eq!(c.buffer_size, Some(100));
        assert_eq!(c.spreads[0].port, "/run/spread/4803");
        // the unquoted pipe command stops at the first space: only `|/usr/bin/logger`
        let l = &c.spreads[0].logs[0];
        assert_eq!(l.file, Some(FileTarget::Pipe("/usr/bin/logger".into())));
        let c = ok("Spread { Log { Group= g File =\"|cat > x\" Match=a=b } }");
        let l = &c.spreads[0].logs[0];
        assert_eq!(l.file, Some(FileTarget::Pipe("cat > x".into())));
        assert_eq!(l.matches[0].0, "a=b");
    }

    #[test]
    fn the_pipe_command_above_leaves_tokens_that_are_errors() {
        err_has(
            "Spread{Log{Group=g File=|/usr/bin/logger -t a=b}}",
            &["test.conf:1", "'-t'"],
        );
    }

    #[test]
    fn unsupported_keywords_name_the_line() {
        for kw in [
            "PerlLib /x",
            "LoadModule online",
            "ModuleDir = /x",
            "PythonImport foo",
        ] {
            let e = err(&format!(
                "\n{kw}\nSpread {{ Log {{ Group = g File = f }} }}"
            ));
            assert!(
                e.contains("test.conf:2") && e.contains("not supported"),
                "{e}"
            );
        }
        err_has(
            "Spread { Log { Group = g File = f\n PerlLog main::log } }",
            &["test.conf:2", "PerlLog"],
        );
        err_has(
            "Spread { Log { Group = g File = f\n\n ModuleLog x } }",
            &["test.conf:3"],
        );
    }

    /// Parsing `text` fails with a message holding every one of `needles`.
    fn err_has(text: &str, needles: &[&str]) {
        let e = err(text);
        for n in needles {
            assert!(e.contains(n), "{n:?} not in {e}");
        }
    }

    #[test]
    fn the_originals_dummy_file_beside_vhostdir_is_ignored_with_a_warning() {
        let c = ok("Spread {\n Log { Group = v File = /dev/null VhostDir = /var/log/vhosts }\n}");
        let l = &c.spreads[0].logs[0];
        assert_eq!(l.file, None);
        assert_eq!(l.vhost_dir.as_deref(), Some(Path::new("/var/log/vhosts")));
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].starts_with("test.conf:2: File in a Log block with VhostDir is ignored"),
            "{:?}",
            c.warnings
        );
        assert!(
            ok("Spread { Log { Group = g File = f } }")
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn errors_name_file_line_and_token() {
        err_has(
            "Spread {\n Log {\n Group = g\n File = f\n Bogus = 1\n }\n}",
            &["test.conf:5", "'Bogus'"],
        );
        err_has(
            "Spread {\n Log {\n Group = g\n File = f\n Match = \"(unclosed\"\n }\n}",
            &["test.conf:5", "regex does not compile"],
        );
        err_has(
            "BufferSize = lots\nSpread { Log { Group = g File = f } }",
            &["test.conf:1", "'lots'"],
        );
        err_has(
            "Spread {\n Log { File = f }\n}",
            &["test.conf:2", "no Group"],
        );
        err_has(
            "Spread {\n Log { Group = g }\n}",
            &["neither File nor VhostDir"],
        );
        err_has(
            "Spread { Log { Group = g File = f RewriteTimestamp = Common } }",
            &["test.conf:1", "no %-conversion"],
        );
        err_has("BufferSize = 1", &["at least one Spread"]);
        err_has(
            "Spread { Log { Group = \"bad group\" File = f } }",
            &["not allowed in a Spread group"],
        );
        err_has(
            "Spread { Log { Group = mls.control File = f } }",
            &["control channel"],
        );
        err_has("Spread { Log { Group = g File = f }\n", &["end of file"]);
        let e = err(
            "Spread { Log { Group = g File = f } }\nSpread { Port = 4803 Log { Group = h File = f } }",
        );
        assert!(
            e.contains("test.conf:2") && e.contains("already starts at line 1"),
            "{e}"
        );
    }

    #[test]
    fn several_logs_per_group_are_kept() {
        let c = ok("Spread { Log { Group = g File = a } Log { Group = g File = b Match = x } }");
        assert_eq!(c.spreads[0].logs.len(), 2);
        assert_eq!(Config::groups_of(&c.spreads[0]), vec!["g".to_string()]);
    }

    #[test]
    fn our_global_keywords() {
        let c = ok(
            "User = www\nGroup = adm\nStateFile = s\nErrorLog = /e\nVhostOpenFiles = 9\nMetricsListen = 127.0.0.1:9466\nSpread { Log { Group = g File = f } }",
        );
        assert_eq!(c.user.as_deref(), Some("www"));
        assert_eq!(c.group.as_deref(), Some("adm"));
        assert_eq!(c.state_file, Some("/base/s".into()));
        assert_eq!(c.error_log, Some("/e".into()));
        assert_eq!(c.vhost_open_files, 9);
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9466".parse().unwrap()));
    }

    /// docs/migration.md names every keyword this parser knows or refuses, and every keyword of
    /// the original grammar (including the dead `VhostGroup`), so an operator with an old config
    /// finds each of theirs there.
    #[test]
    fn migration_guide_covers_every_keyword() {
        let guide = include_str!("../../../docs/migration.md");
        let original = [
            "BufferSize",
            "ModuleDir",
            "LoadModule",
            "PerlLib",
            "PerlUse",
            "PythonImport",
            "Spread",
            "Port",
            "Host",
            "Log",
            "Group",
            "File",
            "Match",
            "VhostDir",
            "RewriteTimestamp",
            "ModuleLog",
            "PerlLog",
            "PerlHup",
            "PythonLog",
            "PythonLib",
            "VhostGroup",
        ];
        let ours = GLOBAL_KEYS
            .iter()
            .chain(SPREAD_KEYS)
            .chain(LOG_KEYS)
            .chain(UNSUPPORTED);
        for k in original.iter().chain(ours) {
            assert!(
                guide.contains(&format!("`{k}")),
                "docs/migration.md does not name `{k}`"
            );
        }
    }

    /// spreadlogd.conf(5) describes every keyword this parser knows or refuses.
    #[test]
    fn man_page_covers_every_keyword() {
        let page = include_str!("../../../pkg/man/spreadlogd.conf.5");
        let blocks = ["Spread", "Log"];
        let all = GLOBAL_KEYS.iter().chain(SPREAD_KEYS).chain(LOG_KEYS);
        for k in all.chain(UNSUPPORTED).chain(&blocks) {
            // Set in bold as a keyword: `.B k`, `.BR k ,` or `.BI "k = " value`.
            let forms = [
                format!(".B {k}\n"),
                format!(".BR {k} "),
                format!(".BI \"{k} "),
            ];
            assert!(
                forms.iter().any(|f| page.contains(f.as_str())),
                "spreadlogd.conf.5 does not describe {k}"
            );
        }
    }
}
