//! All settings of the daemon: defaults as real Spread 5.0.1, command-line flags, and the
//! single-node subset of `spread.conf` (`-c FILE`, flags given after it override it).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use spread_sys::names::check_daemon;
use spread_sys::wire::constants::{DEFAULT_MAX_SESSION_MESSAGES, DEFAULT_PORT, MAX_SESSIONS};

use crate::allow_list::{IpRule, IpRuleError};
use crate::spread_conf::{self, SpreadConfError};

/// Authentication methods a client may choose (PROTOCOL.md §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Always succeeds.
    Null,
    /// Succeeds for TCP peers matching the allow-list (Spread: `spread.access_ip`).
    Ip,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Null => "NULL",
            AuthMethod::Ip => "IP",
        }
    }
    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "NULL" => Some(AuthMethod::Null),
            "IP" => Some(AuthMethod::Ip),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Spread port: the unix socket's file name and (unless `tcp_port`) the TCP port.
    pub port: u16,
    /// Directory of the unix socket `<dir>/<port>`; None = no unix listener.
    pub unix_dir: Option<PathBuf>,
    /// Mode of the unix socket file (Spread: 0666).
    pub unix_mode: u32,
    /// TCP listen addresses; empty = no TCP listener.
    pub tcp_bind: Vec<IpAddr>,
    /// TCP port if different from `port`; 0 = ephemeral (tests).
    pub tcp_port: Option<u16>,
    /// Write the bound TCP port (decimal + newline) here once listening.
    pub tcp_port_file: Option<PathBuf>,
    /// Daemon name (`#priv#name`), 1..=19 bytes in 0x24..0x7E.
    pub name: String,
    pub max_sessions: usize,
    pub max_session_messages: usize,
    /// Budget for all output queues together (bytes); past it the longest blocked queue's session
    /// is killed as a slow consumer.
    pub max_queued_bytes: usize,
    /// Groups one session may join (a join past it is answered with a reject message).
    pub max_groups_per_session: usize,
    /// Distinct groups the daemon holds (a join creating one more is rejected).
    pub max_groups: usize,
    /// TCP peers beyond loopback must match one of these.
    pub allow: Vec<IpRule>,
    /// Explicit waiver: accept any TCP peer.
    pub allow_any: bool,
    /// Enabled auth methods, in the order announced.
    pub auth_methods: Vec<AuthMethod>,
    /// Methods added to every client's choice.
    pub required_auth: Vec<AuthMethod>,
    /// How long a new connection may take to send its connect message (Spread: 1 s).
    pub handshake_timeout: Duration,
    /// Clean stop: give up delivering after this long.
    pub stop_deadline: Duration,
    /// Input throttling: while a session whose queue is past half of MaxSessionMessages has made
    /// write progress within this window, the daemon stops reading client requests (TCP/unix
    /// back-pressure on senders). Zero disables throttling. Also the longest a stuck reader can
    /// hold the others back.
    pub throttle_window: Duration,
    /// Keys of a spread.conf we accepted but ignore (reported at start).
    pub ignored_conf_keys: Vec<String>,
    /// `--metrics-listen`: where `/metrics` (Prometheus) is served.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            port: DEFAULT_PORT,
            unix_dir: Some(PathBuf::from("/tmp")),
            unix_mode: 0o666,
            tcp_bind: vec![IpAddr::from([127, 0, 0, 1])],
            tcp_port: None,
            tcp_port_file: None,
            name: "localhost".to_owned(),
            max_sessions: MAX_SESSIONS,
            max_session_messages: DEFAULT_MAX_SESSION_MESSAGES,
            max_queued_bytes: 512 * 1024 * 1024,
            max_groups_per_session: 1000,
            max_groups: 10_000,
            allow: Vec::new(),
            allow_any: false,
            auth_methods: vec![AuthMethod::Null],
            required_auth: Vec::new(),
            handshake_timeout: Duration::from_secs(1),
            stop_deadline: Duration::from_secs(3),
            throttle_window: Duration::from_millis(100),
            ignored_conf_keys: Vec::new(),
            metrics_listen: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    CommandLine(#[from] lexopt::Error),
    #[error("unknown option {0}")]
    UnknownOption(String),
    #[error("option {0} needs a value")]
    MissingValue(String),
    #[error("bad value {value:?} for {option}: {reason}")]
    BadValue {
        option: String,
        value: String,
        reason: String,
    },
    #[error("daemon name {name:?}: {reason}")]
    BadName { name: String, reason: String },
    #[error(
        "refusing to listen on {0} without an allow-list: Spread has no encryption and logs carry \
         addresses, cookies and tokens; give --allow CIDR (repeatable) or waive with --allow-any"
    )]
    OpenWithoutAllowList(IpAddr),
    #[error(
        "auth method IP is enabled but the allow-list is empty: every IP authentication would fail"
    )]
    IpAuthWithoutRules,
    #[error("no listener: give --unix-dir or --bind")]
    NoListener,
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    SpreadConf {
        path: PathBuf,
        source: SpreadConfError,
    },
    #[error("{0}")]
    Rule(#[from] IpRuleError),
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Cli {
    Run(Config),
    /// `--check`: validate and exit.
    Check(Config),
    Help,
    Version,
}

pub const USAGE: &str = "\
spread-daemon: a single-node daemon speaking Spread 5.0.1's client protocol

USAGE: spread-daemon [OPTIONS]

  -c, --config FILE          read a single-daemon spread.conf (flags after it override it)
  -p, --port N               Spread port: unix socket <dir>/N and TCP port N (default 4803)
      --unix-dir DIR         directory of the unix socket (default /tmp)
      --unix-mode OCTAL      mode of the unix socket file (default 0666)
      --no-unix              no unix socket
      --bind ADDR            TCP listen address (repeatable; default 127.0.0.1). Beyond loopback
                             an allow-list is required
      --no-tcp               no TCP listener
      --tcp-port N           TCP port if different from --port (0 = any free port)
      --tcp-port-file FILE   write the TCP port actually bound to FILE
      --allow CIDR           allow TCP peers from CIDR (a.b.c.d/n, IPv6/n, localhost; repeatable)
      --allow-any            waive the allow-list (anybody who can reach the port may log)
      --auth LIST            enabled auth methods, comma or space separated: NULL, IP (default NULL)
  -n, --name NAME            daemon name, at most 19 bytes (default localhost)
      --max-sessions N       session limit (default 997)
      --max-session-messages N
                             per-session queue limit before a slow client is killed (default 1000)
      --max-queued-mb N      memory budget of all output queues and group memberships together
                             (default 512); past it the blocked session with the longest queue is
                             killed, and a join is rejected
      --max-groups-per-session N
                             groups one session may join (default 1000); past it a join gets a
                             reject message, the session lives on
      --max-groups N         distinct groups in the daemon (default 10000), likewise
      --metrics-listen ADDR:PORT
                             serve Prometheus metrics at http://ADDR:PORT/metrics (no
                             authentication: loopback or a management network)
      --stop-deadline SECS   clean stop: give up delivering after SECS (default 3)
      --throttle-window-ms N input throttling: stop reading requests while a receiver that made
                             write progress within N ms has more than MaxSessionMessages/2
                             queued (default 100, max 10000; 0 = never throttle)
      --check                validate the configuration and exit
  -V, --version              print the version and exit
  -h, --help                 this text

Signals: SIGTERM/SIGINT stop cleanly, SIGUSR1 logs statistics. Logs go to stderr.
";

impl ConfigError {
    /// Is the command line itself wrong (exit 2), rather than the configuration it gives (exit
    /// 1)? See `spread_sys::cli`.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ConfigError::CommandLine(_)
                | ConfigError::UnknownOption(_)
                | ConfigError::MissingValue(_)
                | ConfigError::BadValue { .. }
        )
    }
}

fn parse_num<T: std::str::FromStr>(option: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::BadValue {
        option: option.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn parse_auth_list(option: &str, value: &str) -> Result<Vec<AuthMethod>, ConfigError> {
    let mut out = Vec::new();
    for word in value.split([',', ' ']).filter(|w| !w.is_empty()) {
        let m = AuthMethod::parse(word).ok_or_else(|| ConfigError::BadValue {
            option: option.to_owned(),
            value: value.to_owned(),
            reason: format!("unknown auth method {word:?} (NULL, IP)"),
        })?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    // Spread announces methods in registration order (NULL, IP) whatever order the config uses.
    out.sort_by_key(|m| *m as u8);
    Ok(out)
}

impl Config {
    /// Parse command-line arguments (without the program name) and validate the result.
    pub fn from_args<I, S>(args: I) -> Result<Cli, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        use lexopt::prelude::*;
        let mut cfg = Config::default();
        let mut check = false;
        let mut explicit_bind = false;
        let mut p = lexopt::Parser::from_args(args.into_iter().map(Into::into));
        while let Some(arg) = p.next()? {
            let opt = match arg {
                Short(c) => format!("-{c}"),
                Long(l) => format!("--{l}"),
                Value(v) => return Err(ConfigError::UnknownOption(v.to_string_lossy().into())),
            };
            let mut value = || -> Result<String, ConfigError> {
                let v = p
                    .value()
                    .map_err(|_| ConfigError::MissingValue(opt.clone()))?;
                v.into_string().map_err(|v| ConfigError::BadValue {
                    option: opt.clone(),
                    value: v.to_string_lossy().into_owned(),
                    reason: "not UTF-8".into(),
                })
            };
            match opt.as_str() {
                "-h" | "--help" => return Ok(Cli::Help),
                "-V" | "--version" => return Ok(Cli::Version),
                "--check" => check = true,
                "-c" | "--config" => {
                    let path = PathBuf::from(value()?);
                    cfg.apply_spread_conf_file(&path)?;
                }
                "-p" | "--port" => cfg.port = parse_num(&opt, &value()?)?,
                "--unix-dir" => cfg.unix_dir = Some(PathBuf::from(value()?)),
                "--unix-mode" => {
                    let v = value()?;
                    cfg.unix_mode =
                        u32::from_str_radix(v.trim_start_matches("0o"), 8).map_err(|e| {
                            ConfigError::BadValue {
                                option: opt.clone(),
                                value: v.clone(),
                                reason: e.to_string(),
                            }
                        })?;
                }
                "--no-unix" => cfg.unix_dir = None,
                "--bind" => {
                    let addr: IpAddr = parse_num(&opt, &value()?)?;
                    if !explicit_bind {
                        cfg.tcp_bind.clear();
                        explicit_bind = true;
                    }
                    cfg.tcp_bind.push(addr);
                }
                "--no-tcp" => cfg.tcp_bind.clear(),
                "--tcp-port" => cfg.tcp_port = Some(parse_num(&opt, &value()?)?),
                "--tcp-port-file" => cfg.tcp_port_file = Some(PathBuf::from(value()?)),
                "--allow" => {
                    let v = value()?;
                    cfg.allow.push(v.parse()?);
                }
                "--allow-any" => cfg.allow_any = true,
                "--auth" => cfg.auth_methods = parse_auth_list(&opt, &value()?)?,
                "-n" | "--name" => cfg.name = value()?,
                "--max-sessions" => cfg.max_sessions = parse_num(&opt, &value()?)?,
                "--max-session-messages" => cfg.max_session_messages = parse_num(&opt, &value()?)?,
                "--max-groups-per-session" => {
                    cfg.max_groups_per_session = parse_num(&opt, &value()?)?
                }
                "--max-groups" => cfg.max_groups = parse_num(&opt, &value()?)?,
                "--metrics-listen" => cfg.metrics_listen = Some(parse_num(&opt, &value()?)?),
                "--max-queued-mb" => {
                    let mb: usize = parse_num(&opt, &value()?)?;
                    cfg.max_queued_bytes = mb.saturating_mul(1024 * 1024);
                }
                "--stop-deadline" => {
                    let secs: f64 = parse_num(&opt, &value()?)?;
                    if !(0.0..=3600.0).contains(&secs) {
                        return Err(ConfigError::BadValue {
                            option: opt,
                            value: secs.to_string(),
                            reason: "must be 0..=3600 seconds".into(),
                        });
                    }
                    cfg.stop_deadline = Duration::from_secs_f64(secs);
                }
                "--throttle-window-ms" => {
                    let ms: u64 = parse_num(&opt, &value()?)?;
                    if ms > 10_000 {
                        return Err(ConfigError::BadValue {
                            option: opt,
                            value: ms.to_string(),
                            reason: "must be 0..=10000 milliseconds".into(),
                        });
                    }
                    cfg.throttle_window = Duration::from_millis(ms);
                }
                _ => return Err(ConfigError::UnknownOption(opt)),
            }
        }
        cfg.validate()?;
        Ok(if check {
            Cli::Check(cfg)
        } else {
            Cli::Run(cfg)
        })
    }

    /// Apply the single-node subset of a spread.conf file.
    pub fn apply_spread_conf_file(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        let conf = spread_conf::parse(&text).map_err(|source| ConfigError::SpreadConf {
            path: path.to_owned(),
            source,
        })?;
        let bad = |what: &str, v: &str| ConfigError::SpreadConf {
            path: path.to_owned(),
            source: SpreadConfError::Syntax {
                line: 0,
                msg: format!("unknown auth method {v:?} in {what}"),
            },
        };
        if let Some(p) = conf.port {
            self.port = p;
        }
        if let Some(n) = conf.daemon_name {
            self.name = n;
        }
        if let Some(n) = conf.max_session_messages {
            self.max_session_messages = n;
        }
        if let Some(d) = conf.runtime_dir {
            self.unix_dir = Some(d);
        }
        if let Some(list) = conf.allowed_auth_methods {
            self.auth_methods = list
                .iter()
                .map(|m| AuthMethod::parse(m).ok_or_else(|| bad("AllowedAuthMethods", m)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(list) = conf.required_auth_methods {
            self.required_auth = list
                .iter()
                .map(|m| AuthMethod::parse(m).ok_or_else(|| bad("RequiredAuthMethods", m)))
                .collect::<Result<_, _>>()?;
            // As in Spread, a required method is also an allowed one.
            for m in self.required_auth.clone() {
                if !self.auth_methods.contains(&m) {
                    self.auth_methods.push(m);
                }
            }
        }
        self.auth_methods.sort_by_key(|m| *m as u8);
        self.auth_methods.dedup();
        self.ignored_conf_keys = conf.ignored;
        Ok(())
    }

    /// Check the settings make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_daemon(self.name.as_bytes()).map_err(|e| ConfigError::BadName {
            name: self.name.clone(),
            reason: e.to_string(),
        })?;
        if self.max_sessions == 0 {
            return Err(ConfigError::BadValue {
                option: "--max-sessions".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        for (option, value) in [
            ("--max-session-messages", self.max_session_messages),
            ("--max-groups-per-session", self.max_groups_per_session),
            ("--max-groups", self.max_groups),
        ] {
            if value == 0 {
                return Err(ConfigError::BadValue {
                    option: option.into(),
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        if self.unix_dir.is_none() && self.tcp_bind.is_empty() {
            return Err(ConfigError::NoListener);
        }
        if !self.allow_any
            && self.allow.is_empty()
            && let Some(open) = self.tcp_bind.iter().find(|a| !a.is_loopback())
        {
            return Err(ConfigError::OpenWithoutAllowList(*open));
        }
        if self.auth_methods.contains(&AuthMethod::Ip) && self.allow.is_empty() {
            return Err(ConfigError::IpAuthWithoutRules);
        }
        Ok(())
    }

    /// The TCP port to bind.
    pub fn effective_tcp_port(&self) -> u16 {
        self.tcp_port.unwrap_or(self.port)
    }

    /// `<unix_dir>/<port>`.
    pub fn unix_path(&self) -> Option<PathBuf> {
        self.unix_dir
            .as_ref()
            .map(|d| d.join(self.port.to_string()))
    }

    /// A config for tests: unix socket in `dir`, TCP on an ephemeral loopback port.
    pub fn for_test(dir: &std::path::Path) -> Config {
        Config {
            unix_dir: Some(dir.to_owned()),
            tcp_port: Some(0),
            ..Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, ConfigError> {
        match Config::from_args(args.iter().copied())? {
            Cli::Run(c) | Cli::Check(c) => Ok(c),
            Cli::Help | Cli::Version => panic!("help or version"),
        }
    }

    #[test]
    fn defaults_are_spreads() {
        let c = run(&[]).unwrap();
        assert_eq!(c.port, 4803);
        assert_eq!(c.unix_path(), Some(PathBuf::from("/tmp/4803")));
        assert_eq!(c.tcp_bind, vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(c.name, "localhost");
        assert_eq!(c.max_sessions, 997);
        assert_eq!(c.max_session_messages, 1000);
        assert_eq!(c.throttle_window, Duration::from_millis(100));
        assert_eq!(
            run(&["--throttle-window-ms", "0"]).unwrap().throttle_window,
            Duration::ZERO
        );
        assert!(run(&["--throttle-window-ms", "10001"]).is_err());
        assert_eq!(c.unix_mode, 0o666);
    }

    #[test]
    fn flags_override() {
        let c = run(&[
            "--port",
            "4900",
            "--unix-dir",
            "/run/spread",
            "--name",
            "web1",
            "--max-session-messages=50",
            "--tcp-port",
            "0",
            "--max-sessions",
            "10",
        ])
        .unwrap();
        assert_eq!(c.unix_path(), Some(PathBuf::from("/run/spread/4900")));
        assert_eq!(c.effective_tcp_port(), 0);
        assert_eq!(c.name, "web1");
        assert_eq!(c.max_session_messages, 50);
        assert_eq!(c.max_sessions, 10);
        assert!(matches!(
            Config::from_args(["--check"]).unwrap(),
            Cli::Check(_)
        ));
        assert!(matches!(Config::from_args(["-h"]).unwrap(), Cli::Help));
        assert!(matches!(Config::from_args(["-V"]).unwrap(), Cli::Version));
        assert!(
            matches!(Config::from_args(["--port=4900", "--check"]).unwrap(), Cli::Check(c) if c.port == 4900)
        );
        assert!(Config::from_args(["--port"]).unwrap_err().is_usage());
        assert!(
            !Config::from_args(["--name", "much-too-long-daemon-name"])
                .unwrap_err()
                .is_usage()
        );
    }

    #[test]
    fn open_bind_needs_allow_list_or_waiver() {
        let err = run(&["--bind", "0.0.0.0"]).unwrap_err();
        assert!(matches!(err, ConfigError::OpenWithoutAllowList(_)), "{err}");
        assert!(run(&["--bind", "0.0.0.0", "--allow", "10.0.0.0/8"]).is_ok());
        assert!(run(&["--bind", "0.0.0.0", "--allow-any"]).is_ok());
        assert!(run(&["--bind", "::1"]).is_ok());
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        // The error each command line gets, by name.
        let cases: [(&[&str], &str); 10] = [
            (&["--name", "this-name-is-far-too-long"], "BadName"),
            (&["--name", "has space"], "BadName"),
            (&["--port", "99999"], "BadValue"),
            (&["--frobnicate"], "UnknownOption"),
            (&["--port"], "MissingValue"),
            (&["--no-unix", "--no-tcp"], "NoListener"),
            (&["--auth", "IP"], "IpAuthWithoutRules"),
            (&["--auth", "KERBEROS"], "BadValue"),
            (&["--max-session-messages", "0"], "BadValue"),
            (&["-c", "/nonexistent/spread.conf"], "ReadFile"),
        ];
        for (args, variant) in cases {
            match run(args) {
                Err(e) => assert!(format!("{e:?}").starts_with(variant), "{args:?}: {e:?}"),
                Ok(_) => panic!("{args:?} accepted"),
            }
        }
    }

    #[test]
    fn spread_conf_then_flags() {
        let dir = std::env::temp_dir().join(format!("sd-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spread.conf");
        std::fs::write(&path, "Spread_Segment 127.0.0.255:4999 {\n  box1 127.0.0.1\n}\nMaxSessionMessages = 77\nRuntimeDir = /run/x\n").unwrap();
        let c = run(&["-c", path.to_str().unwrap(), "--name", "box2"]).unwrap();
        assert_eq!(c.port, 4999);
        assert_eq!(c.name, "box2");
        assert_eq!(c.max_session_messages, 77);
        assert_eq!(c.unix_path(), Some(PathBuf::from("/run/x/4999")));
        std::fs::write(
            &path,
            "Spread_Segment 127.0.0.255:4999 {\n  a 10.0.0.1\n  b 10.0.0.2\n}\n",
        )
        .unwrap();
        let err = run(&["-c", path.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("real Spread ring"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
