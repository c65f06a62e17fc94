//! spreadlogd end to end: a real spread-daemon, spreadlogd as a child process, real files.

mod common;

use std::process::Command;

use common::*;
use spread_sys::seq::mess_type_for;

fn whoami() -> (String, String) {
    let out = |args: &[&str]| {
        let o = Command::new("id").args(args).output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    (out(&["-un"]), out(&["-gn"]))
}

#[test]
fn sample_config_with_every_keyword() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let tcp = daemon.tcp_addr().unwrap();
    std::fs::create_dir(d.join("vhosts")).unwrap();
    let (user, group) = whoami();
    let text = format!(
        r#"# every keyword this spreadlogd knows
BufferSize = 65536
User = {user}
Group = {group}
StateFile = {d}/state/gaps
ErrorLog = {d}/own.log
VhostOpenFiles = 2
Spread {{
    Port = {unix}                 # unix socket by path
    Log {{
        Group = www
        File = {d}/www.log
    }}
    Log {{                        # a second Log block for the same group: fan-out
        Group = www
        File = "{d}/posts.log"
        Match = "^POST "
        Match = 'PUT /upload'
    }}
    Log {{
        Group=vh
        VhostDir={d}/vhosts
        RewriteTimestamp = CommonLogFormat
    }}
}}
Spread {{
    Port = {port}
    Host = 127.0.0.1
    Log {{ Group = tcp File = "|cat >> {d}/piped.log" RewriteTimestamp = "[%Y]" }}
}}
"#,
        d = d.display(),
        unix = daemon.spread_name(),
        port = tcp.port()
    );
    let conf = conf(d, &text);
    let check = Command::new(bin("spreadlogd"))
        .args(["-t", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("Syntax OK"));

    let logd = Logd::start(d, &conf, &[]);
    wait_for("two connections in ErrorLog", || {
        (read(&d.join("own.log"))
            .matches("connected to spread daemon")
            .count()
            >= 2)
            .then_some(())
    });
    let mut s = sender(&daemon.spread_name(), "t1");
    send(&mut s, "www", 0, b"GET / HTTP/1.1\n");
    send(&mut s, "www", 0, b"POST /form HTTP/1.1\n");
    send(&mut s, "www", 0, b"PUT /upload/x HTTP/1.1\n");
    send(
        &mut s,
        "vh",
        0,
        b"WWW.Example.com:443 1.2.3.4 - - [01/Jan/2000:00:00:00 +0000] \"GET /\"\n",
    );
    send(&mut s, "vh", 0, b"b.example 1\n");
    send(&mut s, "vh", 0, b"c.example 1\n");
    send(&mut s, "vh", 0, b"www.example.com 2\n");
    let mut t = sender(&format!("{}@127.0.0.1", tcp.port()), "t2");
    send(&mut t, "tcp", mess_type_for(0), b"over tcp [old time]\n");

    wait_for("www.log", || {
        (read(&d.join("www.log")).lines().count() == 3).then_some(())
    });
    wait_for("posts.log", || {
        (read(&d.join("posts.log")).lines().count() == 2).then_some(())
    });
    assert_eq!(
        read(&d.join("www.log")),
        "GET / HTTP/1.1\nPOST /form HTTP/1.1\nPUT /upload/x HTTP/1.1\n"
    );
    assert_eq!(
        read(&d.join("posts.log")),
        "POST /form HTTP/1.1\nPUT /upload/x HTTP/1.1\n"
    );
    let year = String::from_utf8(Command::new("date").arg("+%Y").output().unwrap().stdout).unwrap();
    wait_for("piped.log", || {
        (!read(&d.join("piped.log")).is_empty()).then_some(())
    });
    assert_eq!(
        read(&d.join("piped.log")),
        format!("over tcp [{}]\n", year.trim())
    );
    wait_for("vhost files", || {
        (read(&d.join("vhosts/www.example.com")).lines().count() == 2).then_some(())
    });
    let www = read(&d.join("vhosts/www.example.com"));
    assert!(
        www.starts_with("1.2.3.4 - - [") && !www.contains("01/Jan/2000"),
        "{www}"
    );
    assert!(www.ends_with("2\n"));
    assert_eq!(read(&d.join("vhosts/b.example")), "1\n");
    assert_eq!(read(&d.join("vhosts/c.example")), "1\n");
    assert_eq!(logd.term(), 0);
    assert!(d.join("state/gaps").exists(), "gap table saved at exit");
    let own = read(&d.join("own.log"));
    assert!(own.contains("counters:"), "{own}");
}

/// A joined spreadlogd writing group `vh` into VhostDir `vh` (created).
fn vhost_collector(d: &std::path::Path, spread: &str, vh: &std::path::Path) -> Logd {
    std::fs::create_dir_all(vh).unwrap();
    let conf = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {spread} Log {{ Group = vh VhostDir = {} }} }}",
            vh.display(),
            d = d.display()
        ),
    );
    Logd::joined(d, &conf)
}

#[test]
fn hostile_vhost_names_stay_inside_vhostdir() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let vh = d.join("inner/vhosts");
    let logd = vhost_collector(d, &daemon.spread_name(), &vh);
    let mut s = sender(&daemon.spread_name(), "evil");
    let long = format!("{} x\n", "a".repeat(5000));
    let hostile: Vec<Vec<u8>> = vec![
        b"../escape.com GET\n".to_vec(),
        b"../../inner GET\n".to_vec(),
        b".. GET\n".to_vec(),
        b". GET\n".to_vec(),
        b"/etc/passwd GET\n".to_vec(),
        b"a\x1b[31mred GET\n".to_vec(),
        b"tab\thost GET\n".to_vec(),
        "h\u{e9}llo.example GET\n".as_bytes().to_vec(),
        b"\xff\xfe GET\n".to_vec(),
        long.into_bytes(),
        b"nospace\n".to_vec(),
        b" leading-space\n".to_vec(),
        b"Good.Example:8080 GET ok\n".to_vec(),
    ];
    for h in &hostile {
        send(&mut s, "vh", 0, h);
    }
    let fallback = vh.join("_invalid_host_");
    let want = hostile.len() - 1;
    let deadline = std::time::Instant::now() + WAIT;
    while std::fs::read(&fallback)
        .unwrap_or_default()
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        < want
    {
        assert!(
            std::time::Instant::now() < deadline,
            "fallback file has {:?}; log: {}",
            String::from_utf8_lossy(&std::fs::read(&fallback).unwrap_or_default()),
            logd.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(read(&vh.join("good.example")), "GET ok\n");
    let names: Vec<String> = std::fs::read_dir(&vh)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        vec!["_invalid_host_".to_string(), "good.example".to_string()]
    );
    let inner: Vec<_> = std::fs::read_dir(d.join("inner")).unwrap().collect();
    assert_eq!(inner.len(), 1, "nothing written next to VhostDir");
    assert!(!d.join("escape.com").exists());
    // Every hostile line is kept whole in the fallback file.
    let fb = std::fs::read(vh.join("_invalid_host_")).unwrap();
    for h in &hostile[..hostile.len() - 1] {
        assert!(
            fb.windows(h.len()).any(|w| w == &h[..]),
            "missing {:?}",
            String::from_utf8_lossy(h)
        );
    }
    assert_eq!(logd.term(), 0);
}

#[test]
fn a_message_of_several_entries_to_a_vhost_group_splits_by_each_entrys_host() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let vh = d.join("vh");
    let logd = vhost_collector(d, &daemon.spread_name(), &vh);
    let mut s = sender(&daemon.spread_name(), "multi");
    send(
        &mut s,
        "vh",
        0,
        b"a.example GET /1\nb.example GET /2\n../bad GET /3\na.example GET /4\n",
    );
    wait_for("a.example", || {
        (read(&vh.join("a.example")) == "GET /1\nGET /4\n").then_some(())
    });
    assert_eq!(read(&vh.join("b.example")), "GET /2\n");
    assert_eq!(read(&vh.join("_invalid_host_")), "../bad GET /3\n");
    // A numbered message (our senders) is one entry by contract: a newline inside it (a LogFormat
    // with a literal newline) keeps the entry whole, in its host's file.
    let numbered = spread_sys::seq::mess_type_for(0);
    send(
        &mut s,
        "vh",
        numbered,
        b"c.example first half\nsecond half\n",
    );
    wait_for("c.example", || {
        (read(&vh.join("c.example")) == "first half\nsecond half\n").then_some(())
    });
    assert_eq!(read(&vh.join("_invalid_host_")), "../bad GET /3\n");
    assert_eq!(logd.term(), 0);
}

#[test]
fn timestamps_use_the_real_zone_offset() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let conf = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {} Log {{ Group = g File = {d}/a.log RewriteTimestamp = CommonLogFormat }} }}",
            daemon.spread_name(),
            d = d.display()
        ),
    );
    // Etc/GMT-5 is UTC+5 (POSIX sign convention); the original printed +0000 here.
    let logd = Logd::start_env(d, &conf, &[], &[("TZ", "Etc/GMT-5")]);
    logd.wait_joined(1);
    let mut s = sender(&daemon.spread_name(), "ts");
    send(
        &mut s,
        "g",
        0,
        b"h - - [10/Oct/2000:13:55:36 -0700] \"GET /\" 200\n",
    );
    wait_for("line", || {
        (!read(&d.join("a.log")).is_empty()).then_some(())
    });
    let line = read(&d.join("a.log"));
    assert!(
        line.starts_with("h - - [") && line.contains(" +0500] \"GET /\" 200\n"),
        "{line}"
    );
    assert!(!line.contains("10/Oct/2000"));
    assert_eq!(logd.term(), 0);
}

#[test]
fn oversized_lines_are_written_and_counted() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let conf = conf(
        d,
        &format!(
            "BufferSize = 100\nStateFile = {d}/gaps\nSpread {{ Port = {} Log {{ Group = g File = {d}/a.log }} }}",
            daemon.spread_name(),
            d = d.display()
        ),
    );
    let logd = Logd::start(d, &conf, &["-b", "200"]);
    logd.wait_joined(1);
    let mut s = sender(&daemon.spread_name(), "big");
    let big = format!("{}\n", "x".repeat(100_000));
    send(&mut s, "g", 0, b"small\n");
    send(&mut s, "g", 0, big.as_bytes());
    wait_for("both lines", || {
        (read(&d.join("a.log")).len() == 6 + big.len()).then_some(())
    });
    logd.signal(libc::SIGUSR1);
    logd.wait_log("oversized=1", 1);
    assert!(
        logd.log().contains("longer than BufferSize (200 bytes)"),
        "-b overrides BufferSize"
    );
    assert_eq!(logd.term(), 0);
}

#[test]
fn bad_configs_fail_with_file_line_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            "Spread {\n Log {\n Group = g\n File = f\n PerlLog main::x\n }\n}\n",
            ":5:",
            "PerlLog",
        ),
        (
            "LoadModule online\nSpread { Log { Group = g File = f } }\n",
            ":1:",
            "LoadModule",
        ),
        (
            "Spread {\n Log { Group = g File = f Match = \"(\" }\n}\n",
            ":2:",
            "regex does not compile",
        ),
        (
            "Spread {\n Log { Group = g File = f }\n Bogus = 1\n}\n",
            ":3:",
            "'Bogus'",
        ),
        (
            "Spread { Port = 4803@ Log { Group = g File = f } }\n",
            ":1:",
            "4803@",
        ),
    ];
    for (text, line, token) in cases {
        let c = conf(d, text);
        for args in [&["-t"][..], &["-D"][..]] {
            let out = Command::new(bin("spreadlogd"))
                .args(args)
                .arg("-c")
                .arg(&c)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{text}: {err}");
            assert!(
                err.contains(&format!("spreadlogd.conf{line}")) && err.contains(token),
                "{text}: {err}"
            );
        }
    }
    let out = Command::new(bin("spreadlogd"))
        .args(["-c", "/nonexistent/x.conf", "-D"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.conf"));
    let out = Command::new(bin("spreadlogd")).arg("-V").output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("spreadlogd ")
    );
}

#[test]
fn unwritable_file_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = conf(
        d,
        &format!(
            "Spread {{ Port = {d}/4803 Log {{ Group = g File = {d}/no/such/dir/a.log }} }}",
            d = d.display()
        ),
    );
    let out = Command::new(bin("spreadlogd"))
        .arg("-D")
        .arg("-c")
        .arg(&c)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/dir/a.log"));
}

#[test]
fn second_instance_on_the_same_files_is_refused() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {} Log {{ Group = g File = {d}/a.log }} }}",
            daemon.spread_name(),
            d = d.display()
        ),
    );
    let logd = Logd::joined(d, &c);
    let out = Command::new(bin("spreadlogd"))
        .arg("-D")
        .arg("-c")
        .arg(&c)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another spreadlogd"));
    assert_eq!(logd.term(), 0);
}

#[test]
fn check_mode_finds_what_a_start_would_and_warns_about_ignored_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let check = |text: &str| {
        let out = Command::new(bin("spreadlogd"))
            .args(["-t", "-c"])
            .arg(conf(d, text))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check(&format!(
        "User = no-such-user-here\nSpread {{ Port = 4803\n Log {{ Group = a File = {d}/missing/a.log }}\n \
         Log {{ Group = b VhostDir = {d}/no-vhosts }} }}",
        d = d.display()
    ));
    assert_eq!(code, Some(1), "{err}");
    for needle in [
        "unknown user \"no-such-user-here\"",
        ":3: File's directory",
        "/missing does not exist",
        ":4: VhostDir",
        "/no-vhosts does not exist",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    // The original's dummy File beside VhostDir: accepted, said to be ignored.
    std::fs::create_dir(d.join("vhosts")).unwrap();
    let (code, err) = check(&format!(
        "Spread {{ Log {{ Group = v File = /dev/null VhostDir = {}/vhosts }} }}",
        d.display()
    ));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning") && err.contains("is ignored"),
        "{err}"
    );
    // A timestamp format without any conversion is refused, start and -t alike.
    let (code, err) = check(&format!(
        "Spread {{ Log {{ Group = t File = {}/t.log RewriteTimestamp = Common }} }}",
        d.display()
    ));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no %-conversion"), "{err}");
}

#[test]
fn shipped_sample_config_is_valid_and_uses_every_keyword() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/spreadlogd.conf");
    // Valid as written; on this machine `-t` finds only what a log host would have: its user and
    // its directories.
    let cfg = spreadlogd::config::Config::load(&sample).unwrap();
    for p in cfg.preflight() {
        assert!(
            p.contains("unknown user") || p.contains("does not exist"),
            "{p}"
        );
    }
    let text = std::fs::read_to_string(&sample).unwrap();
    use spreadlogd::config::{GLOBAL_KEYS, LOG_KEYS, SPREAD_KEYS};
    let blocks = ["Spread", "Log"];
    for kw in GLOBAL_KEYS
        .iter()
        .chain(SPREAD_KEYS)
        .chain(LOG_KEYS)
        .chain(&blocks)
    {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(kw)),
            "sample lacks {kw}"
        );
    }
}

#[test]
fn a_message_to_several_groups_reaches_every_log_of_each() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {} Log {{ Group = a File = {d}/a.log }} Log {{ Group = b File = {d}/b.log }} }}",
            daemon.spread_name(),
            d = d.display()
        ),
    );
    let logd = Logd::joined(d, &c);
    let mut s = sender(&daemon.spread_name(), "multi");
    s.multicast(
        spread_sys::service::AGREED_MESS,
        &["a", "b", "unlogged"],
        mess_type_for(0),
        b"both\n",
    )
    .unwrap();
    s.multicast(
        spread_sys::service::AGREED_MESS,
        &["b"],
        mess_type_for(1),
        b"only b\n",
    )
    .unwrap();
    wait_for("b.log", || {
        (read(&d.join("b.log")) == "both\nonly b\n").then_some(())
    });
    assert_eq!(read(&d.join("a.log")), "both\n");
    logd.signal(libc::SIGUSR1);
    logd.wait_log("counters:", 1);
    assert!(
        logd.log().contains("sequence_gaps=0 "),
        "per-group sequences: {}",
        logd.log()
    );
    assert_eq!(logd.term(), 0);
}

#[test]
fn sequence_handover_on_the_control_channel_counts_the_old_names_lost_tail() {
    use spread_sys::control::{CONTROL_GROUP, CONTROL_MESS_TYPE};
    sequence_handover_counts_the_old_names_lost_tail(|old| {
        (
            CONTROL_GROUP,
            CONTROL_MESS_TYPE,
            format!("mls1 handover {old} g 15\n"),
        )
    });
}

#[test]
fn previous_releases_handover_counts_the_old_names_lost_tail_and_is_never_written() {
    use spread_sys::seq::HANDOVER_MESS_TYPE;
    sequence_handover_counts_the_old_names_lost_tail(|old| {
        (
            "g",
            HANDOVER_MESS_TYPE,
            format!("mls-seq-handover {old} 15\n"),
        )
    });
}

/// A sender (`old`) numbers 10 lines, 5 more are lost, and another name hands its sequence over
/// with the message `handover(old name)` gives: (group, mess_type, body).
fn sequence_handover_counts_the_old_names_lost_tail(
    handover: impl Fn(&str) -> (&'static str, i16, String),
) {
    use spread_sys::seq::HANDOVER_MESS_TYPE;
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let log = d.join("a.log");
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {} Log {{ Group = g File = {} }} }}",
            daemon.spread_name(),
            log.display(),
            d = d.display()
        ),
    );
    let logd = Logd::joined(d, &c);
    let mut old = sender(&daemon.spread_name(), "hold");
    for s in 0..10 {
        send(
            &mut old,
            "g",
            mess_type_for(s),
            format!("old {s}\n").as_bytes(),
        );
    }
    let old_name = old.private_group().to_owned();
    // The old name handed over 10..15 too, but they never arrived: its sequence is at 15.
    let mut new = sender(&daemon.spread_name(), "hnew");
    let (group, mess_type, body) = handover(&old_name);
    send(&mut new, group, mess_type, body.as_bytes());
    // Not exactly the format: an ordinary unnumbered line.
    send(
        &mut new,
        "g",
        HANDOVER_MESS_TYPE,
        b"mls-seq-handover oops\n",
    );
    for s in 0..3 {
        send(
            &mut new,
            "g",
            mess_type_for(s),
            format!("new {s}\n").as_bytes(),
        );
    }
    wait_for("all lines", || {
        (read(&log).lines().count() == 14).then_some(())
    });
    let text = read(&log);
    assert!(
        !text.contains(&old_name),
        "the hand-over was written: {text}"
    );
    assert!(text.contains("mls-seq-handover oops\n"), "{text}");
    logd.signal(libc::SIGUSR1);
    logd.wait_log("counters:", 1);
    let l = logd.log();
    assert!(
        l.contains("sequence_gaps=1 ")
            && l.contains("lines_lost_in_gaps=5 ")
            && l.contains("unknown_gaps=0 "),
        "the old name's lost tail is one gap of 5 lines: {l}"
    );
    assert!(
        l.contains(&format!("5 line(s) from {old_name} to group g lost")),
        "{l}"
    );
    assert_eq!(logd.term(), 0);
    // The old name's entry is forgotten: the saved table only has the new one.
    let saved = std::fs::read_to_string(d.join("gaps")).unwrap();
    assert!(!saved.contains(&old_name), "{saved}");
    assert!(saved.contains(new.private_group()), "{saved}");
}

#[test]
fn a_join_the_daemon_rejects_is_said_not_silent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut cfg = spread_daemon::Config::for_test(d);
    cfg.max_groups_per_session = 2;
    let daemon = spread_daemon::Daemon::start(cfg).unwrap();
    // Two log groups and the control channel: the third join is one too many.
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {} Log {{ Group = a File = {d}/a.log }} \
             Log {{ Group = b File = {d}/b.log }} }}",
            daemon.spread_name(),
            d = d.display()
        ),
    );
    let logd = Logd::joined(d, &c);
    logd.wait_log("rejected our join of group", 1);
    logd.signal(libc::SIGUSR1);
    logd.wait_log("rejected_joins=1 ", 1);
    // The groups it did join still work.
    send(
        &mut sender(&daemon.spread_name(), "rj"),
        "a",
        0,
        b"still here\n",
    );
    wait_for("the line", || {
        (read(&d.join("a.log")) == "still here\n").then_some(())
    });
    assert_eq!(logd.term(), 0);
}

#[test]
fn readiness_is_notified_to_systemd_once_files_are_open() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let notify = std::os::unix::net::UnixDatagram::bind(d.join("notify")).unwrap();
    notify
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {} Log {{ Group = g File = {d}/a.log }} }}",
            daemon.spread_name(),
            d = d.display()
        ),
    );
    let socket = d.join("notify").display().to_string();
    let logd = Logd::start_env(d, &c, &[], &[("NOTIFY_SOCKET", &socket)]);
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("a notification");
    assert_eq!(&buf[..n], b"READY=1\n");
    assert!(d.join("a.log").exists(), "files are open before READY");
    assert_eq!(logd.term(), 0);
}
