//! `cryptosphere-sim sweep`: a grid of overrides × seeds, run in parallel, deterministic,
//! resumable, with tables per run and per cell; `--plan` for a scheduler and `--merge`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cryptosphere_sim::scenario::Scenario;
use cryptosphere_sim::world::World;

const BIN: &str = env!("CARGO_BIN_EXE_cryptosphere-sim");

fn smoke_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml")
}

fn sim(args: &[&str], out: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn sweep(out: &Path, extra: &[&str]) -> Output {
    let smoke = smoke_path();
    let mut args = vec![
        "sweep",
        smoke.to_str().unwrap(),
        "--set",
        "workload.fetch_per_peer_per_day=4.0,2.0",
        "--seeds",
        "2",
    ];
    args.extend_from_slice(extra);
    let output = sim(&args, out);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// runs.csv as (cell, axis value, seed, digest, fetches of all) rows.
fn runs(out: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let columns = [
        at("cell"),
        at("workload.fetch_per_peer_per_day"),
        at("seed"),
        at("trace_digest"),
        at("all.fetches"),
    ];
    lines
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            columns.iter().map(|c| fields[*c].to_owned()).collect()
        })
        .collect()
}

fn digest_of(scenario: &Scenario, seed: u64) -> (String, f64) {
    let output = World::new(scenario, "direct", seed).run(&mut |_| {});
    let fetches = output.summary.groups["all"].fetches;
    (output.summary.trace_digest, fetches)
}

#[test]
fn a_sweep_runs_every_cell_and_seed_deterministically_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let parallel = dir.path().join("parallel");
    let first = sweep(&parallel, &["--jobs", "2"]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("2 cells x 2 seeds = 4 runs, 0 done, 4 to run"),
        "{stderr}"
    );

    // One row per run; the cell that sets the scenario's own value is the scenario itself.
    let rows = runs(&parallel);
    assert_eq!(rows.len(), 4);
    let smoke = Scenario::load(&smoke_path()).unwrap();
    let mut slower = smoke.clone();
    slower.workload.fetch_per_peer_per_day = 2.0;
    for (cell, value, scenario) in [("cell-000", "4.0", &smoke), ("cell-001", "2.0", &slower)] {
        for seed in [7, 8] {
            let (digest, fetches) = digest_of(scenario, seed);
            let row = rows
                .iter()
                .find(|r| r[0] == cell && r[2] == seed.to_string())
                .unwrap();
            assert_eq!(row[1], value);
            assert_eq!(row[3], digest, "{cell} seed {seed}");
            assert_eq!(row[4].parse::<f64>().unwrap(), fetches);
        }
    }

    // The mean over a cell's seeds, from the runs' own summaries.
    let fetches_of = |cell: &str, seed: u64| -> f64 {
        let path = parallel
            .join("runs")
            .join(cell)
            .join(format!("seed-{seed}"))
            .join("summary.json");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        summary["groups"]["all"]["fetches"].as_f64().unwrap()
    };
    let mean = (fetches_of("cell-001", 7) + fetches_of("cell-001", 8)) / 2.0;
    let cells = std::fs::read_to_string(parallel.join("cells.csv")).unwrap();
    let line = cells
        .lines()
        .find(|l| l.starts_with("cell-001,2.0,all.fetches,"))
        .unwrap();
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(fields[3], "2", "{line}");
    assert_eq!(fields[4].parse::<f64>().unwrap(), mean, "{line}");
    let (low, high) = (
        fields[5].parse::<f64>().unwrap(),
        fields[6].parse::<f64>().unwrap(),
    );
    assert!(low <= mean && mean <= high, "{line}");
    let one_cell = std::fs::read_to_string(parallel.join("cells/cell-001.csv")).unwrap();
    assert!(one_cell.starts_with("measure,runs,mean,ci95_low,ci95_high\n"));
    assert!(
        one_cell.contains(&format!("all.fetches,2,{mean},")),
        "{one_cell}"
    );
    let html = std::fs::read_to_string(parallel.join("sweep.html")).unwrap();
    assert!(html.contains("<figure id=\"plot-metric-by-workload-fetch_per_peer_per_day\"><svg"));

    // A folder holding this grid refuses another.
    let smoke = smoke_path();
    let other = sim(
        &[
            "sweep",
            smoke.to_str().unwrap(),
            "--set",
            "network.loss=0.01,0.02",
        ],
        &parallel,
    );
    assert_eq!(other.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("holds another sweep's grid: use another --out"),
        "{stderr}"
    );

    // Resumed: nothing left to run, the same tables.
    let before = std::fs::read_to_string(parallel.join("runs.csv")).unwrap();
    let again = sweep(&parallel, &["--jobs", "2"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("4 runs, 4 done, 0 to run"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(parallel.join("runs.csv")).unwrap(),
        before
    );

    // One at a time gives the same rows as two at once.
    let serial = dir.path().join("serial");
    sweep(&serial, &["--jobs", "1"]);
    assert_eq!(
        std::fs::read_to_string(serial.join("runs.csv")).unwrap(),
        before
    );
}

#[test]
fn bad_keys_values_and_metrics_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let smoke = smoke_path();
    let cases = [
        (
            vec!["--set", "group[3].count=5"],
            "error: --set group[3].count: the scenario has 1 group entries (indexes 0 to 0)",
        ),
        (
            vec!["--set", "group[0].strategy.altruism=0.5,1.5"],
            "error: --set group[0].strategy.altruism=1.5: group[0].strategy.altruism: must be between 0 and 1, not 1.5",
        ),
        (
            vec!["--set", "group[0].strategy.altrusm=0.5"],
            "error: --set group[0].strategy.altrusm=0.5: group[0].strategy.altrusm: unknown field `altrusm`",
        ),
        (
            vec!["--set", "workload.fetch_per_peer_per_day=many"],
            "error: --set workload.fetch_per_peer_per_day=many: workload.fetch_per_peer_per_day: must be a number, not \"many\"",
        ),
        (
            vec!["--set", "workload.fetch_per_peer_per_day"],
            "error: --set \"workload.fetch_per_peer_per_day\": must be KEY=V1,V2,...",
        ),
        (
            vec!["--metric", "all.happiness"],
            "error: --metric \"all.happiness\": \"happiness\" is not a metric",
        ),
        (
            vec!["--metric", "servers.peers"],
            "error: --metric \"servers.peers\": no group is named \"servers\" (groups: all, peers)",
        ),
    ];
    for (extra, message) in cases {
        let mut args = vec!["sweep", smoke.to_str().unwrap()];
        args.extend(extra.iter().copied());
        let output = sim(&args, &dir.path().join("bad"));
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(message), "{extra:?}: {stderr}");
    }
}

#[test]
fn a_plan_runs_elsewhere_and_merges_into_the_same_tables() {
    let dir = tempfile::tempdir().unwrap();
    let planned = dir.path().join("planned");
    let plan = sweep(&planned, &["--plan"]);
    let commands: Vec<String> = String::from_utf8(plan.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(commands.len(), 4);
    assert_eq!(
        std::fs::read_to_string(planned.join("plan.txt")).unwrap(),
        commands.join("\n") + "\n"
    );
    assert!(!planned.join("runs").exists(), "--plan runs nothing");
    // Run two of the four commands, as a scheduler would, in the planned folder.
    for command in &commands[..2] {
        let words: Vec<&str> = command.split(' ').collect();
        assert_eq!(words[0], "cryptosphere-sim");
        let status = Command::new(BIN).args(&words[1..]).output().unwrap();
        assert!(status.status.success(), "{command}");
    }
    let merged = dir.path().join("merged");
    let output = Command::new(BIN)
        .args(["sweep", "--merge"])
        .arg(&planned)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("2 runs gathered, 2 missing"), "{stdout}");
    // The merged rows are those an in-process sweep writes for the same runs.
    let whole = dir.path().join("whole");
    sweep(&whole, &[]);
    let merged_rows = runs(&merged);
    let whole_rows = runs(&whole);
    assert_eq!(merged_rows.len(), 2);
    for row in &merged_rows {
        assert!(whole_rows.contains(row), "{row:?}");
    }
}
