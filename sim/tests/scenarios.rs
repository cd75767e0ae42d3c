//! The simulator as a whole: determinism of the trace digest (within a process, across
//! processes, across seeds), both payload fidelities, scenario-file errors, and `check`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cryptosphere_sim::expect::evaluate;
use cryptosphere_sim::scenario::{Fidelity, Scenario, ScenarioError};
use cryptosphere_sim::world::{RunOutput, World};

const BIN: &str = env!("CARGO_BIN_EXE_cryptosphere-sim");

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

fn run(scenario: &Scenario, seed: u64) -> RunOutput {
    World::new(scenario, "test", seed).run(&mut |_| {})
}

fn smoke() -> Scenario {
    Scenario::load(&scenario_path("smoke.toml")).unwrap()
}

/// Every scenario file loads, and is headed by the question it asks (a comment ending in
/// `?`), including those run only by hand and so in no CI check.
#[test]
fn every_scenario_file_loads_and_asks_its_question() {
    let dir = scenario_path("");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 18, "{files:?}");
    for path in files {
        if let Err(error) = Scenario::load(&path) {
            panic!("{}: {error}", path.display());
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let header: String = text
            .lines()
            .take_while(|line| line.starts_with('#'))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(header.contains('?'), "{} asks no question", path.display());
    }
}

#[test]
fn same_seed_same_digest_and_another_seed_another() {
    let scenario = smoke();
    let first = run(&scenario, 7);
    let second = run(&scenario, 7);
    assert_eq!(first.summary.trace_digest, second.summary.trace_digest);
    assert_eq!(first.summary.events, second.summary.events);
    assert!(first.summary.events > 10_000, "{}", first.summary.events);
    let other = run(&scenario, 8);
    assert_ne!(first.summary.trace_digest, other.summary.trace_digest);
}

#[test]
fn two_processes_print_the_same_digest() {
    let out = tempfile::tempdir().unwrap();
    let digest = |dir: &str| {
        let output = Command::new(BIN)
            .args([
                "run",
                scenario_path("smoke.toml").to_str().unwrap(),
                "--out",
            ])
            .arg(out.path().join(dir))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        let last = stdout.lines().last().unwrap().to_owned();
        assert!(last.starts_with("trace digest: "), "{last}");
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join(dir).join("summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            format!(
                "trace digest: {}",
                summary["trace_digest"].as_str().unwrap()
            ),
            last
        );
        let csv = std::fs::read_to_string(out.path().join(dir).join("metrics.csv")).unwrap();
        assert!(csv.lines().count() > 48, "one row per hour and group");
        last
    };
    assert_eq!(digest("a"), digest("b"));
    // And the library run in this process agrees with both.
    assert_eq!(
        digest("c"),
        format!("trace digest: {}", run(&smoke(), 7).summary.trace_digest)
    );
}

#[test]
fn both_fidelities_pass_the_same_expectations() {
    let mut scenario = smoke();
    for fidelity in [Fidelity::Synthetic, Fidelity::Full] {
        scenario.fidelity = fidelity;
        let output = run(&scenario, scenario.seed);
        let checks = evaluate(&scenario, &output.summary);
        assert!(!checks.is_empty());
        for check in &checks {
            assert!(
                check.pass,
                "{fidelity:?}: {}.{} {} {} measured {:?}",
                check.group, check.metric, check.op, check.bound, check.measured
            );
        }
        assert!(output.summary.groups["all"].fetches > 100.0);
    }
}

#[test]
fn bad_scenario_files_name_line_column_and_key() {
    let good = std::fs::read_to_string(scenario_path("smoke.toml")).unwrap();
    let typo = good.replace("mean_online_hours", "mean_onlin_hours");
    let error = Scenario::parse(&typo, "typo.toml").unwrap_err();
    let ScenarioError::Syntax {
        line,
        column,
        message,
        ..
    } = &error
    else {
        panic!("{error}")
    };
    let expected_line = good
        .lines()
        .position(|l| l.starts_with("mean_online_hours"))
        .unwrap()
        + 1;
    assert_eq!((*line, *column), (expected_line, 1), "{error}");
    assert!(message.contains("mean_onlin_hours"), "{error}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("typo.toml:{expected_line}:1:")),
        "{error}"
    );

    // Rule errors name the key, with the line and column where it is written.
    let line_of = |prefix: &str| good.lines().position(|l| l.starts_with(prefix)).unwrap() + 1;
    let cases = [
        (
            good.replace("loss = 0.001", "loss = 1.5"),
            "network.loss",
            line_of("loss"),
        ),
        (
            good.replace(
                "loss = 0.001",
                "loss = 0.001\nuplink_queue_bytes_max = 65536",
            ),
            "network.uplink_queue_bytes_max",
            line_of("loss") + 1,
        ),
        (
            good.replace("departures = 0.05", "departures = 5.0"),
            "group[0].departures",
            line_of("departures"),
        ),
        (good.replace("count = 60", "count = 0"), "group.count", 1),
        (
            good.replace(
                "metric = \"availability_mean\"",
                "metric = \"availability_average\"",
            ),
            "expect[1].metric",
            line_of("metric = \"availability_mean\""),
        ),
        (
            good.replace(
                "latency_ms = [[15.0, 45.0], [45.0, 20.0]]",
                "latency_ms = [[15.0]]",
            ),
            "network.latency_ms",
            line_of("latency_ms"),
        ),
    ];
    for (text, key, line) in cases {
        let error = Scenario::parse(&text, "bad.toml").unwrap_err();
        match &error {
            ScenarioError::Invalid {
                key: named,
                line: at,
                ..
            } => {
                assert_eq!(named, key, "{error}");
                if line > 1 {
                    assert_eq!(*at, line, "{error}");
                }
            }
            other => panic!("{key}: {other}"),
        }
    }
    // Expectations are typed at load: a bad metric is named, where it is written.
    let metric_line = line_of("metric = \"availability_mean\"");
    for (metric, problem) in [
        (
            "availability_average",
            "\"availability_average\" is not a metric (see docs/scenario-format.md)",
        ),
        (
            "probe.nowhere.success_ratio",
            "no [[probe]] is named \"nowhere\"",
        ),
    ] {
        let text = good.replace(
            "metric = \"availability_mean\"",
            &format!("metric = \"{metric}\""),
        );
        let error = Scenario::parse(&text, "bad.toml").unwrap_err();
        // (An unknown metric's error goes on with the valid names: scenario_errors.rs.)
        assert!(
            error.to_string().starts_with(&format!(
                "bad.toml:{metric_line}:1: expect[1].metric: {problem}"
            )),
            "{error}"
        );
    }
    let error =
        Scenario::parse(&good.replace("seed = 7", "seed = \"seven\""), "bad.toml").unwrap_err();
    assert!(
        matches!(error, ScenarioError::Syntax { line: 3, .. }),
        "{error}"
    );
}

#[test]
fn check_fails_with_the_seed_and_the_replay_command() {
    let dir = tempfile::tempdir().unwrap();
    let strict = std::fs::read_to_string(scenario_path("smoke.toml"))
        .unwrap()
        .replace("value = 0.95", "value = 1.01");
    let path = dir.path().join("strict.toml");
    std::fs::write(&path, strict).unwrap();
    let output = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("FAIL") && stdout.contains("pass"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "replay: cryptosphere-sim check {} --seed 7",
            path.display()
        )),
        "{stdout}"
    );

    let output = Command::new(BIN)
        .args(["check", scenario_path("smoke.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    let output = Command::new(BIN)
        .args(["run", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn arrivals_during_a_partition_and_crashes_run_cleanly() {
    let text = std::fs::read_to_string(scenario_path("smoke.toml")).unwrap().replace("departures = 0.05", "departures = 0.05\narrivals = 20")
        + "\n[[fault]]\nkind = \"partition\"\nat_hours = 2.0\nheal_hours = 30.0\nside_a = 0.4\n\n[[fault]]\nkind = \"crash\"\nat_hours = 10.0\ngroup = \"peers\"\nfraction = 0.3\n";
    let scenario = Scenario::parse(&text, "stress.toml").unwrap();
    let output = run(&scenario, 3);
    assert_eq!(output.summary.groups["all"].peers, 80.0);
    assert!(output.summary.groups["all"].fetches > 100.0);
}

/// 200 fast peers and 100 whose uplinks run at 0.01 Mbps (1,250 bytes/s: a 256 KiB chunk
/// takes 3.5 minutes to leave), always online.
const SLOW_UPLINKS: &str = r#"
seed = 11
duration_hours = 12

[network]
regions = [{ name = "eu", weight = 1.0 }]
latency_ms = [[20.0]]

[[group]]
name = "fast"
count = 200
storage_mib = 512
upload_mbps = 20.0
download_mbps = 100.0
mean_online_hours = 1000.0

[[group]]
name = "slow"
count = 100
storage_mib = 512
upload_mbps = 0.01
download_mbps = 100.0
mean_online_hours = 1000.0

[workload]
publish_per_peer_per_day = 2.0
object_bytes_min = 100000
object_bytes_max = 1000000
fetch_per_peer_per_day = 8.0
warmup_hours = 1.0
"#;

/// A frame takes its receiver's downlink when it arrives, not when it is sent: when the
/// downlink was booked at sending, one frame queued hours deep behind a slow uplink held its
/// receiver's downlink for those hours, and the fast peers' fetch success fell to 0.087 here
/// (everyone's to 0.085). Fetches of what slow peers published, from their slow uplinks, still
/// fail; the fast peers' others succeed.
#[test]
fn slow_uplinks_do_not_starve_fast_peers() {
    let scenario = Scenario::parse(SLOW_UPLINKS, "slow-uplinks.toml").unwrap();
    let output = run(&scenario, scenario.seed);
    let fast = &output.summary.groups["fast"];
    assert!(fast.fetches > 500.0, "{fast:?}");
    assert!(fast.fetch_success_ratio >= 0.85, "{fast:?}");
    assert!(fast.fetch_latency_p50_ms < 1_000.0, "{fast:?}");
    // The slow peers' uplinks fill (16 MiB is 3.7 hours at their rate) and drop frames.
    let slow = &output.summary.groups["slow"];
    assert!(slow.frames_dropped > 0.0, "{slow:?}");
    assert_eq!(fast.frames_dropped, 0.0, "{fast:?}");
}

/// Golden digest (STYLE §5, Axelrod-style): the smoke scenario at seed 7 must give this trace
/// on every machine. The simulator draws only from seeded ChaCha streams and computes
/// logarithms and powers with `libm`, so nothing platform-specific reaches a decision. A
/// deliberate change of behaviour updates this value in the same commit, saying why. Last
/// change: a renewal asks the partner to confirm, and a peer that leaves a placement
/// unanswered is offered no more for a while (issue 10).
const SMOKE_SEED_7_DIGEST: &str =
    "8202764bf34a781d2b0ad7961e61a6ffda8899668c1a4792275166bae4e2ef2f";

#[test]
fn the_smoke_digest_is_pinned() {
    assert_eq!(run(&smoke(), 7).summary.trace_digest, SMOKE_SEED_7_DIGEST);
}
