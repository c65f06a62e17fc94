//! Every directive accepted by `apache2 -t`, and every bad configuration refused with a clear
//! message naming the problem.

mod common;
use common::*;

fn check(body: &str) -> (bool, String) {
    let dir = TempDir::new("cfg");
    let conf = write_config(&dir, &config(dir.path(), free_port(), Mpm::Event, body));
    configtest(&conf)
}

#[test]
fn every_directive_and_target_form_is_accepted() {
    let (ok, text) = check(
        "SpreadDaemon 4803\n\
         SpreadDaemon 4804@127.0.0.1 1\n\
         SpreadDaemon /run/spread/4803 2\n\
         SpreadConnectTimeout 150\n\
         SpreadSendTimeout 80\n\
         SpreadRetryInterval 500\n\
         SpreadServiceType SAFE\n\
         VhostLogHashSize 64\n\
         VhostLogGroupPrefix apache-\n\
         SpreadTrustHostHeader On\n\
         SpreadSpool spool/lines\n\
         SpreadSpoolSize 16M\n\
         SpreadStatsInterval 60\n\
         SpreadFlushInterval 20\n\
         SpreadBatchSize 64K\n\
         SpreadBatchMessages On\n\
         SpreadErrorLog $errors warn\n\
         LogFormat \"%h %t \\\"%r\\\" %>s\" small\n\
         CustomLog $www small\n\
         CustomLog $www#1 small\n\
         CustomLog $a,$b#1,$c#2 small env=!nolog\n\
         CustomLog $#hostname small \"expr=%{REQUEST_STATUS} != 404\"\n\
         CustomLog $#vhost#2 small\n\
         TransferLog $transfer\n\
         GlobalLog $global small\n\
         CustomLog logs-access.log small\n\
         <VirtualHost 127.0.0.1:*>\n  ServerName v1.example\n  SpreadErrorLog $#vhost\n  CustomLog $v1 small\n</VirtualHost>\n",
    );
    assert!(ok, "{text}");
    assert!(text.contains("Syntax OK"), "{text}");
}

#[test]
fn bad_configs_fail_configtest_with_clear_messages() {
    let cases: &[(&str, &str)] = &[
        (
            "SpreadDaemon 4803 x",
            "id \"x\" is not a non-negative integer",
        ),
        (
            "SpreadDaemon 4803 1\nSpreadDaemon 4804 1",
            "id 1 is used twice",
        ),
        ("SpreadDaemon nonsense@@", "SpreadDaemon"),
        ("SpreadDaemon 4803@no-such-host.invalid", "cannot resolve"),
        (
            "SpreadConnectTimeout 0",
            "SpreadConnectTimeout: \"0\" is not a number of milliseconds",
        ),
        ("SpreadSendTimeout fast", "SpreadSendTimeout: \"fast\""),
        ("SpreadRetryInterval 999999", "SpreadRetryInterval"),
        ("SpreadServiceType TOTAL", "SpreadServiceType: \"TOTAL\""),
        ("VhostLogHashSize 0", "VhostLogHashSize"),
        ("VhostLogGroupPrefix a,b", "VhostLogGroupPrefix"),
        (
            "VhostLogGroupPrefix ppppppppppppppppppppppppppppp\nVhostLogHashSize 1000",
            "would exceed 31 bytes",
        ),
        ("SpreadSpoolSize 12Q", "SpreadSpoolSize"),
        ("SpreadTrustHostHeader maybe", "SpreadTrustHostHeader"),
        ("SpreadErrorLog errors", "must start with '$'"),
        ("SpreadErrorLog $e loud", "level \"loud\""),
        ("SpreadErrorLog $e#4", "daemon id 4"),
        ("CustomLog $www#7 common", "CustomLog on line"),
        ("CustomLog $www#7 common", "daemon id 7"),
        ("CustomLog $#bogus common", "magic group \"#bogus\""),
        ("CustomLog $,$b common", "empty group name"),
        (
            "CustomLog $abcdefghijklmnopqrstuvwxyz0123456789 common",
            "longer than 31 bytes",
        ),
        ("CustomLog $a,b common", "must start with '$'"),
        ("CustomLog $x#y common", "daemon id \"y\""),
        ("SpreadFlushInterval 5000", "SpreadFlushInterval: \"5000\""),
        ("SpreadBatchSize 2M", "SpreadBatchSize: \"2M\""),
        (
            "SpreadFlushInterval 0\nSpreadBatchMessages On",
            "SpreadBatchMessages On puts the lines of one batch into one message",
        ),
        (
            "<VirtualHost 127.0.0.1:*>\nSpreadDaemon 4803\n</VirtualHost>",
            "cannot occur within <VirtualHost>",
        ),
    ];
    let mut failures = Vec::new();
    for (body, expected) in cases {
        let (ok, text) = check(&format!("LogFormat \"%h\" common\n{body}"));
        if ok || !text.contains(expected) {
            failures.push(format!("--- config:\n{body}\n--- expected failure containing {expected:?}, got ok={ok}:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
