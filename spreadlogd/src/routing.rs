//! Routing: which `Log` blocks take a message (by daemon and group), `Match` filtering (OR of
//! regexes on the exact message bytes), vhost splitting and timestamp rewriting, down to the
//! pending buffer of the right output. Pure in-memory work; writing happens in `flush`.

use std::collections::HashMap;

use regex::bytes::RegexSet;

use crate::config::{Config, FileTarget};
use crate::delivered::Touched;
use crate::logger::Logger;
use crate::output::Output;
use crate::timestamp::Rewriter;
use crate::vhost;
use crate::vhost_files::VhostFiles;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{file}:{line}: Match patterns do not compile together: {source}")]
    Regex {
        file: String,
        line: u32,
        source: regex::Error,
    },
}

enum Dest {
    Output(usize),
    Vhost(usize),
}

struct LogRoute {
    matcher: Option<RegexSet>,
    rewriter: Option<Rewriter>,
    dest: Dest,
}

/// Counters of what routing did.
#[derive(Debug, Default, Clone, Copy)]
pub struct RouteStats {
    /// Messages whose group has no Log block here (should not happen: we join only our groups).
    pub unrouted: u64,
    /// Messages no Match accepted in a Log block.
    pub filtered: u64,
    /// Lines queued for writing (one per Log block that took it).
    pub queued: u64,
    /// Vhost lines whose host was unusable and went to the fallback file.
    pub bad_hosts: u64,
}

pub struct Router {
    logs: Vec<LogRoute>,
    /// Per Spread block: group -> indexes into `logs`.
    by_group: Vec<HashMap<Vec<u8>, Vec<usize>>>,
    pub outputs: Vec<Output>,
    pub vhosts: Vec<VhostFiles>,
    /// Totals of the routers this one replaced (a SIGHUP re-read), so counters never go back.
    carried: (u64, u64, u64, u64),
    pub stats: RouteStats,
    scratch: Vec<u8>,
    /// Files written since the collector last took them (for its journal).
    touched: Vec<Touched>,
    stuck: bool,
}

impl Router {
    /// Build from the config; `lock` = flock files (not with `-s`). Nothing is opened yet.
    pub fn new(cfg: &Config, lock: bool) -> Result<Router, RouteError> {
        let mut r = Router {
            logs: Vec::new(),
            by_group: Vec::new(),
            outputs: Vec::new(),
            vhosts: Vec::new(),
            carried: (0, 0, 0, 0),
            stats: RouteStats::default(),
            scratch: Vec::new(),
            touched: Vec::new(),
            stuck: false,
        };
        let mut output_index: HashMap<FileTarget, usize> = HashMap::new();
        let mut vhost_index: HashMap<std::path::PathBuf, usize> = HashMap::new();
        for spread in &cfg.spreads {
            let mut by_group: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
            for log in &spread.logs {
                let matcher = if log.matches.is_empty() {
                    None
                } else {
                    let set = RegexSet::new(log.matches.iter().map(|(p, _)| p.as_str())).map_err(
                        |source| RouteError::Regex {
                            file: cfg.file.clone(),
                            line: log.matches[0].1,
                            source,
                        },
                    )?;
                    Some(set)
                };
                let dest = match (&log.vhost_dir, &log.file) {
                    (Some(dir), _) => {
                        Dest::Vhost(*vhost_index.entry(dir.clone()).or_insert_with(|| {
                            r.vhosts
                                .push(VhostFiles::new(dir.clone(), cfg.vhost_open_files, lock));
                            r.vhosts.len() - 1
                        }))
                    }
                    (None, Some(target)) => {
                        Dest::Output(*output_index.entry(target.clone()).or_insert_with(|| {
                            r.outputs.push(match target {
                                FileTarget::Path(p) => Output::file(p.clone(), lock),
                                FileTarget::Pipe(c) => Output::pipe(c.clone()),
                            });
                            r.outputs.len() - 1
                        }))
                    }
                    (None, None) => unreachable!("the parser requires File or VhostDir"),
                };
                by_group
                    .entry(log.group.as_bytes().to_vec())
                    .or_default()
                    .push(r.logs.len());
                r.logs.push(LogRoute {
                    matcher,
                    rewriter: log.rewrite.clone().map(Rewriter::new),
                    dest,
                });
            }
            r.by_group.push(by_group);
        }
        Ok(r)
    }

    /// Open every file and start every piped program (vhost files open lazily).
    pub fn open_all(&mut self) -> Result<(), String> {
        for o in &mut self.outputs {
            o.open()
                .map_err(|e| format!("cannot open {}: {e}", o.describe()))?;
        }
        for v in &self.vhosts {
            if !v.dir().is_dir() {
                return Err(format!("VhostDir {} is not a directory", v.dir().display()));
            }
        }
        Ok(())
    }

    /// Is `group` one of ours on Spread block `spread`?
    pub fn knows(&self, spread: usize, group: &[u8]) -> bool {
        self.by_group
            .get(spread)
            .is_some_and(|m| m.contains_key(group))
    }

    /// Route an unnumbered message (see `route_body`): the tests' shorthand.
    #[cfg(test)]
    fn route(&mut self, spread: usize, group: &[u8], body: &[u8], now: i64, log: &Logger) {
        self.route_body(spread, group, body, false, now, log);
    }

    /// Route one message body received through Spread block `spread` for `group`. `now` is the
    /// receive time (Unix seconds) for timestamp rewriting. `whole`: the body is one entry
    /// (a numbered or streamed message, CONTRACTS §2), even with a newline inside; otherwise
    /// it has no entry framing, so for vhost splitting each of its lines is an entry.
    pub fn route_body(
        &mut self,
        spread: usize,
        group: &[u8],
        body: &[u8],
        whole: bool,
        now: i64,
        log: &Logger,
    ) {
        let Some(idxs) = self.by_group.get(spread).and_then(|m| m.get(group)) else {
            self.stats.unrouted += 1;
            return;
        };
        for &i in idxs {
            let route = &mut self.logs[i];
            match route.dest {
                Dest::Output(o) => {
                    if let Some(m) = &route.matcher
                        && !m.is_match(body)
                    {
                        self.stats.filtered += 1;
                        continue;
                    }
                    let out = &mut self.outputs[o];
                    match &mut route.rewriter {
                        Some(rw) => {
                            self.scratch.clear();
                            rw.rewrite_into(body, now, &mut self.scratch);
                            out.push(&self.scratch);
                        }
                        None => {
                            out.push(body);
                        }
                    }
                }
                Dest::Vhost(v) => {
                    // A message may hold several entries: each goes to its own host's file, not
                    // all to the first one's.
                    for entry in entries(body, whole) {
                        // Match is applied to the whole line (prefix included), as for File
                        // targets.
                        if let Some(m) = &route.matcher
                            && !m.is_match(entry)
                        {
                            self.stats.filtered += 1;
                            continue;
                        }
                        let (host, rest) = vhost::split_line(entry);
                        let name = vhost::file_name_for(host);
                        let line = if name == vhost::FALLBACK_FILE {
                            // Keep the whole line, host token included, so nothing is hidden.
                            self.stats.bad_hosts += 1;
                            entry
                        } else {
                            rest
                        };
                        let files = &mut self.vhosts[v];
                        let taken = match &mut route.rewriter {
                            Some(rw) => {
                                self.scratch.clear();
                                rw.rewrite_into(line, now, &mut self.scratch);
                                files.push(&name, &self.scratch, log)
                            }
                            None => files.push(&name, line, log),
                        };
                        // A symlink where the host's file should be: the whole line, host token
                        // included, goes to the fallback file, counted like a bad host.
                        if !taken {
                            self.stats.bad_hosts += 1;
                            files.push(vhost::FALLBACK_FILE, entry, log);
                        }
                    }
                }
            }
            self.stats.queued += 1;
        }
    }

    /// Write every pending buffer (one write per target). False when some target could not be
    /// written: its lines stay pending (files and pipes) or were lost (vhost files, counted),
    /// and [`Router::is_stuck`] says so until a flush succeeds.
    pub fn flush(&mut self, log: &Logger) -> bool {
        let mut ok = true;
        for o in &mut self.outputs {
            ok &= o.flush(log, &mut self.touched);
        }
        for v in &mut self.vhosts {
            ok &= v.flush(log, &mut self.touched);
        }
        self.stuck = !ok;
        ok
    }

    /// The last flush failed: new lines that can be sent again later should not be taken.
    pub fn is_stuck(&self) -> bool {
        self.stuck
    }

    /// The files written since the last call, with their sizes after the write.
    pub fn take_touched(&mut self) -> Vec<Touched> {
        std::mem::take(&mut self.touched)
    }

    pub fn has_pending(&self) -> bool {
        self.outputs.iter().any(Output::has_pending)
    }

    /// SIGHUP: write what is pending, then reopen every file and restart piped programs.
    pub fn reopen_all(&mut self, log: &Logger) {
        for o in &mut self.outputs {
            if let Err(e) = o.reopen(log, &mut self.touched) {
                log.error(&format!("cannot reopen {}: {e}", o.describe()));
            }
        }
        for v in &mut self.vhosts {
            v.close_all(log, &mut self.touched);
        }
    }

    /// Take over the counters of `old`, which this router replaces.
    pub fn carry_from(&mut self, old: &Router) {
        self.carried = old.totals();
        self.stats = old.stats;
    }

    /// SIGCHLD: collect dead piped programs.
    pub fn reap(&mut self, log: &Logger) {
        for o in &mut self.outputs {
            o.reap(log);
        }
    }

    pub fn close_all(&mut self, log: &Logger) {
        for o in &mut self.outputs {
            o.close(log, &mut self.touched);
        }
        for v in &mut self.vhosts {
            v.close_all(log, &mut self.touched);
        }
    }

    /// Totals for the counters report: (lines written, lines lost, write errors, pipe restarts).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        let mut t = self.carried;
        for o in &self.outputs {
            t.0 += o.lines_written;
            t.1 += o.lines_lost;
            t.2 += o.write_errors;
            t.3 += o.pipe_restarts;
        }
        for v in &self.vhosts {
            t.0 += v.lines_written;
            t.1 += v.lines_lost;
        }
        t
    }
}

/// The entries of a message body: the whole body when it is one entry (`whole`), else its lines,
/// each with its newline. An empty body is one empty entry, handled like any other and never
/// silently skipped.
fn entries(body: &[u8], whole: bool) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let b = rest?;
        let end = match b.iter().position(|&c| c == b'\n') {
            Some(nl) if !whole => nl + 1,
            _ => b.len(),
        };
        let (entry, tail) = b.split_at(end);
        rest = (!tail.is_empty()).then_some(tail);
        Some(entry)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn fan_out_match_vhost_and_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("vh")).unwrap();
        let text = format!(
            r#"Spread {{
  Log {{ Group = g File = {d}/all.log }}
  Log {{ Group = g File = {d}/post.log Match = "^POST" Match = "DELETE" }}
  Log {{ Group = g File = {d}/all.log }}
  Log {{ Group = v VhostDir = {d}/vh }}
  Log {{ Group = t File = {d}/t.log RewriteTimestamp = "<%Y>" }}
}}"#
        );
        let cfg = crate::config::parse("t.conf", &text, Path::new("/")).unwrap();
        let log = Logger::stderr("test", false);
        let mut r = Router::new(&cfg, true).unwrap();
        assert_eq!(r.outputs.len(), 3, "same path shares one output");
        r.open_all().unwrap();
        r.route(0, b"g", b"GET /a\n", 0, &log);
        r.route(0, b"g", b"POST /b\n", 0, &log);
        r.route(0, b"g", b"x DELETE\n", 0, &log);
        r.route(0, b"v", b"WWW.A.com:80 GET /\n", 0, &log);
        r.route(0, b"v", b"../../etc/passwd GET /\n", 0, &log);
        r.route(0, b"v", b"no-space-line\n", 0, &log);
        // Several lines in one message: each by its own host.
        r.route(
            0,
            b"v",
            b"b.example one\nwww.a.com two\nb.example three",
            0,
            &log,
        );
        // A numbered message is one entry, newline inside or not.
        r.route_body(0, b"v", b"c.example x\ny\n", true, 0, &log);
        r.route(0, b"t", b"a [old] b\n", 1_700_000_000, &log);
        r.route(0, b"nope", b"x\n", 0, &log);
        r.flush(&log);
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(
            read("all.log"),
            "GET /a\nGET /a\nPOST /b\nPOST /b\nx DELETE\nx DELETE\n"
        );
        assert_eq!(read("post.log"), "POST /b\nx DELETE\n");
        assert_eq!(read("vh/www.a.com"), "GET /\ntwo\n");
        // Every line ends with a newline, also one the sender sent without.
        assert_eq!(read("vh/b.example"), "one\nthree\n");
        assert_eq!(
            read("vh/_invalid_host_"),
            "../../etc/passwd GET /\nno-space-line\n"
        );
        assert!(read("t.log").starts_with("a <20") && read("t.log").ends_with("> b\n"));
        assert_eq!(read("vh/c.example"), "x\ny\n");
        assert_eq!(std::fs::read_dir(dir.path().join("vh")).unwrap().count(), 4);
        assert_eq!(r.stats.unrouted, 1);
        assert_eq!(r.stats.filtered, 1);
        assert_eq!(r.stats.bad_hosts, 2);
        // A vhost file replaced by a symlink: the line goes to the fallback file, whole, counted.
        let outside = dir.path().join("outside");
        std::fs::remove_file(dir.path().join("vh/www.a.com")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("vh/www.a.com")).unwrap();
        r.reopen_all(&log);
        r.route(0, b"v", b"www.a.com GET /again\n", 0, &log);
        r.flush(&log);
        assert!(!outside.exists(), "the symlink was not followed");
        assert!(
            read("vh/_invalid_host_").ends_with("www.a.com GET /again\n"),
            "{}",
            read("vh/_invalid_host_")
        );
        assert_eq!(r.stats.bad_hosts, 3);
    }
}
