//! `cryptosphere-sim`: run scenarios, check their expectations, benchmark the kernel.

// The command line is host code: it reads the wall clock to report events per second and
// writes the run's output files.
#![allow(clippy::disallowed_methods)]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use cryptosphere::kernel::Time;
use cryptosphere_sim::batch;
use cryptosphere_sim::expect::{evaluate, Check};
use cryptosphere_sim::golden;
use cryptosphere_sim::metrics::Metric;
use cryptosphere_sim::output::write_run;
use cryptosphere_sim::progress::{ProgressLines, EVERY_S_DEFAULT};
use cryptosphere_sim::scenario::Scenario;
use cryptosphere_sim::world::{RunOutput, World};

/// The simulator allocates and frees small objects at every event (frames, records, effects):
/// mimalloc's thread-local free lists serve them faster than glibc's. Allocation never
/// reaches the trace.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (and, for check, every expectation held)
  1  an expectation failed, or a golden file differs or is missing (the seed and the command
     that replays it are printed)
  2  bad usage, a bad scenario or tournament file (the file, line, column and key are named)
  3  the output directory (or, with --bless, a golden file) could not be written, or it holds
     another tournament";

/// Deterministic simulator of Cryptosphere peers.
#[derive(Debug, Parser)]
#[command(name = "cryptosphere-sim", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one scenario; write summary.json and metrics.csv; print the trace digest last.
    #[command(after_help = EXIT_CODES)]
    Run {
        scenario: PathBuf,
        /// Seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Output directory (default: sim-out/<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write report.html (plots and tables) into the output directory.
        #[arg(long)]
        report: bool,
    },
    /// Write report.html (plots over time, the summary, the expectations) and plots/ into a
    /// run's output directory.
    #[command(after_help = EXIT_CODES)]
    Report {
        /// A directory written by `run` (summary.json, metrics.csv, ...).
        run_dir: PathBuf,
    },
    /// Run a scenario over a grid of overridden keys × seeds, on every core; write a row per
    /// run, the mean and 95 % CI of every summary metric per cell, and sweep.html.
    /// Resumable: finished runs are skipped. `--plan` writes one command per run instead;
    /// `--merge DIR...` gathers sweep folders (e.g. run by a scheduler) into the tables.
    #[command(after_help = EXIT_CODES)]
    Sweep {
        /// The scenario to sweep (not with --merge).
        #[arg(required_unless_present = "merge")]
        scenario: Option<PathBuf>,
        /// KEY=V1,V2,...: a key of the scenario (e.g. group[1].strategy.altruism or
        /// workload.fetch_per_peer_per_day) and the values it takes; repeat for more axes.
        #[arg(long = "set", value_name = "KEY=V1,V2,...")]
        sets: Vec<String>,
        /// Seeds per cell: the scenario's seed and the ones after it.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=cryptosphere_sim::sweep::SEEDS_MAX))]
        seeds: u64,
        /// The sweep's folder (with --merge: where the tables go; default the first DIR).
        #[arg(long, required_unless_present = "merge")]
        out: Option<PathBuf>,
        /// GROUP.METRIC plotted against each axis.
        #[arg(long, default_value = "all.fetch_success_ratio")]
        metric: String,
        /// Write the plan (sweep.json, the cells' scenarios, plan.txt with one command per
        /// run) and run nothing.
        #[arg(long, conflicts_with = "merge")]
        plan: bool,
        /// Gather these sweep folders' runs into the tables and report.
        #[arg(long, num_args = 1.., value_name = "DIR", conflicts_with_all = ["scenario", "sets", "plan"])]
        merge: Vec<PathBuf>,
        /// Runs at once (default: the number of cores).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
        jobs: Option<u64>,
    },
    /// Play trade strategies against each other on a base scenario (round-robin pairs and
    /// invasions); write matches.csv, payoffs.csv, invasion.csv, ranking.csv and
    /// tournament.html. Resumable: finished runs are skipped.
    #[command(after_help = EXIT_CODES)]
    Tournament {
        /// The tournament file (docs/scenario-format.md §8).
        file: PathBuf,
        /// The tournament's folder.
        #[arg(long)]
        out: PathBuf,
        /// Also run the ecological variant over this many generations (ecology.csv).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=cryptosphere_sim::tournament::GENERATIONS_MAX))]
        generations: Option<u64>,
        /// Runs at once (default: the number of cores); the result does not depend on it.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
        jobs: Option<u64>,
        /// Compare the tables with the golden copies in this folder; exit 1 on a difference.
        #[arg(long, value_name = "DIR")]
        golden: Option<PathBuf>,
        /// With --golden: rewrite the golden copies instead (a deliberate change of strategy).
        #[arg(long, requires = "golden")]
        bless: bool,
    },
    /// Run scenarios and check their expectations; exit 1 if any fails.
    #[command(after_help = EXIT_CODES)]
    Check {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seed for every scenario (default: each scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Also compare every measured value with this golden file; exit 1 on a difference.
        #[arg(long, value_name = "FILE")]
        golden: Option<PathBuf>,
        /// With --golden: rewrite the golden file instead (a deliberate change of strategy).
        #[arg(long, requires = "golden")]
        bless: bool,
    },
    /// Measure the kernel's event rate against a bare BinaryHeap loop of the same shape.
    #[command(after_help = EXIT_CODES)]
    Bench {
        /// Events per measurement.
        #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(1..))]
        events: u64,
    },
}

fn load(path: &Path) -> Result<Scenario, ExitCode> {
    Scenario::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// The scenario and its text as read (kept beside the run's output).
fn load_with_text(path: &Path) -> Result<(Scenario, String), ExitCode> {
    let scenario = load(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", path.display());
        ExitCode::from(2)
    })?;
    Ok((scenario, text))
}

/// Writes the report of the run in `dir`; exit code 2 for unreadable input, 3 when the
/// report cannot be written.
fn report(dir: &Path) -> Result<PathBuf, ExitCode> {
    match cryptosphere_analysis::write_report(dir) {
        Ok(report) => Ok(report.html),
        Err(e) => {
            eprintln!("error: no report for {}: {e}", dir.display());
            let code = match e {
                cryptosphere_analysis::ReportError::Write { .. } => 3,
                _ => 2,
            };
            Err(ExitCode::from(code))
        }
    }
}

fn name_of(path: &Path) -> String {
    path.file_stem().map_or_else(
        || "scenario".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    )
}

fn simulate(scenario: &Scenario, name: &str, seed: u64) -> RunOutput {
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    // Without a terminal (a log, CI, a batch job): a plain line every ~10 s instead.
    let mut lines = (!terminal).then(|| ProgressLines::new(name, EVERY_S_DEFAULT));
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {msg} eta {eta}") {
        bar.set_style(style);
    }
    bar.set_prefix(name.to_owned());
    let started = std::time::Instant::now();
    let output = World::new(scenario, name, seed).run(&mut |p| {
        if let Some(lines) = lines.as_mut() {
            if let Some(line) = lines.line(&p, started.elapsed().as_secs_f64()) {
                eprintln!("{line}");
            }
            return;
        }
        bar.set_position(p.now.micros() * 1000 / p.end.micros().max(1));
        let rate = p.events as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "day {:.1} / {:.1}, {:.2} M events/s",
            p.now.micros() as f64 / Time::DAY as f64,
            p.end.micros() as f64 / Time::DAY as f64,
            rate / 1e6
        ));
    });
    bar.finish_and_clear();
    output
}

/// The sweep report of the sweep folders `dirs`, written into `out`.
fn sweep_report(dirs: &[PathBuf], out: &Path) -> ExitCode {
    match cryptosphere_analysis::sweep::write_sweep_report(dirs, out) {
        Ok(report) => {
            println!(
                "{} runs gathered, {} missing; wrote {}, {}, {} and {}",
                report.runs,
                report.missing.len(),
                out.join("runs.csv").display(),
                out.join("cells.csv").display(),
                out.join("cells").display(),
                report.html.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                cryptosphere_analysis::ReportError::Write { .. } => 3,
                _ => 2,
            })
        }
    }
}

/// What `sweep` was asked for (without `--merge`).
#[derive(Debug)]
struct SweepRequest<'a> {
    scenario: &'a Path,
    sets: &'a [String],
    seed_count: u64,
    out: &'a Path,
    metric: &'a str,
    /// Write the plan and run nothing.
    plan_only: bool,
    jobs: Option<u64>,
}

fn sweep(request: &SweepRequest<'_>) -> ExitCode {
    let SweepRequest {
        scenario: path,
        sets,
        seed_count,
        out,
        metric,
        plan_only,
        jobs,
    } = *request;
    use cryptosphere_sim::sweep::{self, Axis};
    let fail = |e: &dyn std::fmt::Display, code: u8| {
        eprintln!("error: {e}");
        ExitCode::from(code)
    };
    let (scenario, text) = match load_with_text(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(e) = sweep::check_metric(metric, &scenario) {
        return fail(&e, 2);
    }
    let axes = match sets
        .iter()
        .map(|s| Axis::parse(s))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(axes) => axes,
        Err(e) => return fail(&e, 2),
    };
    let cells = match sweep::cells(&text, &axes) {
        Ok(cells) => cells,
        Err(e) => return fail(&e, 2),
    };
    let seeds = sweep::seeds(scenario.seed, seed_count);
    if let Err(e) = sweep::write_plan(out, path, &axes, &cells, &seeds, metric) {
        let code = if matches!(e, sweep::SweepError::Write { .. }) {
            3
        } else {
            2
        };
        return fail(&e, code);
    }
    if plan_only {
        let commands = sweep::plan_commands("cryptosphere-sim", out, &cells, &seeds);
        let plan = out.join("plan.txt");
        if let Err(e) = std::fs::write(&plan, commands.join("\n") + "\n") {
            return fail(&format!("cannot write {}: {e}", plan.display()), 3);
        }
        for command in &commands {
            println!("{command}");
        }
        eprintln!(
            "wrote {} ({} run{}); run them (e.g. parallel -j 2 < {}), then: cryptosphere-sim sweep --merge {}",
            plan.display(),
            commands.len(),
            if commands.len() == 1 { "" } else { "s" },
            plan.display(),
            out.display()
        );
        return ExitCode::SUCCESS;
    }
    // Every cell's scenario, parsed once (cells() has checked each).
    let parsed: Vec<Scenario> = match cells
        .iter()
        .map(|c| Scenario::parse(&c.text, &c.id))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(p) => p,
        Err(e) => return fail(&e, 2),
    };
    let mut pending = Vec::new();
    for (c, cell) in cells.iter().enumerate() {
        for seed in &seeds {
            let dir = sweep::run_dir(out, &cell.id, *seed);
            if !batch::is_done(&dir) {
                pending.push(batch::Job {
                    label: &cell.id,
                    scenario: &parsed[c],
                    text: &cell.text,
                    seed: *seed,
                    dir,
                });
            }
        }
    }
    let total = cells.len() * seeds.len();
    let threads = batch::threads(jobs);
    eprintln!(
        "sweep: {} cells x {} seeds = {total} runs, {} done, {} to run, {threads} at once",
        cells.len(),
        seeds.len(),
        total - pending.len(),
        pending.len()
    );
    if batch::run_all(&pending, threads).is_err() {
        return ExitCode::from(3);
    }
    sweep_report(&[out.to_owned()], out)
}

/// Prints the golden differences; the exit code they make (0: none or blessed, 1: some).
fn report_golden(
    changes: &[golden::Change],
    bless: bool,
    replay: &dyn Fn(&golden::Change) -> Option<String>,
) -> ExitCode {
    if changes.is_empty() {
        println!("golden: unchanged");
        return ExitCode::SUCCESS;
    }
    let verb = if bless { "blessed" } else { "CHANGED" };
    let mut replays: Vec<String> = Vec::new();
    for change in changes {
        println!("golden {verb}: {change}");
        if let Some(command) = replay(change) {
            if !replays.contains(&command) {
                replays.push(command);
            }
        }
    }
    let differences = if changes.len() == 1 {
        "1 difference".to_owned()
    } else {
        format!("{} differences", changes.len())
    };
    if bless {
        println!("golden: {differences} written into the golden files; say why in the commit");
        return ExitCode::SUCCESS;
    }
    for command in &replays {
        println!("  replay: {command}");
    }
    println!(
        "golden: {differences}. If the change of strategy is deliberate, rerun with --bless and give the reason in the commit."
    );
    ExitCode::from(1)
}

/// What `tournament` was asked for.
#[derive(Debug)]
struct TournamentRequest<'a> {
    file: &'a Path,
    out: &'a Path,
    generations: Option<u64>,
    jobs: Option<u64>,
    golden: Option<&'a Path>,
    bless: bool,
}

fn tournament(request: &TournamentRequest<'_>) -> ExitCode {
    use cryptosphere_sim::tournament::{self, Tournament};
    let fail = |e: &dyn std::fmt::Display, code: u8| {
        eprintln!("error: {e}");
        ExitCode::from(code)
    };
    let out = request.out;
    let t = match Tournament::load(request.file) {
        Ok(t) => t,
        Err(e) => return fail(&e, 2),
    };
    if request.generations.is_some() && !t.formats.contains(&tournament::Format::RoundRobin) {
        return fail(
            &format!(
                "--generations: the ecological variant grows shares by the round-robin payoff matrix, and {} has no \"round-robin\" in its formats",
                request.file.display()
            ),
            2,
        );
    }
    let matches = match t.matches() {
        Ok(m) => m,
        Err(e) => return fail(&e, 2),
    };
    if let Err(e) = tournament::write_plan(out, &t, &matches) {
        return fail(&e, 3);
    }
    let mut pending = Vec::new();
    let mut total = 0;
    for m in &matches {
        for seed in &m.seeds {
            total += 1;
            let dir = tournament::run_dir(out, &m.id, *seed);
            if !batch::is_done(&dir) {
                pending.push(batch::Job {
                    label: &m.id,
                    scenario: &m.scenario,
                    text: &m.text,
                    seed: *seed,
                    dir,
                });
            }
        }
    }
    let threads = batch::threads(request.jobs);
    eprintln!(
        "tournament: {} strategies, {} matches x {} seeds = {total} runs, {} done, {} to run, {threads} at once",
        t.strategies.len(),
        matches.len(),
        t.seeds,
        total - pending.len(),
        pending.len()
    );
    if batch::run_all(&pending, threads).is_err() {
        return ExitCode::from(3);
    }
    let report = match cryptosphere_analysis::tournament::write_tournament_report(
        out,
        request.generations,
    ) {
        Ok(r) => r,
        Err(e) => {
            let code = if matches!(e, cryptosphere_analysis::ReportError::Write { .. }) {
                3
            } else {
                2
            };
            return fail(&e, code);
        }
    };
    println!("ranking: {}", report.ranking.join(" > "));
    println!(
        "wrote {} ({} runs) and {}",
        report
            .tables
            .iter()
            .map(|t| out.join(t).display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        report.runs,
        report.html.display()
    );
    let Some(golden_dir) = request.golden else {
        return ExitCode::SUCCESS;
    };
    let mut changes = Vec::new();
    let mut missing = false;
    for table in cryptosphere_analysis::tournament::TABLES {
        let stale = golden_dir.join(table);
        if !report.tables.contains(table) && stale.is_file() {
            // A table this run did not write (ecology.csv without --generations).
            changes.push(golden::Change {
                file: (*table).to_owned(),
                row: "(the whole file)".into(),
                key: Vec::new(),
                column: None,
                golden: Some(String::new()),
                now: None,
            });
            if request.bless {
                if let Err(e) = std::fs::remove_file(&stale) {
                    return fail(&format!("cannot remove {}: {e}", stale.display()), 3);
                }
            }
        }
    }
    for table in &report.tables {
        let now = match std::fs::read_to_string(out.join(table)) {
            Ok(text) => text,
            Err(e) => {
                return fail(
                    &format!("cannot read {}: {e}", out.join(table).display()),
                    3,
                )
            }
        };
        // Rows are keyed by: format, match, seed, strategy; strategy; invader, resident;
        // rank, strategy; generation.
        let key = match *table {
            "matches.csv" => 4,
            "invasion.csv" | "ranking.csv" => 2,
            _ => 1,
        };
        match golden::check_or_bless(&golden_dir.join(table), &now, key, request.bless) {
            Ok(c) => changes.extend(c),
            // Every table is compared before giving up, so all that is missing is named.
            Err(e) if !request.bless => {
                eprintln!("error: {e}");
                missing = true;
            }
            Err(e) => return fail(&e, 3),
        }
    }
    if missing {
        return ExitCode::from(1);
    }
    // The match a changed cell comes from, where one does: a run (matches.csv), an invasion
    // (invasion.csv) or a round-robin pair (payoffs.csv, by row and column).
    let replay = |change: &golden::Change| -> Option<String> {
        let (id, seeds): (String, Vec<u64>) = match (change.file.as_str(), change.key.as_slice()) {
            ("matches.csv", [_, id, seed, _]) if matches.iter().any(|m| m.id == *id) => {
                (id.clone(), vec![seed.parse().ok()?])
            }
            ("invasion.csv", [invader, resident]) => {
                let id = format!("inv-{invader}-into-{resident}");
                let m = matches.iter().find(|m| m.id == id)?;
                (id, m.seeds.clone())
            }
            ("payoffs.csv", [row]) => {
                let column = change.column.as_deref()?;
                let m = matches.iter().find(|m| {
                    m.id == format!("rr-{row}-{column}") || m.id == format!("rr-{column}-{row}")
                })?;
                (m.id.clone(), m.seeds.clone())
            }
            _ => return None,
        };
        Some(
            seeds
                .iter()
                .map(|seed| {
                    format!(
                        "cryptosphere-sim run {} --seed {seed} --out {}",
                        tournament::match_scenario(out, &id).display(),
                        out.join("replay").join(&id).display()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n  replay: "),
        )
    };
    let code = report_golden(&changes, request.bless, &replay);
    if !changes.is_empty() && !request.bless {
        println!(
            "  the whole tournament: cryptosphere-sim tournament {} --out {}{} --golden {}",
            request.file.display(),
            out.display(),
            request
                .generations
                .map_or_else(String::new, |g| format!(" --generations {g}")),
            golden_dir.display()
        );
    }
    code
}

/// The golden table of `check`: one row per expectation of every scenario run.
const EXPECTATIONS_HEADER: &str = "scenario,seed,group,metric,op,bound,measured,pass";

fn print_summary(output: &RunOutput) {
    let mut stdout = std::io::stdout().lock();
    let s = &output.summary;
    let _ = writeln!(
        stdout,
        "scenario {} seed {} ({} hours, {} fidelity): {} events delivered",
        s.scenario, s.seed, s.duration_hours, s.fidelity, s.events
    );
    for (group, metrics) in &s.groups {
        let line: Vec<String> = [
            Metric::Peers,
            Metric::Publishes,
            Metric::Fetches,
            Metric::FetchSuccessRatio,
            Metric::FetchLatencyP50Ms,
            Metric::AvailabilityMean,
            Metric::AvailabilityMin,
            Metric::ReplicasAliveFinal,
            Metric::BytesForOthers,
        ]
        .iter()
        .map(|metric| format!("{metric}={}", trim(metrics.get(*metric))))
        .collect();
        let _ = writeln!(stdout, "  {group}: {}", line.join(" "));
    }
    for (name, ratio) in &s.probes {
        let _ = writeln!(stdout, "  probe {name}: success_ratio={}", trim(*ratio));
    }
}

fn trim(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.4}")
    }
}

fn print_checks(path: &Path, seed: u64, checks: &[Check]) {
    for c in checks {
        let measured = c.measured.map_or_else(|| "(none)".to_owned(), trim);
        let verdict = if c.pass { "pass" } else { "FAIL" };
        println!(
            "{verdict:4}  {:<28} {:<34} {:>2} {:<10} measured {measured}",
            path.display(),
            format!("{}.{}", c.group, c.metric),
            c.op,
            trim(c.bound)
        );
    }
    if checks.iter().any(|c| !c.pass) {
        println!(
            "  failed with seed {seed}; replay: cryptosphere-sim check {} --seed {seed}",
            path.display()
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario: path,
            seed,
            out,
            report: with_report,
        } => {
            let (scenario, text) = match load_with_text(&path) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let name = name_of(&path);
            let seed = seed.unwrap_or(scenario.seed);
            let output = simulate(&scenario, &name, seed);
            let checks = evaluate(&scenario, &output.summary);
            let dir = out.unwrap_or_else(|| Path::new("sim-out").join(&name));
            if let Err(e) = write_run(&dir, &output, &checks, &text) {
                eprintln!(
                    "error: cannot write the run's output to {}\n  cause: {e}",
                    dir.display()
                );
                return ExitCode::from(3);
            }
            print_summary(&output);
            println!(
                "wrote {}, {}, {}, {} and {}",
                dir.join("summary.json").display(),
                dir.join("metrics.csv").display(),
                dir.join("profile.csv").display(),
                dir.join("checks.csv").display(),
                dir.join("scenario.toml").display()
            );
            if with_report {
                match report(&dir) {
                    Ok(html) => println!("wrote {}", html.display()),
                    Err(code) => return code,
                }
            }
            println!("trace digest: {}", output.summary.trace_digest);
            ExitCode::SUCCESS
        }
        Command::Sweep {
            scenario,
            sets,
            seeds,
            out,
            metric,
            plan,
            merge,
            jobs,
        } => {
            if !merge.is_empty() {
                let out = out.unwrap_or_else(|| merge[0].clone());
                return sweep_report(&merge, &out);
            }
            match (scenario, out) {
                (Some(scenario), Some(out)) => sweep(&SweepRequest {
                    scenario: &scenario,
                    sets: &sets,
                    seed_count: seeds,
                    out: &out,
                    metric: &metric,
                    plan_only: plan,
                    jobs,
                }),
                _ => {
                    eprintln!("error: sweep needs a SCENARIO and --out DIR (or --merge DIR...)");
                    ExitCode::from(2)
                }
            }
        }
        Command::Report { run_dir } => match report(&run_dir) {
            Ok(html) => {
                println!("wrote {}", html.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Tournament {
            file,
            out,
            generations,
            jobs,
            golden,
            bless,
        } => tournament(&TournamentRequest {
            file: &file,
            out: &out,
            generations,
            jobs,
            golden: golden.as_deref(),
            bless,
        }),
        Command::Check {
            scenarios,
            seed,
            golden: golden_file,
            bless,
        } => {
            let mut failed = false;
            let mut table = format!("{EXPECTATIONS_HEADER}\n");
            for path in &scenarios {
                let scenario = match load(path) {
                    Ok(s) => s,
                    Err(code) => return code,
                };
                let seed = seed.unwrap_or(scenario.seed);
                let started = std::time::Instant::now();
                let output = simulate(&scenario, &name_of(path), seed);
                let checks = evaluate(&scenario, &output.summary);
                println!(
                    "{} (seed {seed}, {:.1} s, {} events, digest {})",
                    path.display(),
                    started.elapsed().as_secs_f64(),
                    output.summary.events,
                    &output.summary.trace_digest[..16]
                );
                print_checks(path, seed, &checks);
                failed |= checks.iter().any(|c| !c.pass);
                for c in &checks {
                    let measured = c.measured.map_or_else(String::new, |m| format!("{m}"));
                    table.push_str(&format!(
                        "{},{seed},{},{},{},{},{measured},{}\n",
                        path.display(),
                        c.group,
                        c.metric,
                        c.op,
                        c.bound,
                        c.pass
                    ));
                }
            }
            if let Some(file) = golden_file {
                // Rows are keyed by scenario, seed, group, metric and op: a bound relative to another
                // group's value moves with it, and is compared as a cell.
                let changes = match golden::check_or_bless(&file, &table, 5, bless) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(if bless { 3 } else { 1 });
                    }
                };
                let replay = |change: &golden::Change| {
                    (change.key.len() == 5).then(|| {
                        format!(
                            "cryptosphere-sim check {} --seed {}",
                            change.key[0], change.key[1]
                        )
                    })
                };
                failed |= report_golden(&changes, bless, &replay) != ExitCode::SUCCESS;
            }
            if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Bench { events } => {
            let result = cryptosphere_sim::bench::run(events);
            println!(
                "{} peers, {} events in flight, {} events per loop (best of 2)",
                cryptosphere_sim::bench::PEERS,
                cryptosphere_sim::bench::IN_FLIGHT,
                result.events
            );
            println!(
                "bare BinaryHeap loop: {:.2} M events/s",
                result.bare_events_per_s / 1e6
            );
            println!(
                "kernel (sim host):    {:.2} M events/s",
                result.kernel_events_per_s / 1e6
            );
            println!(
                "ratio: {:.0}%",
                100.0 * result.kernel_events_per_s / result.bare_events_per_s
            );
            ExitCode::SUCCESS
        }
    }
}
