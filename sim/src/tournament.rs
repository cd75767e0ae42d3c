//! Tournaments: trade strategies (presets of `[group.strategy]`) played against each other on
//! a base scenario. This module reads the tournament file, lays out its matches (one scenario
//! text each, checked like any scenario file) and derives each run's seed from the
//! tournament's seed and the match. Running the matches is the binary's; payoffs, the
//! ranking, the payoff matrix, the ecological variant and the report are
//! `cryptosphere-analysis`'s (`tournament`). Documented in `docs/scenario-format.md` §8.

// Host code: it reads the tournament file and its base scenario on the user's behalf.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::scenario::{Scenario, ScenarioError};

/// Limits, so that a typo cannot ask for a million runs.
pub const STRATEGIES_MAX: usize = 16;
pub const SEEDS_MAX: u64 = 1_000;
pub const GENERATIONS_MAX: u64 = 100_000;
/// Longest strategy name (it names groups, folders and CSV columns).
pub const NAME_LEN_MAX: usize = 32;
/// Invasion's default share of the invader.
pub const MINORITY_DEFAULT: f64 = 0.1;
/// The payoff's default weight of what a peer gives against what it obtains.
pub const COST_DEFAULT: f64 = 0.5;

/// Why a tournament file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TournamentError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {key}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
    /// The base scenario is not a usable scenario file.
    #[error("{}: base: {source}", path.display())]
    Base {
        path: PathBuf,
        source: ScenarioError,
    },
    /// A strategy's preset makes a scenario the simulator refuses.
    #[error("{}: strategy {name:?}: preset: {problem}", path.display())]
    Preset {
        path: PathBuf,
        name: String,
        problem: String,
    },
}

/// How strategies meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Every pair of strategies at 50/50, and each strategy alone.
    RoundRobin,
    /// Each strategy as a minority (`minority`) in a population of each other.
    Invasion,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::RoundRobin => "round-robin",
            Format::Invasion => "invasion",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTournament {
    base: String,
    seed: u64,
    #[serde(default = "one")]
    seeds: u64,
    formats: Option<Vec<String>>,
    minority: Option<f64>,
    cost: Option<f64>,
    #[serde(rename = "strategy", default)]
    strategies: Vec<RawStrategy>,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStrategy {
    name: String,
    #[serde(default)]
    preset: toml::Table,
}

/// A strategy: a name and the `[group.strategy]` keys it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    pub name: String,
    pub preset: toml::Table,
}

/// A checked tournament file.
#[derive(Debug, Clone)]
pub struct Tournament {
    pub path: PathBuf,
    /// The base scenario's path (relative paths are from the tournament file's folder).
    pub base: PathBuf,
    base_text: String,
    pub seed: u64,
    /// Runs per match.
    pub seeds: u64,
    pub formats: Vec<Format>,
    pub minority: f64,
    pub cost: f64,
    pub strategies: Vec<Strategy>,
    /// Peers in every match: the base's one group's `count`.
    pub population: u32,
}

/// One side of a match: a strategy and how many peers play it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    /// Index into [`Tournament::strategies`].
    pub strategy: usize,
    pub peers: u32,
}

/// One match: who meets, the scenario it runs and the seed of each run.
#[derive(Debug, Clone)]
pub struct Match {
    /// `rr-A-B` (round-robin; `rr-A-A`: A alone) or `inv-A-into-B` (A invades B).
    pub id: String,
    pub format: Format,
    pub sides: Vec<Side>,
    /// The scenario text (what `runs/ID/` ran, kept as `scenarios/ID.toml`).
    pub text: String,
    pub scenario: Scenario,
    pub seeds: Vec<u64>,
}

/// The seed of run `index` of match `id`: the first 8 bytes (little-endian) of
/// SHA-256("cryptosphere tournament" ‖ 0 ‖ tournament seed (8 bytes LE) ‖ id ‖ 0 ‖ index
/// (8 bytes LE)). It depends on nothing else, so neither the order nor the parallelism of
/// the runs can change it.
pub fn match_seed(tournament_seed: u64, id: &str, index: u64) -> u64 {
    let mut hash = Sha256::new();
    hash.update(b"cryptosphere tournament\0");
    hash.update(tournament_seed.to_le_bytes());
    hash.update(id.as_bytes());
    hash.update([0]);
    hash.update(index.to_le_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

fn usable_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > NAME_LEN_MAX {
        return Err(format!(
            "must be 1 to {NAME_LEN_MAX} characters, not {}",
            name.chars().count()
        ));
    }
    // No '-': it separates the names in a match's id (`rr-A-B`), which must be unique.
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "{name:?} may hold only a-z, 0-9 and '_' (it names groups, folders and columns, and '-' joins names in match ids)"
        ));
    }
    if name == "all" {
        return Err("\"all\" names every group in the outputs; choose another".into());
    }
    Ok(())
}

impl Tournament {
    pub fn load(path: &Path) -> Result<Tournament, TournamentError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| TournamentError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let text = read(path)?;
        let raw: RawTournament = toml::from_str(&text).map_err(|e| {
            let (line, column, key, message) = crate::scenario::located(&text, &e);
            TournamentError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: match key {
                    Some(key) => format!("{key}: {message}"),
                    None => message,
                },
            }
        })?;
        let invalid = |key: &str, problem: String| TournamentError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            problem,
        };
        if !(1..=SEEDS_MAX).contains(&raw.seeds) {
            return Err(invalid(
                "seeds",
                format!("must be 1 to {SEEDS_MAX}, not {}", raw.seeds),
            ));
        }
        let formats = match &raw.formats {
            None => vec![Format::RoundRobin, Format::Invasion],
            Some(names) => {
                let mut formats = Vec::new();
                for name in names {
                    let format = match name.as_str() {
                        "round-robin" => Format::RoundRobin,
                        "invasion" => Format::Invasion,
                        other => {
                            return Err(invalid(
                                "formats",
                                format!("{other:?} is not a format (round-robin, invasion)"),
                            ))
                        }
                    };
                    if formats.contains(&format) {
                        return Err(invalid("formats", format!("{name:?} is given twice")));
                    }
                    formats.push(format);
                }
                if formats.is_empty() {
                    return Err(invalid("formats", "names no format".into()));
                }
                formats
            }
        };
        let minority = raw.minority.unwrap_or(MINORITY_DEFAULT);
        if !(minority > 0.0 && minority < 0.5) {
            return Err(invalid(
                "minority",
                format!("must be more than 0 and less than 0.5, not {minority}"),
            ));
        }
        let cost = raw.cost.unwrap_or(COST_DEFAULT);
        if !(0.0..=100.0).contains(&cost) {
            return Err(invalid("cost", format!("must be 0 to 100, not {cost}")));
        }
        if !(2..=STRATEGIES_MAX).contains(&raw.strategies.len()) {
            return Err(invalid(
                "strategy",
                format!(
                    "a tournament needs 2 to {STRATEGIES_MAX} [[strategy]] entries, not {}",
                    raw.strategies.len()
                ),
            ));
        }
        let mut strategies: Vec<Strategy> = Vec::new();
        for (i, s) in raw.strategies.into_iter().enumerate() {
            usable_name(&s.name).map_err(|p| invalid(&format!("strategy[{i}].name"), p))?;
            if strategies.iter().any(|t| t.name == s.name) {
                return Err(invalid(
                    &format!("strategy[{i}].name"),
                    format!("{:?} is used twice", s.name),
                ));
            }
            strategies.push(Strategy {
                name: s.name,
                preset: s.preset,
            });
        }
        let base = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&raw.base);
        let base_text = std::fs::read_to_string(&base).map_err(|e| TournamentError::Invalid {
            path: path.to_owned(),
            key: "base".into(),
            problem: format!("cannot read {}: {e}", base.display()),
        })?;
        let scenario =
            Scenario::parse(&base_text, &base.display().to_string()).map_err(|source| {
                TournamentError::Base {
                    path: path.to_owned(),
                    source,
                }
            })?;
        if scenario.groups.len() != 1 {
            return Err(invalid(
                "base",
                format!(
                    "{} must have exactly one [[group]] (the template of every side), not {}",
                    base.display(),
                    scenario.groups.len()
                ),
            ));
        }
        let population = scenario.groups[0].count;
        let invader = invader_peers(population, minority);
        if population < 2 || invader >= population {
            return Err(invalid(
                "base",
                format!(
                    "{}: the group's count ({population}) must leave peers on both sides of every match",
                    base.display()
                ),
            ));
        }
        let tournament = Tournament {
            path: path.to_owned(),
            base,
            base_text,
            seed: raw.seed,
            seeds: raw.seeds,
            formats,
            minority,
            cost,
            strategies,
            population,
        };
        // Each preset alone first, so that a refusal names the strategy that caused it.
        for (i, strategy) in tournament.strategies.iter().enumerate() {
            let text = tournament.scenario_text(&[Side {
                strategy: i,
                peers: population,
            }])?;
            Scenario::parse(&text, &strategy.name).map_err(|e| TournamentError::Preset {
                path: path.to_owned(),
                name: strategy.name.clone(),
                problem: crate::sweep::problem_of(&e),
            })?;
        }
        Ok(tournament)
    }

    /// The base scenario with its one group replaced by one group per side (the template's
    /// keys, the side's strategy name and count, the template's `strategy` with the preset's
    /// keys over it; `arrivals` split in proportion) and its `[[expect]]` left out (they
    /// name the template's group).
    fn scenario_text(&self, sides: &[Side]) -> Result<String, TournamentError> {
        let invalid = |problem: String| TournamentError::Invalid {
            path: self.path.clone(),
            key: "base".into(),
            problem,
        };
        let mut root: toml::Table =
            toml::from_str(&self.base_text).map_err(|e| invalid(e.message().to_owned()))?;
        root.remove("expect");
        let template = match root.get("group") {
            Some(toml::Value::Array(groups)) => match groups.first() {
                Some(toml::Value::Table(t)) => t.clone(),
                _ => return Err(invalid("[[group]] is not a table".into())),
            },
            _ => return Err(invalid("has no [[group]]".into())),
        };
        let arrivals = template
            .get("arrivals")
            .and_then(toml::Value::as_integer)
            .unwrap_or(0);
        let population = i64::from(self.population);
        let mut given = 0;
        let mut groups = Vec::with_capacity(sides.len());
        for (n, side) in sides.iter().enumerate() {
            let strategy = &self.strategies[side.strategy];
            let mut group = template.clone();
            group.insert("name".into(), toml::Value::String(strategy.name.clone()));
            group.insert("count".into(), toml::Value::Integer(i64::from(side.peers)));
            if arrivals > 0 {
                let share = if n + 1 == sides.len() {
                    arrivals - given
                } else {
                    arrivals * i64::from(side.peers) / population
                };
                given += share;
                group.insert("arrivals".into(), toml::Value::Integer(share));
            }
            let mut knobs = match group.remove("strategy") {
                Some(toml::Value::Table(t)) => t,
                _ => toml::Table::new(),
            };
            for (key, value) in &strategy.preset {
                knobs.insert(key.clone(), value.clone());
            }
            group.insert("strategy".into(), toml::Value::Table(knobs));
            groups.push(toml::Value::Table(group));
        }
        root.insert("group".into(), toml::Value::Array(groups));
        let header = format!(
            "# Match of tournament {}: {}\n",
            self.path.display(),
            sides
                .iter()
                .map(|s| format!("{} x {}", self.strategies[s.strategy].name, s.peers))
                .collect::<Vec<_>>()
                .join(", ")
        );
        toml::to_string(&root)
            .map(|body| header + &body)
            .map_err(|e| invalid(e.to_string()))
    }

    /// Every match, in a fixed order: round-robin pairs (i ≤ j, by the file's order), then
    /// invasions (invader, resident), each with its scenario checked and its seeds.
    pub fn matches(&self) -> Result<Vec<Match>, TournamentError> {
        let n = self.strategies.len();
        let name = |i: usize| &self.strategies[i].name;
        let mut layout: Vec<(String, Format, Vec<Side>)> = Vec::new();
        for format in &self.formats {
            match format {
                Format::RoundRobin => {
                    for a in 0..n {
                        for b in a..n {
                            let sides = if a == b {
                                vec![Side {
                                    strategy: a,
                                    peers: self.population,
                                }]
                            } else {
                                let half = self.population / 2;
                                vec![
                                    Side {
                                        strategy: a,
                                        peers: half,
                                    },
                                    Side {
                                        strategy: b,
                                        peers: self.population - half,
                                    },
                                ]
                            };
                            layout.push((format!("rr-{}-{}", name(a), name(b)), *format, sides));
                        }
                    }
                }
                Format::Invasion => {
                    let invader = invader_peers(self.population, self.minority);
                    for a in 0..n {
                        for b in (0..n).filter(|b| *b != a) {
                            let sides = vec![
                                Side {
                                    strategy: a,
                                    peers: invader,
                                },
                                Side {
                                    strategy: b,
                                    peers: self.population - invader,
                                },
                            ];
                            layout.push((
                                format!("inv-{}-into-{}", name(a), name(b)),
                                *format,
                                sides,
                            ));
                        }
                    }
                }
            }
        }
        layout
            .into_iter()
            .map(|(id, format, sides)| {
                let text = self.scenario_text(&sides)?;
                let scenario =
                    Scenario::parse(&text, &id).map_err(|e| TournamentError::Invalid {
                        path: self.path.clone(),
                        key: format!("match {id}"),
                        problem: crate::sweep::problem_of(&e),
                    })?;
                let seeds = (0..self.seeds)
                    .map(|i| match_seed(self.seed, &id, i))
                    .collect();
                Ok(Match {
                    id,
                    format,
                    sides,
                    text,
                    scenario,
                    seeds,
                })
            })
            .collect()
    }
}

/// `tournament.json`: what the tournament is (for resuming and for the tables and report,
/// which `cryptosphere-analysis` writes from it and the runs' summaries). A folder holding
/// another tournament's plan is refused.
pub fn plan_json(tournament: &Tournament, matches: &[Match]) -> String {
    let mut base_hash = Sha256::new();
    base_hash.update(tournament.base_text.as_bytes());
    let base_sha256: String = base_hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let value = serde_json::json!({
        "tournament": tournament.path.display().to_string(),
        "base": tournament.base.display().to_string(),
        "base_sha256": base_sha256,
        "seed": tournament.seed,
        "seeds_per_match": tournament.seeds,
        "minority": tournament.minority,
        "cost": tournament.cost,
        "strategies": tournament.strategies.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "presets": tournament
            .strategies
            .iter()
            .map(|s| toml::to_string(&s.preset).unwrap_or_default())
            .collect::<Vec<_>>(),
        "matches": matches
            .iter()
            .map(|m| serde_json::json!({
                "id": m.id,
                "format": m.format.name(),
                "sides": m.sides.iter().map(|s| serde_json::json!({
                    "strategy": tournament.strategies[s.strategy].name,
                    "peers": s.peers,
                })).collect::<Vec<_>>(),
                "seeds": m.seeds,
            }))
            .collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

/// Writes `tournament.json` and `scenarios/ID.toml` for every match into `out`; refuses a
/// folder that holds another tournament.
pub fn write_plan(out: &Path, tournament: &Tournament, matches: &[Match]) -> Result<(), String> {
    let plan = plan_json(tournament, matches);
    let path = out.join("tournament.json");
    // What the tournament is, whatever paths name its files.
    let identity = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|mut v| {
                let object = v.as_object_mut()?;
                object.remove("tournament");
                object.remove("base");
                Some(v)
            })
    };
    if let Ok(existing) = std::fs::read_to_string(&path) {
        match identity(&existing) {
            Some(held) if Some(&held) == identity(&plan).as_ref() => {}
            Some(_) => {
                return Err(format!(
                    "{} holds another tournament (or this one before its seeds, minority, cost, strategies, presets or base changed); use another --out",
                    out.display()
                ))
            }
            None => {
                return Err(format!(
                    "{} is not a tournament plan; use another --out",
                    path.display()
                ))
            }
        }
    }
    let write = |path: &Path, text: &str| {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot write {}: {e}", parent.display()))?;
        }
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    for m in matches {
        write(&match_scenario(out, &m.id), &m.text)?;
    }
    write(&path, &plan)
}

/// Peers of the invader: `minority` of the population, at least 1.
fn invader_peers(population: u32, minority: f64) -> u32 {
    ((f64::from(population) * minority).round() as u32).max(1)
}

/// The folder of one run of a tournament: a sweep's layout, by match id.
pub use crate::sweep::run_dir;

/// The scenario file of a match.
pub fn match_scenario(out: &Path, id: &str) -> PathBuf {
    out.join("scenarios").join(format!("{id}.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_match_seed_depends_on_the_tournament_seed_the_match_and_the_index_only() {
        let a = match_seed(7, "rr-a-b", 0);
        assert_eq!(a, match_seed(7, "rr-a-b", 0));
        assert_ne!(a, match_seed(8, "rr-a-b", 0));
        assert_ne!(a, match_seed(7, "rr-a-c", 0));
        assert_ne!(a, match_seed(7, "rr-a-b", 1));
        // The first 8 bytes of the hash, little-endian: stable across releases.
        let mut hash = Sha256::new();
        hash.update(b"cryptosphere tournament\0");
        hash.update(7u64.to_le_bytes());
        hash.update(b"rr-a-b\0");
        hash.update(0u64.to_le_bytes());
        let digest = hash.finalize();
        assert_eq!(
            a,
            u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
        );
    }

    #[test]
    fn names_that_would_break_folders_or_columns_are_refused() {
        assert!(usable_name("stingy_0_5").is_ok());
        for bad in [
            "",
            "all",
            "Stingy",
            "a b",
            "a,b",
            "a/b",
            "a-b",
            &"x".repeat(33),
        ] {
            assert!(usable_name(bad).is_err(), "{bad:?}");
        }
    }
}
