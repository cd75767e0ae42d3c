//! Many runs at once (a sweep's cells, a tournament's matches): a pool of threads, each run
//! single-threaded and deterministic, each written into its folder through a `.partial`
//! folder renamed when complete (so a folder that exists is a finished run, and a batch
//! that was stopped resumes where it was).

// Host code: it writes the runs' folders on the user's behalf.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::expect::evaluate;
use crate::output::write_run;
use crate::scenario::Scenario;
use crate::world::World;

/// One run to make.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// Names the run in the trace and in progress lines (a cell or match id).
    pub label: &'a str,
    pub scenario: &'a Scenario,
    /// The scenario file as run, kept beside the output.
    pub text: &'a str,
    pub seed: u64,
    pub dir: PathBuf,
}

/// Whether a run has finished: `run` writes its summary last.
pub fn is_done(dir: &Path) -> bool {
    dir.join("summary.json").is_file()
}

fn run_one(job: &Job<'_>) -> std::io::Result<()> {
    let output = World::new(job.scenario, job.label, job.seed).run(&mut |_| {});
    let checks = evaluate(job.scenario, &output.summary);
    let partial = job.dir.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    write_run(&partial, &output, &checks, job.text)?;
    // A folder without a summary is an unfinished run (a planned run stopped, a summary
    // deleted): this run replaces it.
    if job.dir.exists() {
        std::fs::remove_dir_all(&job.dir)?;
    }
    std::fs::rename(&partial, &job.dir)
}

/// The number of threads `--jobs` asks for, or one per core.
pub fn threads(jobs: Option<u64>) -> usize {
    jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |j| usize::try_from(j).unwrap_or(1),
    )
}

/// Runs `jobs` on `threads` threads, a line per finished run on stderr, and an `error:`
/// line there for each run that could not be written (then `Err` with their number).
pub fn run_all(jobs: &[Job<'_>], threads: usize) -> Result<(), usize> {
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("error: cannot start {threads} threads: {e}");
            return Err(1);
        }
    };
    let started = std::time::Instant::now();
    let finished = AtomicUsize::new(0);
    let errors: Vec<String> = pool.install(|| {
        jobs.par_iter()
            .filter_map(|job| {
                let run_started = std::time::Instant::now();
                let result = run_one(job);
                let n = finished.fetch_add(1, Ordering::Relaxed) + 1;
                eprintln!(
                    "[{n}/{}] {} seed {}: {:.1} s ({:.0} s since the start)",
                    jobs.len(),
                    job.label,
                    job.seed,
                    run_started.elapsed().as_secs_f64(),
                    started.elapsed().as_secs_f64()
                );
                result
                    .err()
                    .map(|e| format!("cannot write {}: {e}", job.dir.display()))
            })
            .collect()
    });
    for e in &errors {
        eprintln!("error: {e}");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.len())
    }
}
