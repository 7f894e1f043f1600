//! Level detection against loghub's labelled samples (real logs of nine systems, labelled by
//! others), with and without Docker's timestamp prefix, and the JSON logs of common loggers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::path::Path;

use opsdeck::logs::Level;
use opsdeck::logs::multiline::{Choice, Parser};

const SYSTEMS: &[&str] = &[
    "Android",
    "Apache",
    "BGL",
    "HDFS",
    "Hadoop",
    "OpenStack",
    "Spark",
    "Windows",
    "Zookeeper",
];

fn label(l: &str) -> Level {
    match l {
        "V" => Level::Trace,
        "D" => Level::Debug,
        "I" | "INFO" | "Info" => Level::Info,
        "notice" => Level::Notice,
        "W" | "WARN" | "WARNING" => Level::Warn,
        "E" | "error" | "ERROR" | "SEVERE" => Level::Error,
        "FATAL" => Level::Fatal,
        other => panic!("unknown label {other}"),
    }
}

fn fixture(system: &str) -> (Vec<String>, Vec<Level>) {
    // OPSDECK_LOGHUB_DIR: the same layout with loghub's whole 2k samples, for measuring.
    let dir = std::env::var_os("OPSDECK_LOGHUB_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs/loghub"),
        Into::into,
    );
    let read = |ext: &str| {
        std::fs::read_to_string(dir.join(format!("{system}.{ext}")))
            .unwrap()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let labels = read("labels").iter().map(|l| label(l)).collect();
    (read("log"), labels)
}

fn levels(lines: &[String]) -> Vec<Option<Level>> {
    Parser::new(Choice::Auto)
        .parse_batch(lines)
        .into_iter()
        .map(|l| l.level)
        .collect()
}

#[test]
fn level_agreement_with_loghub_labels_is_at_least_97_percent() {
    let (mut agree, mut total) = (0, 0);
    let mut report = String::new();
    for system in SYSTEMS {
        let (lines, labels) = fixture(system);
        assert_eq!(lines.len(), labels.len(), "{system}");
        let got = levels(&lines);
        let ok = got
            .iter()
            .zip(&labels)
            .filter(|(g, l)| **g == Some(**l))
            .count();
        report.push_str(&format!(
            "{system}: {ok}/{} ({:.1}%)\n",
            labels.len(),
            100.0 * ok as f64 / labels.len() as f64
        ));
        for (i, (g, l)) in got.iter().zip(&labels).enumerate() {
            if *g != Some(*l) {
                report.push_str(&format!(
                    "  {system}:{} {g:?} != {l:?}: {}\n",
                    i + 1,
                    lines[i]
                ));
            }
        }
        agree += ok;
        total += labels.len();
    }
    let pct = 100.0 * agree as f64 / total as f64;
    eprintln!("{report}overall: {agree}/{total} ({pct:.1}%)");
    assert!(pct >= 97.0, "{report}overall {pct:.1}% < 97%");
}

#[test]
fn docker_prefix_keeps_the_level() {
    for system in SYSTEMS {
        let (lines, _) = fixture(system);
        let prefixed: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("2026-11-23T10:00:{:02}.{i:09}Z {l}", i % 60))
            .collect();
        assert_eq!(levels(&lines), levels(&prefixed), "{system}");
        // And behind the compose / Swarm CLI prefix.
        let composed: Vec<String> = lines
            .iter()
            .map(|l| format!("api.1.x7k2@node1    | {l}"))
            .collect();
        assert_eq!(levels(&lines), levels(&composed), "{system} (compose)");
    }
}

#[test]
fn json_logs_of_common_loggers() {
    for (lines, want) in [
        // bunyan, pino: numeric levels.
        (
            vec![
                r#"{"name":"api","hostname":"h","pid":1,"level":30,"msg":"up","time":"2026-11-23T10:00:01.000Z","v":0}"#,
                r#"{"name":"api","hostname":"h","pid":1,"level":50,"msg":"down","time":"2026-11-23T10:00:02.000Z","v":0}"#,
            ],
            [Level::Info, Level::Error],
        ),
        (
            vec![
                r#"{"level":40,"time":1763892001000,"pid":7,"hostname":"h","msg":"slow"}"#,
                r#"{"level":60,"time":1763892002000,"pid":7,"hostname":"h","msg":"dead"}"#,
            ],
            [Level::Warn, Level::Fatal],
        ),
        // zap production JSON: epoch seconds with a fraction.
        (
            vec![
                r#"{"level":"debug","ts":1763892001.123456,"caller":"a.go:1","msg":"x"}"#,
                r#"{"level":"dpanic","ts":1763892001.2,"caller":"a.go:2","msg":"y"}"#,
            ],
            [Level::Debug, Level::Fatal],
        ),
        // ECS: flat dotted and nested.
        (
            vec![
                r#"{"@timestamp":"2026-11-23T10:00:01.000Z","log.level":"warn","message":"a","ecs.version":"1.6.0"}"#,
                r#"{"@timestamp":"2026-11-23T10:00:02.000Z","log":{"level":"error"},"message":"b"}"#,
            ],
            [Level::Warn, Level::Error],
        ),
        // journald (journalctl -o json): PRIORITY as a string, time in microseconds.
        (
            vec![
                r#"{"__REALTIME_TIMESTAMP":"1763892001000000","PRIORITY":"6","MESSAGE":"started"}"#,
                r#"{"__REALTIME_TIMESTAMP":"1763892002000000","PRIORITY":"2","MESSAGE":"crit"}"#,
            ],
            [Level::Info, Level::Fatal],
        ),
    ] {
        let got = Parser::new(Choice::Auto).parse_batch(&lines);
        assert_eq!(
            got.iter().map(|l| l.level).collect::<Vec<_>>(),
            want.map(Some).to_vec(),
            "{lines:?}"
        );
        assert!(got.iter().all(|l| l.ts.is_some()), "{lines:?}");
    }
}
