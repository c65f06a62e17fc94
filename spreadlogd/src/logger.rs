//! spreadlogd's own messages: stderr in the foreground, syslog (or a file, `ErrorLog`) when
//! daemonised, so they can always be read.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Info,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
        }
    }
    fn syslog_priority(self) -> libc::c_int {
        match self {
            Level::Error => libc::LOG_ERR,
            Level::Warning => libc::LOG_WARNING,
            Level::Notice => libc::LOG_NOTICE,
            Level::Info => libc::LOG_INFO,
        }
    }
}

enum Dest {
    Stderr,
    File(File),
    Syslog,
}

pub struct Logger {
    dest: Mutex<Dest>,
    /// Info messages (`-v`) are written only when verbose.
    verbose: bool,
    program: &'static str,
}

impl Logger {
    pub fn stderr(program: &'static str, verbose: bool) -> Logger {
        Logger {
            dest: Mutex::new(Dest::Stderr),
            verbose,
            program,
        }
    }

    pub fn file(program: &'static str, path: &Path, verbose: bool) -> std::io::Result<Logger> {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?;
        Ok(Logger {
            dest: Mutex::new(Dest::File(f)),
            verbose,
            program,
        })
    }

    pub fn syslog(program: &'static str, verbose: bool) -> Logger {
        // openlog keeps the pointer: the ident must live for the whole process.
        static IDENT: std::sync::OnceLock<CString> = std::sync::OnceLock::new();
        let ident = IDENT.get_or_init(|| CString::new(program).unwrap_or_default());
        // SAFETY: ident is a NUL-terminated string with 'static lifetime, as openlog requires.
        unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
        Logger {
            dest: Mutex::new(Dest::Syslog),
            verbose,
            program,
        }
    }

    pub fn log(&self, level: Level, msg: &str) {
        if level == Level::Info && !self.verbose {
            return;
        }
        let mut dest = self.dest.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *dest {
            Dest::Stderr => {
                let _ = writeln!(
                    std::io::stderr(),
                    "{}: {}: {}",
                    self.program,
                    level.as_str(),
                    msg
                );
            }
            Dest::File(f) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let _ = writeln!(
                    f,
                    "{now} {}[{}]: {}: {}",
                    self.program,
                    std::process::id(),
                    level.as_str(),
                    msg
                );
            }
            Dest::Syslog => {
                let text = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
                // SAFETY: both strings are NUL-terminated and live across the call; "%s" consumes
                // exactly the one vararg given.
                unsafe { libc::syslog(level.syslog_priority(), c"%s".as_ptr(), text.as_ptr()) };
            }
        }
    }

    pub fn error(&self, msg: &str) {
        self.log(Level::Error, msg);
    }
    pub fn warn(&self, msg: &str) {
        self.log(Level::Warning, msg);
    }
    pub fn notice(&self, msg: &str) {
        self.log(Level::Notice, msg);
    }
    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg);
    }
}
