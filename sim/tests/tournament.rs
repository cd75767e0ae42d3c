//! `cryptosphere-sim tournament`: strategies played round-robin and by invasion on a base
//! scenario; the same file gives byte-identical tables serially and in parallel, seeds come
//! from the tournament seed and the match, bad files are refused by name, and golden files
//! (`--golden`, `--bless`) name every cell that changed (also for `check`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cryptosphere_sim::scenario::Scenario;
use cryptosphere_sim::tournament::match_seed;
use cryptosphere_sim::world::World;

const BIN: &str = env!("CARGO_BIN_EXE_cryptosphere-sim");

/// A small base: 30 peers for a day, with the filter on.
const BASE: &str = r#"
seed = 1
duration_hours = 24
fidelity = "synthetic"
steady_from_hours = 6

[chains]
record_every_minutes = 60.0
exchange_every_minutes = 20.0
filter = true

[network]
regions = [{ name = "eu", weight = 1.0 }]
latency_ms = [[15.0]]

[[group]]
name = "template"
count = 30
storage_mib = 512
upload_mbps = 20.0
download_mbps = 50.0
mean_online_hours = 16.0
mean_offline_hours = 4.0

[workload]
publish_per_peer_per_day = 2.0
object_bytes_min = 200000
object_bytes_max = 1000000
fetch_per_peer_per_day = 6.0
warmup_hours = 1.0

[[expect]]
metric = "fetch_success_ratio"
group = "template"
op = ">="
value = 0.5
"#;

const STRATEGIES: &str = r#"
[[strategy]]
name = "trader"

[[strategy]]
name = "stingy"
preset = { altruism = 0.1 }

[[strategy]]
name = "freeloader"
preset = { storage_freeloader = true, bandwidth_freeloader = true }
"#;

/// Writes the base and a tournament file (`head` then the strategies) into `dir`.
fn files(dir: &Path, head: &str, strategies: &str) -> PathBuf {
    std::fs::write(dir.join("base.toml"), BASE).unwrap();
    let file = dir.join("t.toml");
    std::fs::write(&file, format!("{head}\n{strategies}")).unwrap();
    file
}

fn sim(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn tournament(file: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "tournament",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sim(&args)
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The CSV as rows of fields, without its header.
fn rows(path: &Path) -> Vec<Vec<String>> {
    read(path)
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

const TABLES: [&str; 5] = [
    "matches.csv",
    "payoffs.csv",
    "invasion.csv",
    "ranking.csv",
    "ecology.csv",
];

#[test]
fn a_tournament_is_the_same_serial_and_parallel_with_seeds_from_the_match() {
    let dir = tempfile::tempdir().unwrap();
    let file = files(dir.path(), "base = \"base.toml\"\nseed = 99", STRATEGIES);
    let serial = dir.path().join("serial");
    let parallel = dir.path().join("parallel");
    ok(&tournament(
        &file,
        &serial,
        &["--jobs", "1", "--generations", "5"],
    ));
    let stdout = ok(&tournament(
        &file,
        &parallel,
        &["--jobs", "2", "--generations", "5"],
    ));
    assert!(stdout.contains("ranking: "), "{stdout}");
    for table in TABLES {
        assert_eq!(
            read(&serial.join(table)),
            read(&parallel.join(table)),
            "{table} differs between --jobs 1 and --jobs 2"
        );
    }

    // 3 strategies: 6 round-robin matches (3 alone, 3 pairs) and 6 invasions, one seed each.
    let plan: serde_json::Value =
        serde_json::from_str(&read(&serial.join("tournament.json"))).unwrap();
    let matches = plan["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 12);
    for m in matches {
        let id = m["id"].as_str().unwrap();
        assert_eq!(
            m["seeds"][0].as_u64().unwrap(),
            match_seed(99, id, 0),
            "{id}"
        );
        let peers: u64 = m["sides"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["peers"].as_u64().unwrap())
            .sum();
        assert_eq!(peers, 30, "{id}: every match has the base's population");
    }
    let invasion = matches
        .iter()
        .find(|m| m["id"] == "inv-freeloader-into-trader")
        .unwrap();
    assert_eq!(invasion["sides"][0]["strategy"], "freeloader");
    assert_eq!(invasion["sides"][0]["peers"], 3, "10 % of 30");
    assert_eq!(invasion["sides"][1]["peers"], 27);

    // A match replays from its scenario file and seed alone.
    let id = "rr-stingy-freeloader";
    let seed = match_seed(99, id, 0);
    let scenario = Scenario::load(&serial.join(format!("scenarios/{id}.toml"))).unwrap();
    let names: Vec<&str> = scenario.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["stingy", "freeloader"]);
    assert!(scenario.groups[1].strategy.storage_freeloader);
    assert!(
        scenario.expectations.is_empty(),
        "the base's [[expect]] name its group"
    );
    let replayed = World::new(&scenario, id, seed).run(&mut |_| {});
    let summary: serde_json::Value = serde_json::from_str(&read(
        &serial.join(format!("runs/{id}/seed-{seed}/summary.json")),
    ))
    .unwrap();
    assert_eq!(
        summary["trace_digest"].as_str().unwrap(),
        replayed.summary.trace_digest
    );

    // The tables. A freeloader gives nothing in any match; alone it obtains nothing either.
    let played = rows(&serial.join("matches.csv"));
    assert_eq!(
        played.len(),
        3 + 3 * 2 + 6 * 2,
        "one row per side of each run"
    );
    for row in played.iter().filter(|r| r[3] == "freeloader") {
        assert_eq!((row[6].as_str(), row[8].as_str()), ("0.000000", "0.000000"));
    }
    let payoffs = rows(&serial.join("payoffs.csv"));
    assert_eq!(payoffs.len(), 3);
    assert!(payoffs
        .iter()
        .all(|r| r.len() == 4 && r[1..].iter().all(|c| !c.is_empty())));
    assert_eq!(payoffs[2][0], "freeloader");
    assert_eq!(payoffs[2][3], "0.000000");
    let header = read(&serial.join("invasion.csv"));
    assert!(
        header.starts_with("invader,resident,invader_payoff,resident_payoff,advantage,invades\n")
    );
    assert_eq!(rows(&serial.join("invasion.csv")).len(), 6);
    let ranking = rows(&serial.join("ranking.csv"));
    let ranks: Vec<&str> = ranking.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ranks, ["1", "2", "3"]);
    let means: Vec<f64> = ranking.iter().map(|r| r[2].parse().unwrap()).collect();
    assert!(means.windows(2).all(|w| w[0] >= w[1]), "{means:?}");
    let ecology = rows(&serial.join("ecology.csv"));
    assert_eq!(ecology.len(), 6, "generations 0 to 5");
    for row in &ecology {
        let sum: f64 = row[1..].iter().map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{row:?}");
    }
    assert_eq!(ecology[0][1..], ["0.333333", "0.333333", "0.333333"]);

    // The report: self-contained, every table and the ecology plot with its axes.
    let html = read(&serial.join("tournament.html"));
    for id in ["ranking", "payoffs", "invasion", "matches"] {
        assert!(html.contains(&format!("<table id=\"{id}\">")), "{id}");
    }
    assert!(html.contains("id=\"plot-ecology\"") && html.contains("<svg"));
    assert!(
        html.contains("generation (count)") && html.contains("population share (share, 0 to 1)")
    );
    // Self-contained: nothing to fetch, nothing to run (SVG's xmlns is a name, not a fetch).
    for needle in ["<script", "<link", "src=", "<img", "url("] {
        assert!(!html.contains(needle), "the page has {needle}");
    }
    assert!(
        std::fs::metadata(serial.join("plots/ecology.png"))
            .unwrap()
            .len()
            > 1000
    );

    // A second run over the same folder runs nothing, whatever path names the file.
    let spelled = dir.path().join(".").join("t.toml");
    let again = tournament(&spelled, &serial, &["--generations", "5"]);
    ok(&again);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("12 done, 0 to run"), "{stderr}");
    // Without --generations, the earlier ecology is not left behind.
    ok(&tournament(&file, &serial, &[]));
    assert!(!serial.join("ecology.csv").exists());
    assert!(!serial.join("plots/ecology.svg").exists());
    // Another tournament in the same folder is refused.
    let other = files(dir.path(), "base = \"base.toml\"\nseed = 100", STRATEGIES);
    let refused = tournament(&other, &serial, &[]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("holds another tournament"));
}

#[test]
fn bad_tournament_files_are_refused_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let base = "base = \"base.toml\"\nseed = 1";
    let cases: Vec<(String, String, &str)> =
        vec![
        (format!("{base}\nsedes = 2"), STRATEGIES.into(), "sedes"),
        (format!("{base}\nseeds = 0"), STRATEGIES.into(), "seeds: must be 1 to 1000"),
        (format!("{base}\nminority = 0.7"), STRATEGIES.into(), "minority: must be more than 0"),
        (
            format!("{base}\nformats = [\"swiss\"]"),
            STRATEGIES.into(),
            "\"swiss\" is not a format",
        ),
        (
            base.into(),
            "[[strategy]]\nname = \"trader\"\n".into(),
            "needs 2 to 16 [[strategy]] entries, not 1",
        ),
        (
            base.into(),
            "[[strategy]]\nname = \"a\"\n[[strategy]]\nname = \"a\"\n".into(),
            "strategy[1].name: \"a\" is used twice",
        ),
        (
            base.into(),
            "[[strategy]]\nname = \"All\"\n[[strategy]]\nname = \"b\"\n".into(),
            "strategy[0].name: \"All\" may hold only",
        ),
        (
            // '-' joins names in match ids: "a" and "b-c" against "a-b" and "c" would meet twice as rr-a-b-c.
            base.into(),
            "[[strategy]]\nname = \"a\"\n[[strategy]]\nname = \"b-c\"\n".into(),
            "strategy[1].name: \"b-c\" may hold only a-z, 0-9 and '_'",
        ),
        (
            format!("{base}\nminority = \"x\""),
            STRATEGIES.into(),
            "minority: must be a number, not \"x\"",
        ),
        (
            base.into(),
            "[[strategy]]\nname = \"a\"\n[[strategy]]\nname = \"b\"\nweight = 2\n".into(),
            "strategy[1].weight: unknown field `weight`, expected `name` or `preset`",
        ),
        (
            base.into(),
            "[[strategy]]\nname = \"a\"\npreset = { altruism = 1.5 }\n[[strategy]]\nname = \"b\"\n"
                .into(),
            "strategy \"a\": preset: group[0].strategy.altruism: must be between 0 and 1",
        ),
        (
            base.into(),
            "[[strategy]]\nname = \"a\"\npreset = { altruismo = 1 }\n[[strategy]]\nname = \"b\"\n"
                .into(),
            "altruismo",
        ),
        (
            "base = \"base.toml\"".into(),
            STRATEGIES.into(),
            ":1:1: missing field `seed`",
        ),
        (
            "base = \"nowhere.toml\"\nseed = 1".into(),
            STRATEGIES.into(),
            "base: cannot read",
        ),
    ];
    for (head, strategies, expected) in &cases {
        let file = files(dir.path(), head, strategies);
        let output = tournament(&file, &dir.path().join("out"), &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{head} {strategies}: {stderr}"
        );
        assert!(stderr.contains(expected), "{head} {strategies}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A base with two groups has no template.
    let file = files(dir.path(), base, STRATEGIES);
    let two = BASE.replace("[workload]", "[[group]]\nname = \"b\"\ncount = 3\nstorage_mib = 1\nupload_mbps = 1.0\ndownload_mbps = 1.0\nmean_online_hours = 1.0\n\n[workload]");
    std::fs::write(dir.path().join("base.toml"), two).unwrap();
    let output = tournament(&file, &dir.path().join("out"), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("exactly one [[group]]"));
    // --bless needs --golden.
    let output = tournament(&file, &dir.path().join("out"), &["--bless"]);
    assert_eq!(output.status.code(), Some(2));
    // The ecological variant needs the round-robin matrix.
    std::fs::write(dir.path().join("base.toml"), BASE).unwrap();
    let file = files(
        dir.path(),
        &format!("{base}\nformats = [\"invasion\"]"),
        STRATEGIES,
    );
    let output = tournament(&file, &dir.path().join("out"), &["--generations", "5"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--generations") && stderr.contains("round-robin"),
        "{stderr}"
    );
}

#[test]
fn golden_files_name_each_changed_cell_its_seed_and_its_replay() {
    let dir = tempfile::tempdir().unwrap();
    let two = "[[strategy]]\nname = \"trader\"\n[[strategy]]\nname = \"freeloader\"\npreset = { storage_freeloader = true }\n";
    let file = files(
        dir.path(),
        "base = \"base.toml\"\nseed = 5\nformats = [\"round-robin\"]",
        two,
    );
    let out = dir.path().join("out");
    let golden = dir.path().join("golden");
    let golden_arg = golden.to_str().unwrap();

    let missing = tournament(&file, &out, &["--golden", golden_arg]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("write it with --bless"), "{stderr}");
    // Every missing table is named, not only the first.
    for table in ["matches.csv", "payoffs.csv", "ranking.csv"] {
        assert!(stderr.contains(table), "{table}: {stderr}");
    }
    let blessed = ok(&tournament(
        &file,
        &out,
        &["--golden", golden_arg, "--bless"],
    ));
    assert!(blessed.contains("matches.csv: a new file"), "{blessed}");
    for table in ["matches.csv", "payoffs.csv", "ranking.csv"] {
        assert_eq!(read(&golden.join(table)), read(&out.join(table)), "{table}");
    }
    let unchanged = ok(&tournament(&file, &out, &["--golden", golden_arg]));
    assert!(unchanged.contains("golden: unchanged"), "{unchanged}");

    // Change one payoff in the golden copy: the cell, the match's seed and its replay.
    let matches = read(&golden.join("matches.csv"));
    let line = matches
        .lines()
        .find(|l| l.contains(",rr-trader-freeloader,") && l.contains(",trader,"))
        .unwrap();
    let fields: Vec<&str> = line.split(',').collect();
    let seed = fields[2];
    let mut changed: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    changed[9] = "123.456789".into();
    std::fs::write(
        golden.join("matches.csv"),
        matches.replace(line, &changed.join(",")),
    )
    .unwrap();
    let failed = tournament(&file, &out, &["--golden", golden_arg]);
    assert_eq!(failed.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(
        stdout.contains(&format!(
            "golden CHANGED: matches.csv: format=round-robin, match=rr-trader-freeloader, seed={seed}, strategy=trader payoff: golden 123.456789, now {}",
            fields[9]
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "replay: cryptosphere-sim run {} --seed {seed}",
            out.join("scenarios/rr-trader-freeloader.toml").display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("golden: 1 difference."), "{stdout}");

    // A cell of the payoff matrix names the pair it comes from.
    ok(&tournament(
        &file,
        &out,
        &["--golden", golden_arg, "--bless"],
    ));
    let payoffs = read(&golden.join("payoffs.csv"));
    let row = payoffs
        .lines()
        .find(|l| l.starts_with("freeloader,"))
        .unwrap();
    let mut cells: Vec<&str> = row.split(',').collect();
    cells[1] = "-1.000000";
    std::fs::write(
        golden.join("payoffs.csv"),
        payoffs.replace(row, &cells.join(",")),
    )
    .unwrap();
    let failed = tournament(&file, &out, &["--golden", golden_arg]);
    assert_eq!(failed.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(
        stdout.contains("payoffs.csv: strategy=freeloader trader: golden -1.000000, now "),
        "{stdout}"
    );
    assert!(
        stdout.contains("scenarios/rr-trader-freeloader.toml --seed "),
        "{stdout}"
    );

    // An ecology pinned, then a run without --generations: a difference, which --bless
    // removes.
    ok(&tournament(
        &file,
        &out,
        &["--generations", "3", "--golden", golden_arg, "--bless"],
    ));
    assert!(golden.join("ecology.csv").is_file());
    let without = tournament(&file, &out, &["--golden", golden_arg]);
    assert_eq!(without.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&without.stdout);
    assert!(
        stdout.contains("ecology.csv: in the golden folder, not written now"),
        "{stdout}"
    );
    ok(&tournament(
        &file,
        &out,
        &["--golden", golden_arg, "--bless"],
    ));
    assert!(!golden.join("ecology.csv").exists());
    let unchanged = ok(&tournament(&file, &out, &["--golden", golden_arg]));
    assert!(unchanged.contains("golden: unchanged"), "{unchanged}");
}

#[test]
fn check_pins_every_measured_value_in_a_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml");
    let smoke = smoke.to_str().unwrap();
    let golden = dir.path().join("expectations.csv");
    let golden_arg = golden.to_str().unwrap();
    ok(&sim(&["check", smoke, "--golden", golden_arg, "--bless"]));
    let text = read(&golden);
    assert!(text.starts_with("scenario,seed,group,metric,op,bound,measured,pass\n"));
    let first = text.lines().nth(1).unwrap().to_owned();
    assert!(
        first.starts_with(&format!("{smoke},7,all,fetch_success_ratio,>=,0.9,")),
        "{first}"
    );
    let unchanged = ok(&sim(&["check", smoke, "--golden", golden_arg]));
    assert!(unchanged.contains("golden: unchanged"), "{unchanged}");

    let mut fields: Vec<&str> = first.split(',').collect();
    fields[6] = "0.5";
    std::fs::write(&golden, text.replace(&first, &fields.join(","))).unwrap();
    let failed = sim(&["check", smoke, "--golden", golden_arg]);
    assert_eq!(
        failed.status.code(),
        Some(1),
        "the expectations hold, the golden value does not"
    );
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(
        stdout.contains("fetch_success_ratio, op=>= measured: golden 0.5, now"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("replay: cryptosphere-sim check {smoke} --seed 7")),
        "{stdout}"
    );
}
