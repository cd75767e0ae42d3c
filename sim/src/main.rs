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
use cryptosphere_sim::expect::{evaluate, Check};
use cryptosphere_sim::metrics::Metric;
use cryptosphere_sim::output::write_run;
use cryptosphere_sim::progress::{ProgressLines, EVERY_S_DEFAULT};
use cryptosphere_sim::scenario::Scenario;
use cryptosphere_sim::world::{RunOutput, World};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (and, for check, every expectation held)
  1  an expectation failed (the seed and the command that replays it are printed)
  2  bad usage or a bad scenario file (the file, line, column and key are named)
  3  the output directory could not be written";

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
    /// Run scenarios and check their expectations; exit 1 if any fails.
    #[command(after_help = EXIT_CODES)]
    Check {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seed for every scenario (default: each scenario's).
        #[arg(long)]
        seed: Option<u64>,
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

/// One run of a sweep, written into a partial folder and renamed when complete, so that a
/// folder that exists is a finished run.
fn sweep_run(
    scenario: &Scenario,
    text: &str,
    cell: &str,
    seed: u64,
    dir: &Path,
) -> std::io::Result<()> {
    let output = World::new(scenario, cell, seed).run(&mut |_| {});
    let checks = evaluate(scenario, &output.summary);
    let partial = dir.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    write_run(&partial, &output, &checks, text)?;
    std::fs::rename(&partial, dir)
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
    use rayon::prelude::*;
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
            "wrote {} ({} runs); run them (e.g. parallel -j 2 < {}), then: cryptosphere-sim sweep --merge {}",
            plan.display(),
            commands.len(),
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
            if !sweep::is_done(&dir) {
                pending.push((c, *seed, dir));
            }
        }
    }
    let total = cells.len() * seeds.len();
    let threads = jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |j| j as usize,
    );
    eprintln!(
        "sweep: {} cells x {} seeds = {total} runs, {} done, {} to run, {threads} at once",
        cells.len(),
        seeds.len(),
        total - pending.len(),
        pending.len()
    );
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool,
        Err(e) => return fail(&format!("cannot start {threads} threads: {e}"), 2),
    };
    let started = std::time::Instant::now();
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let errors: Vec<String> = pool.install(|| {
        pending
            .par_iter()
            .filter_map(|(c, seed, dir)| {
                let cell = &cells[*c];
                let run_started = std::time::Instant::now();
                let result = sweep_run(&parsed[*c], &cell.text, &cell.id, *seed, dir);
                let n = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                eprintln!(
                    "[{n}/{}] {} seed {seed}: {:.1} s ({:.0} s since the start)",
                    pending.len(),
                    cell.id,
                    run_started.elapsed().as_secs_f64(),
                    started.elapsed().as_secs_f64()
                );
                result
                    .err()
                    .map(|e| format!("cannot write {}: {e}", dir.display()))
            })
            .collect()
    });
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        return ExitCode::from(3);
    }
    sweep_report(&[out.to_owned()], out)
}

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
        Command::Check { scenarios, seed } => {
            let mut failed = false;
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
