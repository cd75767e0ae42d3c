//! A tournament's outputs: every match's payoffs (`matches.csv`), the payoff matrix of the
//! round-robin (`payoffs.csv`), the invasions (`invasion.csv`), the ranking (`ranking.csv`),
//! the ecological variant (`ecology.csv`, `plots/ecology.svg`/`.png`) and `tournament.html`.
//! It reads `tournament.json` and each run's `summary.json`, nothing else. The payoff and
//! the ecological rule are defined in `docs/scenario-format.md` §8.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ReportError;
use crate::html::{inline_svg, number, Page};
use crate::plot::{png, svg, Prepared, PreparedLine};
use crate::run::Summary;
use crate::sweep::{json_file, write};

/// Every table a tournament may write (what golden files pin).
pub const TABLES: &[&str] = &[
    "matches.csv",
    "payoffs.csv",
    "invasion.csv",
    "ecology.csv",
    "ranking.csv",
];

/// Bytes in the payoff's unit (MB).
const MB: f64 = 1e6;
/// A strategy whose ecological share ends below this has died out.
pub const SURVIVAL_SHARE_MIN: f64 = 1e-3;

/// One match of `tournament.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMatch {
    pub id: String,
    /// `round-robin` or `invasion`.
    pub format: String,
    /// (strategy, peers); an invasion's invader first.
    pub sides: Vec<(String, u64)>,
    pub seeds: Vec<u64>,
}

/// What `tournament.json` says.
#[derive(Debug, Clone, PartialEq)]
pub struct TournamentPlan {
    pub tournament: String,
    pub base: String,
    pub seed: u64,
    pub cost: f64,
    pub strategies: Vec<String>,
    pub matches: Vec<PlannedMatch>,
}

impl TournamentPlan {
    pub fn load(dir: &Path) -> Result<TournamentPlan, ReportError> {
        let path = dir.join("tournament.json");
        let root = json_file(&path)?;
        let field = |name: &str, problem: &str| ReportError::Field {
            path: path.clone(),
            field: name.to_owned(),
            problem: problem.to_owned(),
        };
        let string = |v: &Value, name: &str| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| field(name, "must be a string"))
        };
        let unsigned = |v: &Value, name: &str| {
            v.as_u64()
                .ok_or_else(|| field(name, "must be a whole number, 0 or more"))
        };
        let strategies = root["strategies"]
            .as_array()
            .ok_or_else(|| field("strategies", "must be an array of strings"))?
            .iter()
            .map(|v| string(v, "strategies"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut matches = Vec::new();
        for m in root["matches"]
            .as_array()
            .ok_or_else(|| field("matches", "must be an array"))?
        {
            let sides = m["sides"]
                .as_array()
                .ok_or_else(|| field("matches.sides", "must be an array"))?
                .iter()
                .map(|s| {
                    let name = string(&s["strategy"], "matches.sides.strategy")?;
                    if !strategies.contains(&name) {
                        return Err(field("matches.sides.strategy", "names no strategy"));
                    }
                    Ok((name, unsigned(&s["peers"], "matches.sides.peers")?))
                })
                .collect::<Result<Vec<_>, ReportError>>()?;
            let format = string(&m["format"], "matches.format")?;
            let shape_ok = match format.as_str() {
                "round-robin" => (1..=2).contains(&sides.len()),
                "invasion" => sides.len() == 2,
                _ => return Err(field("matches.format", "must be round-robin or invasion")),
            };
            if !shape_ok {
                return Err(field("matches.sides", "has the wrong number of sides"));
            }
            matches.push(PlannedMatch {
                id: string(&m["id"], "matches.id")?,
                format,
                sides,
                seeds: m["seeds"]
                    .as_array()
                    .ok_or_else(|| field("matches.seeds", "must be an array of seeds"))?
                    .iter()
                    .map(|s| unsigned(s, "matches.seeds"))
                    .collect::<Result<Vec<_>, _>>()?,
            });
        }
        Ok(TournamentPlan {
            tournament: string(&root["tournament"], "tournament")?,
            base: string(&root["base"], "base")?,
            seed: unsigned(&root["seed"], "seed")?,
            cost: root["cost"]
                .as_f64()
                .ok_or_else(|| field("cost", "must be a number"))?,
            strategies,
            matches,
        })
    }
}

/// One side of one run: what its peers obtained and gave, per peer, in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct SideResult {
    pub strategy: String,
    pub peers: u64,
    pub storage_obtained: f64,
    pub storage_given: f64,
    pub bandwidth_received: f64,
    pub bandwidth_given: f64,
}

impl SideResult {
    /// The payoff (MB per peer): what it obtained (storage others kept alive for it, mean
    /// over the steady hours, plus the bytes others served it) less `cost` times what it
    /// gave (storage it held for others, plus the bytes it served).
    pub fn payoff(&self, cost: f64) -> f64 {
        let obtained = self.storage_obtained + self.bandwidth_received;
        let given = self.storage_given + self.bandwidth_given;
        (obtained - cost * given) / MB
    }
}

/// The folder of one run (the layout `cryptosphere-sim tournament` writes: a sweep's).
pub use crate::sweep::run_dir;

fn side_result(
    summary: &Summary,
    strategy: &str,
    peers: u64,
    path: &Path,
) -> Result<SideResult, ReportError> {
    let metrics = summary
        .groups
        .iter()
        .find(|(g, _)| g == strategy)
        .map(|(_, m)| m)
        .ok_or_else(|| ReportError::Field {
            path: path.to_owned(),
            field: format!("groups.{strategy}"),
            problem: "is missing".into(),
        })?;
    let get = |metric: &str| {
        metrics
            .iter()
            .find(|(m, _)| m == metric)
            .map(|(_, v)| *v)
            .ok_or_else(|| ReportError::Field {
                path: path.to_owned(),
                field: format!("groups.{strategy}.{metric}"),
                problem: "is missing".into(),
            })
    };
    Ok(SideResult {
        strategy: strategy.to_owned(),
        peers,
        storage_obtained: get("storage_obtained_mean")?,
        storage_given: get("storage_given_mean")?,
        bandwidth_received: get("bandwidth_received_per_peer")?,
        bandwidth_given: get("bandwidth_given_per_peer")?,
    })
}

/// A strategy's mean payoff per opponent: the payoff matrix of the round-robin. `None`
/// where no run of that pair exists.
fn payoff_matrix(
    plan: &TournamentPlan,
    results: &[(usize, u64, Vec<SideResult>)],
) -> Vec<Vec<Option<f64>>> {
    let n = plan.strategies.len();
    let index = |name: &str| plan.strategies.iter().position(|s| s == name);
    let mut sums = vec![vec![(0.0, 0u64); n]; n];
    for (m, _, sides) in results {
        if plan.matches[*m].format != "round-robin" {
            continue;
        }
        for side in sides {
            let Some(i) = index(&side.strategy) else {
                continue;
            };
            // Alone: its opponent is itself; in a pair, the other side.
            let opponent = sides
                .iter()
                .find(|o| o.strategy != side.strategy)
                .map_or(Some(i), |o| index(&o.strategy));
            if let Some(j) = opponent {
                sums[i][j].0 += side.payoff(plan.cost);
                sums[i][j].1 += 1;
            }
        }
    }
    sums.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|(sum, k)| (k > 0).then(|| sum / k as f64))
                .collect()
        })
        .collect()
}

/// The ecological variant: shares start equal; each generation a strategy's share is
/// multiplied by its fitness (its payoff against the population, `Σ_j p_j M[i][j]`, less
/// the matrix's lowest payoff so that fitness is never negative) and the shares are
/// normalised. Rows: generation 0 to `generations`.
pub fn ecology(matrix: &[Vec<Option<f64>>], generations: u64) -> Vec<Vec<f64>> {
    let n = matrix.len();
    let m: Vec<Vec<f64>> = matrix
        .iter()
        .map(|row| row.iter().map(|v| v.unwrap_or(0.0)).collect())
        .collect();
    let lowest = m.iter().flatten().copied().fold(f64::INFINITY, f64::min);
    let lowest = if lowest.is_finite() { lowest } else { 0.0 };
    let mut shares = vec![1.0 / n as f64; n];
    let mut rows = vec![shares.clone()];
    for _ in 0..generations {
        let fitness: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| shares[j] * (m[i][j] - lowest)).sum())
            .collect();
        let total: f64 = (0..n).map(|i| shares[i] * fitness[i]).sum();
        if total > 0.0 {
            for i in 0..n {
                shares[i] = shares[i] * fitness[i] / total;
            }
        }
        rows.push(shares.clone());
    }
    rows
}

/// What was written.
#[derive(Debug, Clone)]
pub struct TournamentReport {
    pub html: PathBuf,
    pub runs: usize,
    /// The CSV files written, by name (what golden files pin).
    pub tables: Vec<&'static str>,
    /// Strategies by rank, best first.
    pub ranking: Vec<String>,
}

/// One row of the ranking.
struct Rank {
    strategy: usize,
    /// Mean of its payoff-matrix row.
    payoff: Option<f64>,
    invasions_won: u64,
    invasions_repelled: u64,
    final_share: Option<f64>,
}

/// Reads the tournament in `dir` (every run must be there) and writes its tables and
/// report into it; `generations` adds the ecological variant.
pub fn write_tournament_report(
    dir: &Path,
    generations: Option<u64>,
) -> Result<TournamentReport, ReportError> {
    let plan = TournamentPlan::load(dir)?;
    let n = plan.strategies.len();
    let mut results: Vec<(usize, u64, Vec<SideResult>)> = Vec::new();
    for (m, planned) in plan.matches.iter().enumerate() {
        for seed in &planned.seeds {
            let path = run_dir(dir, &planned.id, *seed).join("summary.json");
            let summary = Summary::load(&path)?;
            let sides = planned
                .sides
                .iter()
                .map(|(s, peers)| side_result(&summary, s, *peers, &path))
                .collect::<Result<Vec<_>, _>>()?;
            results.push((m, *seed, sides));
        }
    }
    let cost = plan.cost;
    let mut tables = Vec::new();

    let mut matches_csv = String::from(
        "format,match,seed,strategy,peers,storage_obtained_mb,storage_given_mb,\
         bandwidth_received_mb,bandwidth_given_mb,payoff\n",
    );
    for (m, seed, sides) in &results {
        for side in sides {
            let _ = writeln!(
                matches_csv,
                "{},{},{seed},{},{},{:.6},{:.6},{:.6},{:.6},{:.6}",
                plan.matches[*m].format,
                plan.matches[*m].id,
                side.strategy,
                side.peers,
                side.storage_obtained / MB,
                side.storage_given / MB,
                side.bandwidth_received / MB,
                side.bandwidth_given / MB,
                side.payoff(cost)
            );
        }
    }
    write(&dir.join("matches.csv"), &matches_csv)?;
    tables.push("matches.csv");

    let has_round_robin = plan.matches.iter().any(|m| m.format == "round-robin");
    let matrix = payoff_matrix(&plan, &results);
    let cell = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.6}"));
    if has_round_robin {
        let mut csv = format!("strategy,{}\n", plan.strategies.join(","));
        for (i, row) in matrix.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|v| cell(*v)).collect();
            let _ = writeln!(csv, "{},{}", plan.strategies[i], cells.join(","));
        }
        write(&dir.join("payoffs.csv"), &csv)?;
        tables.push("payoffs.csv");
    }

    // Invasions: the invader's and the residents' mean payoff over seeds.
    let mut invasions: BTreeMap<(usize, usize), (f64, f64, u64)> = BTreeMap::new();
    let index = |name: &str| plan.strategies.iter().position(|s| s == name).unwrap_or(0);
    for (m, _, sides) in &results {
        if plan.matches[*m].format != "invasion" || sides.len() != 2 {
            continue;
        }
        let key = (index(&sides[0].strategy), index(&sides[1].strategy));
        let entry = invasions.entry(key).or_insert((0.0, 0.0, 0));
        entry.0 += sides[0].payoff(cost);
        entry.1 += sides[1].payoff(cost);
        entry.2 += 1;
    }
    let invasion_rows: Vec<(usize, usize, f64, f64)> = invasions
        .iter()
        .map(|(&(a, b), &(x, y, k))| (a, b, x / k as f64, y / k as f64))
        .collect();
    if !invasion_rows.is_empty() {
        let mut csv =
            String::from("invader,resident,invader_payoff,resident_payoff,advantage,invades\n");
        for (a, b, x, y) in &invasion_rows {
            let _ = writeln!(
                csv,
                "{},{},{x:.6},{y:.6},{:.6},{}",
                plan.strategies[*a],
                plan.strategies[*b],
                x - y,
                x > y
            );
        }
        write(&dir.join("invasion.csv"), &csv)?;
        tables.push("invasion.csv");
    }

    let shares = generations.map(|g| ecology(&matrix, g));
    if shares.is_none() {
        // A run with --generations into this folder before left these: not this run's.
        for stale in ["ecology.csv", "plots/ecology.svg", "plots/ecology.png"] {
            let path = dir.join(stale);
            if path.is_file() {
                std::fs::remove_file(&path).map_err(|source| ReportError::Write {
                    path: path.clone(),
                    source,
                })?;
            }
        }
    }
    if let Some(rows) = &shares {
        let mut csv = format!("generation,{}\n", plan.strategies.join(","));
        for (g, row) in rows.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:.6}")).collect();
            let _ = writeln!(csv, "{g},{}", cells.join(","));
        }
        write(&dir.join("ecology.csv"), &csv)?;
        tables.push("ecology.csv");
    }

    let mut ranks: Vec<Rank> = (0..n)
        .map(|i| {
            let row: Vec<f64> = matrix[i].iter().flatten().copied().collect();
            Rank {
                strategy: i,
                payoff: (!row.is_empty()).then(|| row.iter().sum::<f64>() / row.len() as f64),
                invasions_won: invasion_rows
                    .iter()
                    .filter(|(a, _, x, y)| *a == i && x > y)
                    .count() as u64,
                invasions_repelled: invasion_rows
                    .iter()
                    .filter(|(_, b, x, y)| *b == i && x <= y)
                    .count() as u64,
                final_share: shares.as_ref().and_then(|r| r.last()).map(|r| r[i]),
            }
        })
        .collect();
    // Best mean payoff first; then invasions won and repelled; then the file's order.
    ranks.sort_by(|p, q| {
        let payoff = |r: &Rank| r.payoff.unwrap_or(f64::NEG_INFINITY);
        payoff(q)
            .total_cmp(&payoff(p))
            .then(q.invasions_won.cmp(&p.invasions_won))
            .then(q.invasions_repelled.cmp(&p.invasions_repelled))
            .then(p.strategy.cmp(&q.strategy))
    });
    let mut csv =
        String::from("rank,strategy,payoff_mean,invasions_won,invasions_repelled,final_share\n");
    for (r, rank) in ranks.iter().enumerate() {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{}",
            r + 1,
            plan.strategies[rank.strategy],
            cell(rank.payoff),
            rank.invasions_won,
            rank.invasions_repelled,
            rank.final_share
                .map_or_else(String::new, |s| format!("{s:.6}"))
        );
    }
    write(&dir.join("ranking.csv"), &csv)?;
    tables.push("ranking.csv");

    let html = dir.join("tournament.html");
    let page = page(
        &plan,
        &results,
        &matrix,
        &invasion_rows,
        &ranks,
        shares.as_deref(),
        dir,
    )?;
    write(&html, &page)?;
    Ok(TournamentReport {
        html,
        runs: results.len(),
        tables,
        ranking: ranks
            .iter()
            .map(|r| plan.strategies[r.strategy].clone())
            .collect(),
    })
}

/// The ecological plot: each strategy's share against the generation.
fn ecology_plot(plan: &TournamentPlan, rows: &[Vec<f64>]) -> Prepared {
    let lines = plan
        .strategies
        .iter()
        .enumerate()
        .map(|(i, name)| PreparedLine {
            label: name.clone(),
            colour: i,
            dashed: false,
            points: rows
                .iter()
                .enumerate()
                .map(|(g, row)| (g as f64, row[i]))
                .collect(),
        })
        .collect();
    Prepared {
        id: "ecology".into(),
        title: "Ecological tournament: population shares".into(),
        x_axis: "generation (count)".into(),
        y_axis: "population share (share, 0 to 1)".into(),
        y_range: (0.0, 1.0),
        x_range: (0.0, (rows.len().saturating_sub(1)).max(1) as f64),
        lines,
    }
}

#[allow(clippy::too_many_arguments)]
fn page(
    plan: &TournamentPlan,
    results: &[(usize, u64, Vec<SideResult>)],
    matrix: &[Vec<Option<f64>>],
    invasions: &[(usize, usize, f64, f64)],
    ranks: &[Rank],
    shares: Option<&[Vec<f64>]>,
    dir: &Path,
) -> Result<String, ReportError> {
    let name = |i: usize| plan.strategies[i].clone();
    let shown = |v: Option<f64>| v.map_or_else(String::new, number);
    let mut page = Page::default();
    page.heading(1, &format!("Cryptosphere tournament: {}", plan.tournament));
    page.paragraph(&format!(
        "{} strategies on {} (tournament seed {}), {} runs. Payoff, per peer, in MB: storage \
         others kept for it (mean over the steady hours) plus bytes others served it, less {} × \
         (storage it held for others plus bytes it served).",
        plan.strategies.len(),
        plan.base,
        plan.seed,
        results.len(),
        plan.cost
    ));
    page.heading(2, "Ranking");
    let mut header: Vec<String> = ["rank", "strategy", "mean payoff (MB)", "invasions won"]
        .map(String::from)
        .to_vec();
    header.push("invasions repelled".into());
    if shares.is_some() {
        header.push("final ecological share".into());
    }
    let rows: Vec<Vec<(String, &str)>> = ranks
        .iter()
        .enumerate()
        .map(|(r, rank)| {
            let mut row = vec![
                ((r + 1).to_string(), ""),
                (name(rank.strategy), ""),
                (shown(rank.payoff), ""),
                (rank.invasions_won.to_string(), ""),
                (rank.invasions_repelled.to_string(), ""),
            ];
            if let Some(s) = rank.final_share {
                if s < SURVIVAL_SHARE_MIN {
                    row.push((format!("died out ({s:.1e})"), "fail"));
                } else {
                    row.push((format!("{s:.4}"), ""));
                }
            }
            row
        })
        .collect();
    page.table("ranking", &header, &rows);
    if matrix.iter().flatten().any(Option::is_some) {
        page.heading(2, "Payoff matrix (round-robin)");
        page.paragraph(
            "Row: the strategy whose peers' mean payoff (MB per peer) is shown; column: the \
             strategy it met at 50/50 (on the diagonal: alone).",
        );
        let mut header = vec!["strategy".to_owned()];
        header.extend(plan.strategies.iter().map(|s| format!("vs {s}")));
        let rows: Vec<Vec<(String, &str)>> = matrix
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut cells = vec![(name(i), "")];
                cells.extend(row.iter().map(|v| (shown(*v), "")));
                cells
            })
            .collect();
        page.table("payoffs", &header, &rows);
    }
    if !invasions.is_empty() {
        page.heading(2, "Invasions");
        page.paragraph("The invader is a minority among residents; it invades when its payoff is above theirs.");
        let rows: Vec<Vec<(String, &str)>> = invasions
            .iter()
            .map(|(a, b, x, y)| {
                vec![
                    (name(*a), ""),
                    (name(*b), ""),
                    (number(*x), ""),
                    (number(*y), ""),
                    (if x > y { "yes" } else { "no" }.to_owned(), ""),
                ]
            })
            .collect();
        page.table(
            "invasion",
            &[
                "invader",
                "resident",
                "invader payoff (MB)",
                "resident payoff (MB)",
                "invades",
            ]
            .map(String::from),
            &rows,
        );
    }
    if let Some(rows) = shares {
        page.heading(2, "Ecological variant");
        let plot = ecology_plot(plan, rows);
        let text = svg(&plot)?;
        let plots = dir.join("plots");
        write(&plots.join("ecology.svg"), &text)?;
        png(&plot, &plots.join("ecology.png"))?;
        page.raw(&format!(
            "<div class=\"plots\"><figure id=\"plot-ecology\">{}<figcaption>Shares over {} \
             generations (<a href=\"plots/ecology.svg\">SVG</a>, <a href=\"plots/ecology.png\">PNG</a>)\
             </figcaption></figure></div>",
            inline_svg(&text),
            rows.len().saturating_sub(1)
        ));
    }
    page.heading(2, "Matches");
    let rows: Vec<Vec<(String, &str)>> = results
        .iter()
        .map(|(m, seed, sides)| {
            let planned = &plan.matches[*m];
            let who: Vec<String> = sides
                .iter()
                .map(|s| {
                    format!(
                        "{} × {}: {} MB",
                        s.strategy,
                        s.peers,
                        number(s.payoff(plan.cost))
                    )
                })
                .collect();
            vec![
                (planned.id.clone(), ""),
                (seed.to_string(), ""),
                (who.join("; "), ""),
                (
                    format!(
                        "cryptosphere-sim run scenarios/{id}.toml --seed {seed} --out replay/{id}",
                        id = planned.id
                    ),
                    "",
                ),
            ]
        })
        .collect();
    page.table(
        "matches",
        &["match", "seed", "payoffs", "replay (in this folder)"].map(String::from),
        &rows,
    );
    Ok(page.finish(&format!("tournament {}", plan.tournament)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_payoff_is_what_a_peer_obtained_less_cost_times_what_it_gave() {
        let side = SideResult {
            strategy: "a".into(),
            peers: 1,
            storage_obtained: 3e6,
            storage_given: 4e6,
            bandwidth_received: 1e6,
            bandwidth_given: 2e6,
        };
        assert!((side.payoff(0.5) - (4.0 - 3.0)).abs() < 1e-12);
        assert!((side.payoff(0.0) - 4.0).abs() < 1e-12);
    }

    #[test]
    fn the_ecology_grows_the_fitter_strategy_and_keeps_shares_summing_to_one() {
        // Strategy 0 earns 3 against anyone, strategy 1 earns 1.
        let matrix = vec![vec![Some(3.0), Some(3.0)], vec![Some(1.0), Some(1.0)]];
        let rows = ecology(&matrix, 20);
        assert_eq!(rows[0], [0.5, 0.5]);
        for row in &rows {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{row:?}");
        }
        // Shifted by the lowest payoff (1), strategy 1's fitness is 0: gone after one step.
        assert_eq!(rows[1], [1.0, 0.0]);
        // A dilemma: defecting (1) beats cooperating (0) against both, yet cooperation pays
        // more in a population of its own; defection takes over, step by step.
        let dilemma = vec![vec![Some(3.0), Some(0.0)], vec![Some(5.0), Some(1.0)]];
        let rows = ecology(&dilemma, 50);
        assert!(rows[1][1] > rows[0][1] && rows[1][1] < 1.0, "{:?}", rows[1]);
        assert!(rows[50][1] > 0.99, "{:?}", rows[50]);
    }
}
