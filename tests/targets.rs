//! `$#hostname`, `$#vhost`, failover lists, truncation and error-log shipping, against a real
//! spread-daemon, with hostile Host headers.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::time::Duration;

use mod_log_spread::host;

const VHOSTS: &str = "\
<VirtualHost 127.0.0.1:*>\n  ServerName default.example\n</VirtualHost>\n\
<VirtualHost 127.0.0.1:*>\n  ServerName www.example.com\n  ServerAlias alias.example.net *.example.org\n</VirtualHost>\n";

struct Setup {
    _dir: TempDir,
    _daemon: SpreadDaemon,
    apache: Apache,
    receiver: Receiver,
}

fn setup(tag: &str, directives: &str, groups: &[&str]) -> Setup {
    let dir = TempDir::new(tag);
    let daemon = SpreadDaemon::start(dir.path(), free_port());
    let receiver = Receiver::join(&daemon.socket, "tester", groups);
    let body = format!(
        "LogFormat \"%v %>s %U\" small\nSpreadDaemon {sock}\nSpreadSpool {d}/spool/lines\n{directives}\n{VHOSTS}",
        sock = daemon.socket.display(),
        d = dir.path().display()
    );
    let apache = Apache::with_body(&dir, Mpm::Event, &body);
    Setup {
        _dir: dir,
        _daemon: daemon,
        apache,
        receiver,
    }
}

fn by_group(msgs: &[(String, String, i16, Vec<u8>)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, g, _, body) in msgs {
        out.entry(g.clone())
            .or_default()
            .push(String::from_utf8_lossy(body).into_owned());
    }
    out
}

fn hostile_hosts() -> Vec<Vec<u8>> {
    vec![
        b"www.example.com".to_vec(),
        b"WWW.Example.COM:8080".to_vec(),
        b"x.example.org".to_vec(),
        b"alias.example.net".to_vec(),
        b"unknown.test".to_vec(),
        b"../../etc/passwd".to_vec(),
        b"..".to_vec(),
        vec![b'a'; 5000],
        b"evil\x01host".to_vec(),
        "caf\u{e9}.example.com".as_bytes().to_vec(),
        b"[::1]:80".to_vec(),
        b"a_b.example.com".to_vec(),
    ]
}

/// Every group a `$#hostname` line of the hostile hosts may go to.
const HOST_GROUPS: [&str; 6] = [
    "www.example.com",
    "x.example.org",
    "alias.example.net",
    "default.example",
    "localhost",
    "unknown.test",
];

/// A `$#hostname` setup (after `directives`) receiving every host group, and the hostile hosts
/// to send.
fn send_hostile_hosts(tag: &str, directives: &str) -> (Setup, Vec<Vec<u8>>) {
    let log = "CustomLog $#hostname small \"expr=%{REQUEST_URI} !~ m#^/spread-status#\"";
    (
        setup(tag, &format!("{directives}{log}"), &HOST_GROUPS),
        hostile_hosts(),
    )
}

#[test]
fn hostname_groups_are_validated_against_the_vhost() {
    let (s, hosts) = send_hostile_hosts("hostname", "");
    for h in &hosts {
        let r = http_get_raw(s.apache.port, "/index.html", h);
        assert!(
            r.elapsed < Duration::from_secs(5),
            "request with Host {:?} took {:?}",
            String::from_utf8_lossy(h),
            r.elapsed
        );
    }
    let got = s.receiver.collect(hosts.len(), Duration::from_secs(10));
    let sent = s.apache.counter("sent");
    assert_eq!(sent, hosts.len() as u64, "every request is logged once");
    assert_eq!(
        got.len(),
        hosts.len(),
        "every line reached a joined group: {:?}",
        by_group(&got)
    );
    let g = by_group(&got);
    assert_eq!(g["www.example.com"].len(), 2, "{g:?}");
    assert_eq!(g["x.example.org"].len(), 1, "wildcard alias: {g:?}");
    assert_eq!(g["alias.example.net"].len(), 1, "{g:?}");
    assert!(
        !g.contains_key("unknown.test"),
        "an unknown host must not make its own group: {g:?}"
    );
    // Everything else went to the ServerName of the vhost Apache chose.
    let fallback: usize =
        g.get("default.example").map_or(0, Vec::len) + g.get("localhost").map_or(0, Vec::len);
    assert_eq!(fallback, hosts.len() - 4, "{g:?}");
}

#[test]
fn trusted_host_header_makes_its_own_group_but_still_refuses_garbage() {
    let (s, hosts) = send_hostile_hosts("trust", "SpreadTrustHostHeader On\n");
    for h in &hosts {
        http_get_raw(s.apache.port, "/index.html", h);
    }
    let got = s.receiver.collect(hosts.len(), Duration::from_secs(10));
    assert_eq!(got.len(), hosts.len(), "{:?}", by_group(&got));
    let g = by_group(&got);
    assert_eq!(g["unknown.test"].len(), 1, "{g:?}");
    assert!(g.keys().all(|k| HOST_GROUPS.contains(&k.as_str())));
}

#[test]
fn vhost_buckets_use_the_documented_hash_and_host_prefix() {
    let size = 8u32;
    let bucket = |h: &str| format!("apache-{}", host::fnv1a32(h.as_bytes()) % size);
    let all: Vec<String> = (0..size).map(|b| format!("apache-{b}")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let s = setup(
        "vhost",
        &format!(
            "VhostLogHashSize {size}\nVhostLogGroupPrefix apache-\nCustomLog $#vhost small \"expr=%{{REQUEST_URI}} !~ m#^/spread-status#\""
        ),
        &refs,
    );
    let hosts = hostile_hosts();
    for h in &hosts {
        http_get_raw(s.apache.port, "/index.html", h);
    }
    let got = s.receiver.collect(hosts.len(), Duration::from_secs(10));
    assert_eq!(got.len(), hosts.len());
    for (_, group, _, body) in &got {
        let line = String::from_utf8_lossy(body);
        let (h, rest) = line.split_once(' ').expect("host prefix");
        assert_eq!(*group, bucket(h), "line {line:?}");
        assert!(
            host::clean(h.as_bytes()).is_some_and(|c| c == h),
            "prefix {h:?} is a clean host"
        );
        assert!(rest.ends_with("/index.html\n"), "{line:?}");
    }
    let lines: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.3).into_owned())
        .collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("www.example.com "))
            .count(),
        2
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("x.example.org "))
            .count(),
        1
    );
}

#[test]
fn failover_list_uses_the_next_daemon_when_the_first_is_down() {
    let s = setup(
        "failover",
        "SpreadDaemon /nonexistent/dir/4803 1\nCustomLog $first#1,$second \"%U\" \"expr=%{REQUEST_URI} !~ m#^/spread-status#\"",
        &["first", "second"],
    );
    for i in 0..10 {
        s.apache.get(&format!("/index.html?{i}"));
    }
    let got = s.receiver.collect(10, Duration::from_secs(10));
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|m| m.1 == "second"));
    assert_eq!(s.apache.counter("failed_over"), 10);
    assert_eq!(s.apache.counter("spooled"), 0);
}

#[test]
fn over_long_lines_are_truncated_with_a_marker_and_counted() {
    let s = setup(
        "trunc",
        "LimitRequestFieldSize 200000\nLogFormat \"%{X-Big}i\" big\nCustomLog $big big \"expr=%{REQUEST_URI} !~ m#^/spread-status#\"",
        &["big"],
    );
    let big = "b".repeat(150_000);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.apache.port)).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /index.html HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
    let got = s.receiver.collect(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    let body = &got[0].3;
    assert_eq!(body.len(), mod_log_spread::line::MAX_BODY);
    assert!(body.ends_with(mod_log_spread::line::TRUNCATION_MARKER));
    assert_eq!(s.apache.counter("truncated"), 1);
}

#[test]
fn error_log_lines_are_shipped_with_a_readable_prefix() {
    let s = setup("errlog", "SpreadErrorLog $errors info", &["errors"]);
    let r = s.apache.get("/no-such-file");
    assert_eq!(r.status, 404);
    let got = s.receiver.collect(1, Duration::from_secs(10));
    let lines: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.3).into_owned())
        .collect();
    let hit = lines
        .iter()
        .find(|l| l.contains("AH00128"))
        .unwrap_or_else(|| panic!("no AH00128 line in {lines:?}"));
    assert!(hit.starts_with('['), "{hit}");
    assert!(
        hit.contains("] [info] [default.example] [client 127.0.0.1] "),
        "{hit}"
    );
    assert!(hit.ends_with('\n'));
    assert!(s.apache.counter("error_lines") >= 1);
}

#[test]
fn error_log_level_filter_applies() {
    let s = setup("errlevel", "SpreadErrorLog $errors warn", &["errors"]);
    s.apache.get("/no-such-file");
    let got = s.receiver.collect(1, Duration::from_millis(1500));
    assert!(
        got.iter()
            .all(|m| !String::from_utf8_lossy(&m.3).contains("AH00128")),
        "info line shipped despite `warn`"
    );
}

#[test]
fn error_log_lines_of_a_vhost_go_to_its_own_group() {
    let dir = TempDir::new("errvhost");
    let daemon = SpreadDaemon::start(dir.path(), free_port());
    let receiver = Receiver::join(
        &daemon.socket,
        "tester",
        &["www.example.com", "main-errors"],
    );
    let body = format!(
        "SpreadDaemon {sock}\nSpreadSpool {d}/spool/lines\nSpreadErrorLog $main-errors info\n\
         <VirtualHost 127.0.0.1:*>\n  ServerName default.example\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:*>\n  ServerName www.example.com\n  SpreadErrorLog $#hostname info\n</VirtualHost>\n",
        sock = daemon.socket.display(),
        d = dir.path().display()
    );
    let apache = Apache::with_body(&dir, Mpm::Event, &body);
    assert_eq!(
        http_get(apache.port, "/missing-in-www", "www.example.com").status,
        404
    );
    assert_eq!(
        http_get(apache.port, "/missing-in-default", "default.example").status,
        404
    );
    let got = receiver.collect(2, Duration::from_secs(10));
    let www: Vec<String> = got
        .iter()
        .filter(|m| m.1 == "www.example.com")
        .map(|m| String::from_utf8_lossy(&m.3).into_owned())
        .collect();
    let main: Vec<String> = got
        .iter()
        .filter(|m| m.1 == "main-errors")
        .map(|m| String::from_utf8_lossy(&m.3).into_owned())
        .collect();
    assert!(
        www.iter()
            .any(|l| l.contains("[www.example.com]") && l.contains("missing-in-www")),
        "{www:?}"
    );
    assert!(
        www.iter().all(|l| !l.contains("missing-in-default")),
        "{www:?}"
    );
    assert!(
        main.iter().any(|l| l.contains("missing-in-default")),
        "a vhost without its own uses the main server's: {main:?}"
    );
    apache.stop();
}
