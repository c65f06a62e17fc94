//! The module's configuration as plain data, and the pure parsers behind every directive.
//! The FFI layer only moves strings in and these values out, so every rule here is unit-tested.

use std::path::PathBuf;
use std::time::Duration;

use spread_sys::service;
use spread_sys::spread_name::{Endpoint, SpreadName};

use crate::target::{self, Target};

pub const DEFAULT_DAEMON: &str = "4803";
pub const DEFAULT_HASH_SIZE: u32 = 32;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_millis(100);
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_millis(1000);
pub const DEFAULT_SPOOL_PATH: &str = "/var/spool/mod_log_spread/spool";
pub const DEFAULT_SPOOL_CAP: u64 = 256 * 1024 * 1024;
/// Longest accepted timeout / interval: a request must never wait longer than this.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// One `SpreadDaemon`, resolved when the configuration was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSpec {
    pub id: u32,
    pub name: SpreadName,
    pub endpoint: Endpoint,
}

/// Everything the module needs at run time (server-wide settings from the main server).
#[derive(Debug, Clone)]
pub struct ModuleConfig {
    pub daemons: Vec<DaemonSpec>,
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    pub retry_interval: Duration,
    pub service_type: u32,
    pub hash_size: u32,
    pub hash_prefix: String,
    pub trust_host_header: bool,
    pub spool_path: PathBuf,
    pub spool_cap: u64,
    /// Seconds between counter notices in the error log (0 = none).
    pub stats_interval: Duration,
    /// `SpreadAcknowledge`: hold every line until a collector acknowledges it (CONTRACTS
    /// "Acknowledged delivery").
    pub acknowledge: bool,
    /// `SpreadAckWindow`: bytes of unacknowledged lines held per connection (then the spool).
    pub ack_window: u64,
    /// `SpreadAckWarning`: warn in the error log once the oldest unacknowledged line is this old.
    pub ack_warning: Duration,
    /// `SpreadAckAll`: release a line only once every collector of its group has it.
    pub ack_all: bool,
    /// `SpreadFlushInterval`: lines wait at most this long in a child's batch before they are
    /// written to the daemon (zero: no batching, one write per line).
    pub flush_interval: Duration,
    /// `SpreadBatchSize`: a batch this large is written at once by the request that filled it.
    pub batch_bytes: usize,
    /// `SpreadBatchMessages`: consecutive lines of one group in a batch share one message
    /// (collectors of this release only).
    pub batch_messages: bool,
}

impl Default for ModuleConfig {
    fn default() -> Self {
        ModuleConfig {
            daemons: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            service_type: service::AGREED_MESS,
            hash_size: DEFAULT_HASH_SIZE,
            hash_prefix: String::new(),
            trust_host_header: false,
            spool_path: PathBuf::from(DEFAULT_SPOOL_PATH),
            spool_cap: DEFAULT_SPOOL_CAP,
            stats_interval: Duration::ZERO,
            acknowledge: true,
            ack_window: DEFAULT_ACK_WINDOW,
            ack_warning: DEFAULT_ACK_WARNING,
            ack_all: false,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            batch_bytes: DEFAULT_BATCH_BYTES,
            batch_messages: false,
        }
    }
}

/// Default `SpreadFlushInterval`: a line reaches the daemon within 25 ms (a `spread-tail`
/// watcher sees lines up to 25 ms later than unbatched). Each write costs the web host a wake-up
/// of the child's background thread and of the local daemon, several tens of µs on a VM: with
/// every setup of `scripts/bench-peers` loaded at once, 10 ms cost 1.022 × a file log's CPU per
/// request and 25 ms 0.975 (50 ms: 0.986, no better). At 1,000 requests/s a write carries about
/// 25 lines; under heavy load batches fill by size (`SpreadBatchSize`) first.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(25);
/// Default `SpreadBatchSize`: 32 KiB, about 150 lines of 200 bytes per write; well under a unix
/// socket's send buffer, so a flush rarely waits for the daemon. Under full load a child taking
/// 6,000 lines/s fills it every 15 ms, before the flush interval. 128 KiB cut the local
/// daemon's CPU per request in `scripts/bench-peers` from 0.67-0.77 µs to 0.51-0.63 µs (fewer
/// passes), but httpd's user-space instructions per request in `scripts/bench-module` were
/// 140-170 higher in three of four runs (c/b 1.0282-1.0290 against 1.0240-1.0245; the count
/// moves with wall-clock timing, as the background thread's work is shared among the requests
/// of its interval), too close to the budget of 1.03 to take on a gain the web host's total
/// does not show.
pub const DEFAULT_BATCH_BYTES: usize = 32 << 10;

/// Default `SpreadAckWindow`: 4 MiB per connection, about 16,000 lines of 250 bytes.
pub const DEFAULT_ACK_WINDOW: u64 = 4 << 20;
/// Default `SpreadAckWarning`.
pub const DEFAULT_ACK_WARNING: Duration = Duration::from_secs(60);

/// A Spread target found in Apache's configuration tree (CustomLog, TransferLog, GlobalLog),
/// with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundTarget {
    pub target: String,
    pub file: String,
    pub line: i32,
    pub directive: String,
}

impl ModuleConfig {
    pub fn daemon(&self, id: u32) -> Option<&DaemonSpec> {
        self.daemons.iter().find(|d| d.id == id)
    }

    /// Checks that need the whole configuration (run before Apache accepts it).
    pub fn validate(&self) -> Result<(), ConfigError> {
        use spread_sys::service::{AGREED_MESS, CAUSAL_MESS, FIFO_MESS, SAFE_MESS};
        if self.acknowledge
            && self.service_type & (FIFO_MESS | CAUSAL_MESS | AGREED_MESS | SAFE_MESS) == 0
        {
            return Err(ConfigError::AcksNeedOrder);
        }
        if self.batch_messages && self.flush_interval.is_zero() {
            return Err(ConfigError::BatchMessagesNeedBatching);
        }
        let widest = (self.hash_size - 1).to_string();
        if self.hash_prefix.len() + widest.len() > spread_sys::names::MAX_GROUP_LEN {
            return Err(ConfigError::PrefixTooLong {
                prefix: self.hash_prefix.clone(),
                size: self.hash_size,
            });
        }
        Ok(())
    }

    /// Complete and check the configuration as read, before Apache accepts it (configtest): the
    /// default daemon when none was named, the whole-configuration checks, every Spread target
    /// `logs` found in the configuration tree, and the SpreadErrorLog targets. Every problem is
    /// reported, each as a readable message naming where it was written.
    pub fn finalize<'t>(
        &mut self,
        logs: &[FoundTarget],
        error_logs: impl IntoIterator<Item = &'t Target>,
    ) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.daemons.is_empty() {
            match parse_daemon(DEFAULT_DAEMON, None) {
                Ok(spec) => self.daemons.push(spec),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if let Err(e) = self.validate() {
            errors.push(e.to_string());
        }
        for f in logs {
            if let Err(e) = parse_target(&f.target).and_then(|t| self.check_target(&t)) {
                errors.push(format!(
                    "{} on line {} of {}: {e}",
                    f.directive, f.line, f.file
                ));
            }
        }
        for t in error_logs {
            if let Err(e) = self.check_target(t) {
                errors.push(format!("SpreadErrorLog: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Every daemon id a target uses must be configured.
    pub fn check_target(&self, target: &Target) -> Result<(), ConfigError> {
        for alt in &target.alternatives {
            if self.daemon(alt.daemon_id).is_none() {
                return Err(ConfigError::UnknownDaemonId {
                    id: alt.daemon_id,
                    known: self
                        .daemons
                        .iter()
                        .map(|d| d.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("SpreadDaemon: {0}")]
    BadDaemonName(String),
    #[error("SpreadDaemon: id {0:?} is not a non-negative integer")]
    BadDaemonId(String),
    #[error("SpreadDaemon: id {0} is used twice; give each daemon its own id")]
    DuplicateDaemonId(u32),
    #[error("SpreadDaemon {name}: cannot resolve: {why}")]
    Unresolvable { name: String, why: String },
    #[error("{directive}: {value:?} is not a number of milliseconds between 1 and 60000")]
    BadMillis {
        directive: &'static str,
        value: String,
    },
    #[error("VhostLogHashSize: {0:?} is not a number between 1 and 100000")]
    BadHashSize(String),
    #[error("VhostLogGroupPrefix: {0}")]
    BadPrefix(String),
    #[error(
        "VhostLogGroupPrefix {prefix:?} plus bucket numbers up to {size} would exceed 31 bytes"
    )]
    PrefixTooLong { prefix: String, size: u32 },
    #[error(
        "SpreadAcknowledge On needs per-sender order: SpreadServiceType UNRELIABLE and RELIABLE \
         may reorder a sender's lines; use FIFO, CAUSAL, AGREED or SAFE, or SpreadAcknowledge Off"
    )]
    AcksNeedOrder,
    #[error(
        "SpreadBatchMessages On puts the lines of one batch into one message: it needs batching, \
         SpreadFlushInterval above 0"
    )]
    BatchMessagesNeedBatching,
    #[error("SpreadFlushInterval: {0:?} is not milliseconds from 0 (no batching) to 1000")]
    BadFlushInterval(String),
    #[error("SpreadBatchSize: {0:?} is not a size from 4K to 1M (bytes, nK, nM)")]
    BadBatchSize(String),
    #[error("SpreadAckWindow: {0:?} is not a size from 64K to 1G (bytes, nK, nM, nG)")]
    BadAckWindow(String),
    #[error("SpreadAckWarning: {0:?} is not a number of seconds from 1 to 86400")]
    BadAckWarning(String),
    #[error(
        "SpreadServiceType: {0:?} is not one of UNRELIABLE, RELIABLE, FIFO, CAUSAL, AGREED, SAFE"
    )]
    BadService(String),
    #[error("SpreadSpoolSize: {0:?} is not a size (bytes, or with K, M or G; at least 4K)")]
    BadSize(String),
    #[error("SpreadStatsInterval: {0:?} is not a number of seconds (0 = off)")]
    BadStatsInterval(String),
    #[error("target {target:?}: {source}")]
    BadTarget {
        target: String,
        source: target::TargetError,
    },
    #[error("target uses daemon id {id}, but only these SpreadDaemon ids are configured: {known}")]
    UnknownDaemonId { id: u32, known: String },
    #[error(
        "SpreadErrorLog: level {0:?} is not one of emerg, alert, crit, error, warn, notice, info, debug"
    )]
    BadLevel(String),
}

/// `SpreadDaemon <spread name> [id]`: parsed and resolved (never on the request path).
pub fn parse_daemon(name: &str, id: Option<&str>) -> Result<DaemonSpec, ConfigError> {
    let id = match id {
        None => 0,
        Some(raw) => raw
            .parse::<u32>()
            .map_err(|_| ConfigError::BadDaemonId(raw.to_owned()))?,
    };
    let parsed = SpreadName::parse(name).map_err(|e| ConfigError::BadDaemonName(e.to_string()))?;
    let endpoint = parsed.resolve().map_err(|e| ConfigError::Unresolvable {
        name: name.to_owned(),
        why: e.to_string(),
    })?;
    Ok(DaemonSpec {
        id,
        name: parsed,
        endpoint,
    })
}

/// Add a daemon, refusing a duplicate id.
pub fn add_daemon(daemons: &mut Vec<DaemonSpec>, spec: DaemonSpec) -> Result<(), ConfigError> {
    if daemons.iter().any(|d| d.id == spec.id) {
        return Err(ConfigError::DuplicateDaemonId(spec.id));
    }
    daemons.push(spec);
    Ok(())
}

pub fn parse_millis(directive: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let bad = || ConfigError::BadMillis {
        directive,
        value: value.to_owned(),
    };
    let ms = value.trim().parse::<u64>().map_err(|_| bad())?;
    if ms == 0 || Duration::from_millis(ms) > MAX_TIMEOUT {
        return Err(bad());
    }
    Ok(Duration::from_millis(ms))
}

pub fn parse_hash_size(value: &str) -> Result<u32, ConfigError> {
    match value.trim().parse::<u32>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(ConfigError::BadHashSize(value.to_owned())),
    }
}

pub fn parse_prefix(value: &str) -> Result<String, ConfigError> {
    target::validate_group_name(value).map_err(|e| ConfigError::BadPrefix(e.to_string()))?;
    Ok(value.to_owned())
}

pub fn parse_service(value: &str) -> Result<u32, ConfigError> {
    let name = value.trim().to_ascii_uppercase();
    let name = name.strip_suffix("_MESS").unwrap_or(&name);
    Ok(match name {
        "UNRELIABLE" => service::UNRELIABLE_MESS,
        "RELIABLE" => service::RELIABLE_MESS,
        "FIFO" => service::FIFO_MESS,
        "CAUSAL" => service::CAUSAL_MESS,
        "AGREED" => service::AGREED_MESS,
        "SAFE" => service::SAFE_MESS,
        _ => return Err(ConfigError::BadService(value.to_owned())),
    })
}

/// A size: bytes, or a number followed by K, M or G (powers of 1024). At least 4 KiB.
pub fn parse_size(value: &str) -> Result<u64, ConfigError> {
    let bad = || ConfigError::BadSize(value.to_owned());
    let v = value.trim();
    let (digits, unit) = match v.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&v[..v.len() - 1], 1u64 << 10),
        Some(b'M') => (&v[..v.len() - 1], 1 << 20),
        Some(b'G') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    let n = digits.parse::<u64>().map_err(|_| bad())?;
    let bytes = n.checked_mul(unit).ok_or_else(bad)?;
    if bytes < 4096 {
        return Err(bad());
    }
    Ok(bytes)
}

/// `SpreadAckWindow`: a size (as `SpreadSpoolSize`) from 64 KiB to 1 GiB.
pub fn parse_ack_window(value: &str) -> Result<u64, ConfigError> {
    match parse_size(value) {
        Ok(n) if ((64 << 10)..=(1 << 30)).contains(&n) => Ok(n),
        _ => Err(ConfigError::BadAckWindow(value.to_owned())),
    }
}

/// `SpreadFlushInterval`: milliseconds, 0 (no batching) to 1000.
pub fn parse_flush_interval(value: &str) -> Result<Duration, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(n) if n <= 1000 => Ok(Duration::from_millis(n)),
        _ => Err(ConfigError::BadFlushInterval(value.to_owned())),
    }
}

/// `SpreadBatchSize`: a size from 4 KiB to 1 MiB.
pub fn parse_batch_size(value: &str) -> Result<usize, ConfigError> {
    match parse_size(value) {
        Ok(n) if n <= 1 << 20 => Ok(n as usize),
        _ => Err(ConfigError::BadBatchSize(value.to_owned())),
    }
}

/// `SpreadAckWarning`: whole seconds, 1 to 86400.
pub fn parse_ack_warning(value: &str) -> Result<Duration, ConfigError> {
    match value.parse::<u64>() {
        Ok(n) if (1..=86_400).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(ConfigError::BadAckWarning(value.to_owned())),
    }
}

pub fn parse_stats_interval(value: &str) -> Result<Duration, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(s) if s <= 86_400 => Ok(Duration::from_secs(s)),
        _ => Err(ConfigError::BadStatsInterval(value.to_owned())),
    }
}

/// Error-log levels as Apache numbers them (APLOG_EMERG = 0 .. APLOG_DEBUG = 7).
pub fn parse_level(value: &str) -> Result<u32, ConfigError> {
    const LEVELS: [&str; 8] = [
        "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
    ];
    LEVELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(value.trim()))
        .map(|i| i as u32)
        .ok_or_else(|| ConfigError::BadLevel(value.to_owned()))
}

pub fn level_name(level: u32) -> &'static str {
    match level {
        0 => "emerg",
        1 => "alert",
        2 => "crit",
        3 => "error",
        4 => "warn",
        5 => "notice",
        6 => "info",
        7 => "debug",
        _ => "trace",
    }
}

pub fn parse_target(value: &str) -> Result<Target, ConfigError> {
    target::parse(value).map_err(|source| ConfigError::BadTarget {
        target: value.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis() {
        assert_eq!(
            parse_millis("SpreadSendTimeout", "250").unwrap(),
            Duration::from_millis(250)
        );
        for bad in ["0", "-1", "x", "", "60001", "1.5"] {
            let e = parse_millis("SpreadSendTimeout", bad)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("SpreadSendTimeout:"), "{e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        for bad in ["", "1", "4095", "K", "12Q", "-5M", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn services_and_levels() {
        assert_eq!(parse_service("agreed").unwrap(), service::AGREED_MESS);
        assert_eq!(parse_service("SAFE_MESS").unwrap(), service::SAFE_MESS);
        assert!(parse_service("TOTAL").is_err());
        assert_eq!(parse_level("Warn").unwrap(), 4);
        assert!(parse_level("loud").is_err());
        assert_eq!(level_name(3), "error");
    }

    #[test]
    fn hash_size_and_prefix() {
        assert_eq!(parse_hash_size("32").unwrap(), 32);
        assert!(parse_hash_size("0").is_err());
        assert!(parse_hash_size("x").is_err());
        assert!(parse_prefix("apache-").is_ok());
        assert!(parse_prefix("a,b").is_err());
        let cfg = ModuleConfig {
            hash_prefix: "p".repeat(29),
            hash_size: 1000,
            ..Default::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::PrefixTooLong { .. })
        ));
    }

    #[test]
    fn acknowledgements_need_per_sender_order() {
        for (service, acks, ok) in [
            ("AGREED", true, true),
            ("FIFO", true, true),
            ("SAFE", true, true),
            ("RELIABLE", true, false),
            ("UNRELIABLE", true, false),
            ("RELIABLE", false, true),
        ] {
            let cfg = ModuleConfig {
                service_type: parse_service(service).unwrap(),
                acknowledge: acks,
                ..ModuleConfig::default()
            };
            assert_eq!(cfg.validate().is_ok(), ok, "{service} acks={acks}");
            if !ok {
                assert!(
                    cfg.validate()
                        .unwrap_err()
                        .to_string()
                        .contains("SpreadAcknowledge Off")
                );
            }
        }
        assert_eq!(parse_flush_interval("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_flush_interval("25").unwrap(),
            Duration::from_millis(25)
        );
        assert!(parse_flush_interval("1001").is_err());
        assert!(parse_flush_interval("-1").is_err());
        assert_eq!(parse_batch_size("64K").unwrap(), 64 << 10);
        assert!(parse_batch_size("2M").is_err());
        assert!(parse_batch_size("100").is_err());
        assert_eq!(parse_ack_window("4M").unwrap(), 4 << 20);
        assert!(parse_ack_window("1K").is_err());
        assert!(parse_ack_window("2G").is_err());
        assert_eq!(parse_ack_warning("5").unwrap(), Duration::from_secs(5));
        assert!(parse_ack_warning("0").is_err() && parse_ack_warning("x").is_err());
        let cfg = ModuleConfig {
            hash_prefix: "p".repeat(29),
            hash_size: 100,
            ..Default::default()
        };
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn daemon_ids_are_checked() {
        let spec = |id| DaemonSpec {
            id,
            name: SpreadName::Unix("/tmp/x".into()),
            endpoint: Endpoint::Unix("/tmp/x".into()),
        };
        let mut daemons = vec![];
        add_daemon(&mut daemons, spec(0)).unwrap();
        add_daemon(&mut daemons, spec(1)).unwrap();
        assert_eq!(
            add_daemon(&mut daemons, spec(1)),
            Err(ConfigError::DuplicateDaemonId(1))
        );
        let cfg = ModuleConfig {
            daemons,
            ..Default::default()
        };
        assert!(cfg.check_target(&parse_target("$a#1,$b").unwrap()).is_ok());
        let e = cfg
            .check_target(&parse_target("$a#7").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("id 7") && e.contains("0, 1"), "{e}");
        assert!(matches!(
            parse_daemon("4803", Some("x")),
            Err(ConfigError::BadDaemonId(_))
        ));
    }

    #[test]
    fn finalize_adds_the_default_daemon_and_reports_every_problem_with_its_place() {
        let found = |target: &str, line| FoundTarget {
            target: target.into(),
            file: "/etc/apache2/sites-enabled/a.conf".into(),
            line,
            directive: "CustomLog".into(),
        };
        let mut cfg = ModuleConfig::default();
        cfg.finalize(&[found("$www", 3)], []).unwrap();
        assert_eq!(cfg.daemons.len(), 1, "the default daemon");
        assert!(cfg.daemon(0).is_some());

        let mut cfg = ModuleConfig {
            hash_prefix: "p".repeat(40),
            ..ModuleConfig::default()
        };
        let bad_error_log = parse_target("$errors#7").unwrap();
        let errors = cfg
            .finalize(
                &[found("$www#2", 5), found("$ok", 6), found("$a b", 9)],
                [&bad_error_log],
            )
            .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("VhostLogGroupPrefix"), "{errors:?}");
        assert!(
            errors[1].starts_with("CustomLog on line 5 of /etc/apache2/sites-enabled/a.conf"),
            "{errors:?}"
        );
        assert!(
            errors[2].starts_with("CustomLog on line 9 of"),
            "{errors:?}"
        );
        assert!(errors[3].starts_with("SpreadErrorLog: "), "{errors:?}");
    }
}
