//! The directive table (data, one line per directive, like mod_log_config's) and its handlers.
//! Handlers only parse (through `crate::config`) and store into the pending generation; errors
//! come back as Apache syntax errors, so `apachectl configtest` shows them with file and line.

use std::ffi::{c_char, c_int, c_void};

use crate::apache::{self, cmd_func, cmd_parms, command_rec};
use crate::config;

use super::state::{ErrorLogConf, with_pending};
use super::util::{guarded, opt_str, pool_str};

/// Declares the directives once: the enum and the list `cmd_data` indexes.
macro_rules! directives {
    ($($d:ident),+ $(,)?) => {
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        enum Directive {
            $($d),+
        }

        impl Directive {
            const ALL: &[Directive] = &[$(Directive::$d),+];
        }
    };
}

directives!(
    Daemon,
    ConnectTimeout,
    SendTimeout,
    RetryInterval,
    ServiceType,
    HashSize,
    HashPrefix,
    TrustHost,
    Spool,
    SpoolSize,
    ErrorLog,
    StatsInterval,
    Acknowledge,
    AckWindow,
    AckWarning,
    AckAll,
    FlushInterval,
    BatchSize,
    BatchMessages,
);

impl Directive {
    /// The directive a `command_rec` carries in `cmd_data` (its index + 1: never NULL).
    fn from_info(info: *mut c_void) -> Option<Directive> {
        (info as usize)
            .checked_sub(1)
            .and_then(|i| Directive::ALL.get(i))
            .copied()
    }

    const fn info(self) -> *mut c_void {
        (self as usize + 1) as *mut c_void
    }

    /// Server-wide settings: refused inside <VirtualHost>.
    fn global_only(self) -> bool {
        self != Directive::ErrorLog
    }
}

/// `command_rec` holds raw pointers, so a table of them is not `Sync` by itself.
#[repr(transparent)]
pub struct CommandTable<const N: usize>(pub [command_rec; N]);
// SAFETY: the table is immutable data (pointers to static strings and functions), only read.
unsafe impl<const N: usize> Sync for CommandTable<N> {}

const RSRC: c_int = apache::RSRC_CONF as c_int;

/// How a directive takes its arguments (Apache's `TAKE1`, `TAKE12`, `FLAG`).
#[derive(Clone, Copy)]
enum Args {
    Take1,
    Take12,
    Flag,
}

/// One `command_rec`, as Apache's `AP_INIT_*` macros build them: every directive is
/// server-config only and carries its `Directive` in `cmd_data`.
const fn entry(
    name: &'static std::ffi::CStr,
    args: Args,
    d: Directive,
    help: &'static std::ffi::CStr,
) -> command_rec {
    let (func, args_how) = match args {
        Args::Take1 => (
            cmd_func {
                take1: Some(on_take1),
            },
            apache::cmd_how_TAKE1,
        ),
        Args::Take12 => (
            cmd_func {
                take2: Some(on_take12),
            },
            apache::cmd_how_TAKE12,
        ),
        Args::Flag => (
            cmd_func {
                flag: Some(on_flag),
            },
            apache::cmd_how_FLAG,
        ),
    };
    command_rec {
        name: name.as_ptr(),
        func,
        cmd_data: d.info(),
        req_override: RSRC,
        args_how,
        errmsg: help.as_ptr(),
    }
}

const END: command_rec = command_rec {
    name: std::ptr::null(),
    func: cmd_func { no_args: None },
    cmd_data: std::ptr::null_mut(),
    req_override: 0,
    args_how: 0,
    errmsg: std::ptr::null(),
};

use Directive as D;
#[rustfmt::skip]
pub static COMMANDS: CommandTable<20> = CommandTable([
    entry(c"SpreadDaemon",               Args::Take12,  D::Daemon,         c"SpreadDaemon <spread name: 4803, 4803@host, /path/to/socket> [id]: a Spread daemon to send to (default: 4803, id 0)"),
    entry(c"SpreadConnectTimeout",       Args::Take1,   D::ConnectTimeout, c"SpreadConnectTimeout <ms>: bound on connecting to a daemon (default 200)"),
    entry(c"SpreadSendTimeout",          Args::Take1,   D::SendTimeout,    c"SpreadSendTimeout <ms>: bound on handing one line over, lock wait included (default 100)"),
    entry(c"SpreadRetryInterval",        Args::Take1,   D::RetryInterval,  c"SpreadRetryInterval <ms>: wait after a failure before dialling a daemon again (default 1000)"),
    entry(c"SpreadServiceType",          Args::Take1,   D::ServiceType,    c"SpreadServiceType UNRELIABLE|RELIABLE|FIFO|CAUSAL|AGREED|SAFE (default AGREED)"),
    entry(c"VhostLogHashSize",           Args::Take1,   D::HashSize,       c"VhostLogHashSize <n>: number of $#vhost bucket groups (default 32)"),
    entry(c"VhostLogGroupPrefix",        Args::Take1,   D::HashPrefix,     c"VhostLogGroupPrefix <prefix>: put before $#vhost bucket numbers (default none)"),
    entry(c"SpreadTrustHostHeader",      Args::Flag,    D::TrustHost,      c"SpreadTrustHostHeader On|Off: use the raw Host header for $#hostname/$#vhost without checking it against ServerName/ServerAlias (default Off)"),
    entry(c"SpreadSpool",                Args::Take1,   D::Spool,          c"SpreadSpool <file>: where lines wait when no daemon takes them (default /var/spool/mod_log_spread/spool)"),
    entry(c"SpreadSpoolSize",            Args::Take1,   D::SpoolSize,      c"SpreadSpoolSize <bytes|nK|nM|nG>: spool size cap (default 256M)"),
    entry(c"SpreadErrorLog",             Args::Take12,  D::ErrorLog,       c"SpreadErrorLog <target> [level]: ship error-log lines of this server up to level (default: the server's LogLevel)"),
    entry(c"SpreadStatsInterval",        Args::Take1,   D::StatsInterval,  c"SpreadStatsInterval <seconds>: log the counters every so often from the parent (default 0 = never)"),
    entry(c"SpreadAcknowledge",          Args::Flag,    D::Acknowledge,    c"SpreadAcknowledge On|Off: hold every line until a collector acknowledges it, resend what it lacks (default On; Off when only collectors without acknowledgements, such as the original C spreadlogd, listen)"),
    entry(c"SpreadAckWindow",            Args::Take1,   D::AckWindow,      c"SpreadAckWindow <bytes|nK|nM|nG>: unacknowledged lines held per child and daemon before new lines go to the spool (default 4M)"),
    entry(c"SpreadAckWarning",           Args::Take1,   D::AckWarning,     c"SpreadAckWarning <seconds>: warn in the error log (at most every 5 minutes) once a line waits this long for an acknowledgement (default 60)"),
    entry(c"SpreadAckAll",               Args::Flag,    D::AckAll,         c"SpreadAckAll On|Off: release a line only once every collector of its group has acknowledged it, so that two log hosts both end complete (default Off: any one)"),
    entry(c"SpreadFlushInterval",        Args::Take1,   D::FlushInterval,  c"SpreadFlushInterval <ms>: lines of a child wait at most this long to be written to the daemon together, several messages per write (default 10; 0 = one write per line)"),
    entry(c"SpreadBatchSize",            Args::Take1,   D::BatchSize,      c"SpreadBatchSize <bytes|nK|nM>: a child's batch this large is written at once (default 32K, at most 1M)"),
    entry(c"SpreadBatchMessages",        Args::Flag,    D::BatchMessages,  c"SpreadBatchMessages On|Off: with batching, consecutive lines of one group share one Spread message, each line numbered (default Off; only spreadlogd of this release reads such messages, the original C spreadlogd cannot)"),
    END,
]);

fn apply(
    cmd: *mut cmd_parms,
    directive: Directive,
    a: Option<&str>,
    b: Option<&str>,
    on: bool,
) -> Result<(), String> {
    let a = a.unwrap_or("");
    with_pending(|p| -> Result<(), config::ConfigError> {
        match directive {
            D::Daemon => {
                let spec = config::parse_daemon(a, b)?;
                config::add_daemon(&mut p.cfg.daemons, spec)?;
            }
            D::ConnectTimeout => {
                p.cfg.connect_timeout = config::parse_millis("SpreadConnectTimeout", a)?
            }
            D::SendTimeout => p.cfg.send_timeout = config::parse_millis("SpreadSendTimeout", a)?,
            D::RetryInterval => {
                p.cfg.retry_interval = config::parse_millis("SpreadRetryInterval", a)?
            }
            D::ServiceType => p.cfg.service_type = config::parse_service(a)?,
            D::HashSize => p.cfg.hash_size = config::parse_hash_size(a)?,
            D::HashPrefix => p.cfg.hash_prefix = config::parse_prefix(a)?,
            D::TrustHost => p.cfg.trust_host_header = on,
            D::Spool => p.cfg.spool_path = server_root_relative(cmd, a),
            D::SpoolSize => p.cfg.spool_cap = config::parse_size(a)?,
            D::StatsInterval => p.cfg.stats_interval = config::parse_stats_interval(a)?,
            D::Acknowledge => p.cfg.acknowledge = on,
            D::AckWindow => p.cfg.ack_window = config::parse_ack_window(a)?,
            D::AckWarning => p.cfg.ack_warning = config::parse_ack_warning(a)?,
            D::AckAll => p.cfg.ack_all = on,
            D::FlushInterval => p.cfg.flush_interval = config::parse_flush_interval(a)?,
            D::BatchSize => p.cfg.batch_bytes = config::parse_batch_size(a)?,
            D::BatchMessages => p.cfg.batch_messages = on,
            D::ErrorLog => {
                let target = config::parse_target(a)?;
                let max_level = match b {
                    Some(level) => config::parse_level(level)?,
                    None => u32::MAX,
                };
                // SAFETY: Apache passes a valid cmd_parms whose `server` is the server being read.
                let server = unsafe { (*cmd).server } as usize;
                p.error_logs.retain(|(s, _)| *s != server);
                p.error_logs
                    .push((server, ErrorLogConf { target, max_level }));
            }
        }
        Ok(())
    })
    .map_err(|e| e.to_string())
}

/// A path as Apache resolves file names in its configuration: relative to ServerRoot.
fn server_root_relative(cmd: *mut cmd_parms, path: &str) -> std::path::PathBuf {
    let Ok(c) = std::ffi::CString::new(path) else {
        return path.into();
    };
    // SAFETY: cmd->pool is live during configuration; ap_server_root_relative copies into it and
    // returns NULL for an invalid path.
    let resolved = unsafe { apache::ap_server_root_relative((*cmd).pool, c.as_ptr()) };
    // SAFETY: NULL or a NUL-terminated string in the pool.
    unsafe { opt_str(resolved) }.map_or_else(|| path.into(), Into::into)
}

/// Shared body of every handler: context check, parse, store, error string into the pool.
///
/// # Safety
/// `cmd` is the cmd_parms Apache passes to a directive handler.
unsafe fn handle(cmd: *mut cmd_parms, a: Option<&str>, b: Option<&str>, on: bool) -> *const c_char {
    // SAFETY: `cmd` is valid for the duration of the handler.
    let (info, pool) = unsafe { ((*cmd).info, (*cmd).pool) };
    let Some(directive) = Directive::from_info(info) else {
        // SAFETY: pool is cmd->pool, alive during configuration.
        return unsafe { pool_str(pool, "mod_log_spread: unknown directive slot") };
    };
    if directive.global_only() {
        // SAFETY: ap_check_cmd_context only reads `cmd`.
        let err = unsafe { apache::ap_check_cmd_context(cmd, apache::GLOBAL_ONLY) };
        if !err.is_null() {
            return err;
        }
    }
    match guarded(
        "a directive",
        Err("internal error (see the error log)".to_owned()),
        || apply(cmd, directive, a, b, on),
    ) {
        Ok(()) => std::ptr::null(),
        // SAFETY: as above.
        Err(message) => unsafe { pool_str(pool, &message) },
    }
}

unsafe extern "C" fn on_take1(
    cmd: *mut cmd_parms,
    _: *mut c_void,
    w: *const c_char,
) -> *const c_char {
    // SAFETY: Apache passes NUL-terminated words that live through the call.
    unsafe { handle(cmd, opt_str(w), None, false) }
}

unsafe extern "C" fn on_take12(
    cmd: *mut cmd_parms,
    _: *mut c_void,
    w: *const c_char,
    w2: *const c_char,
) -> *const c_char {
    // SAFETY: as on_take1; `w2` is NULL when the optional word is absent.
    unsafe { handle(cmd, opt_str(w), opt_str(w2), false) }
}

unsafe extern "C" fn on_flag(cmd: *mut cmd_parms, _: *mut c_void, on: c_int) -> *const c_char {
    // SAFETY: as on_take1.
    unsafe { handle(cmd, None, None, on != 0) }
}
