//! `cryptosphere node contracts`: a running node's strategy, contracts and ledgers, and
//! `cryptosphere peers`: the peers it knows, their scores and its refusals; as the API's
//! JSON (`--json`) or as tables. It reads what the node says; it computes nothing.

use std::io::Write;

use serde_json::Value;

use super::node::{client_code, ContractsArgs};
use super::{Failure, ENVIRONMENT};
use crate::net::client;

#[derive(Debug, thiserror::Error)]
#[error("the node answered with something other than its {what}: {reason}")]
struct NotTheView {
    what: &'static str,
    reason: String,
}

/// Bytes in the largest binary unit that keeps a whole number in front.
fn size(bytes: &Value) -> String {
    let Some(bytes) = bytes.as_u64() else {
        return "unlimited".to_owned();
    };
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A peer id, shortened the way `chain show` shortens counterparties.
fn short(peer: &Value) -> String {
    let text = peer.as_str().unwrap_or("?");
    format!("{}…", text.get(..12).unwrap_or(text))
}

fn render(value: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    let s = &value["strategy"];
    let adversary = match s["adversary"].as_array() {
        Some(names) if !names.is_empty() => names
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".to_owned(),
    };
    writeln!(out, "peer {}", value["peer"].as_str().unwrap_or("?"))?;
    writeln!(
        out,
        "strategy: altruism {}, adversary {adversary}; offers {}; a stranger may store {} and \
         download {}; credit {}; contract term {} s; audits every {} s",
        s["altruism"],
        size(&s["offer_bytes"]),
        size(&s["stranger_storage_bytes"]),
        size(&s["bandwidth_allowance_bytes"]),
        size(&s["credit_bytes"]),
        s["contract_term_s"],
        s["audit_interval_s"],
    )?;
    let empty = Vec::new();
    let contracts = value["contracts"].as_array().unwrap_or(&empty);
    writeln!(out, "\ncontracts: {}", contracts.len())?;
    if !contracts.is_empty() {
        writeln!(
            out,
            "{:<14} {:>11} {:>11} {:>13} {:>13} {:>8} {:>9}",
            "peer", "for us", "for them", "held for us", "held for them", "term s", "ends in s"
        )?;
    }
    for c in contracts {
        writeln!(
            out,
            "{:<14} {:>11} {:>11} {:>13} {:>13} {:>8} {:>9}",
            short(&c["peer"]),
            size(&c["for_us_bytes"]),
            size(&c["for_them_bytes"]),
            size(&c["held_for_us_bytes"]),
            size(&c["held_for_them_bytes"]),
            c["term_s"],
            c["term_ends_in_s"],
        )?;
    }
    let ledgers = value["ledgers"].as_array().unwrap_or(&empty);
    writeln!(out, "\nledgers: {}", ledgers.len())?;
    if !ledgers.is_empty() {
        writeln!(
            out,
            "{:<14} {:>12} {:>12} {:>11} {:>11} {:>11} {:>11} {:>9} {:>6} {:>11} {:<5}",
            "peer",
            "creds given",
            "creds recv",
            "bw given",
            "bw recv",
            "held for us",
            "held for it",
            "audits ok",
            "failed",
            "kept/broken",
            "disq"
        )?;
    }
    for l in ledgers {
        writeln!(
            out,
            "{:<14} {:>12} {:>12} {:>11} {:>11} {:>11} {:>11} {:>9} {:>6} {:>11} {:<5}",
            short(&l["peer"]),
            l["creds_given"],
            l["creds_received"],
            size(&l["bandwidth_given_bytes"]),
            size(&l["bandwidth_received_bytes"]),
            size(&l["held_for_us_bytes"]),
            size(&l["held_for_them_bytes"]),
            l["audits_passed"],
            l["audits_failed"],
            format!("{}/{}", l["contracts_kept"], l["contracts_broken"]),
            if l["disqualified"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
        )?;
    }
    Ok(())
}

/// A score or part to three decimals.
fn number(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

fn render_peers(value: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "peer {}", value["peer"].as_str().unwrap_or("?"))?;
    let filter = value["filter"].as_bool() == Some(true);
    if filter {
        writeln!(
            out,
            "filter on: refused under {}; strangers get {} of the allowance; graph of {} \
             peers and {} services",
            number(&value["serve_line"]),
            number(&value["stranger_share"]),
            value["graph_nodes"],
            value["graph_edges"],
        )?;
    } else {
        writeln!(out, "filter off: scores are direct experience alone")?;
    }
    writeln!(
        out,
        "{:<14} {:>6} {:>6} {:>7} {:>6} {:>10} {:>10} {:>9}  refused",
        "peer", "score", "direct", "flow", "rank", "to us", "from us", "contract"
    )?;
    for p in value["peers"].as_array().into_iter().flatten() {
        let contract = if p["contract"].is_object() {
            "yes"
        } else {
            "no"
        };
        writeln!(
            out,
            "{:<14} {:>6} {:>6} {:>7} {:>6} {:>10} {:>10} {:>9}  {}",
            short(&p["peer"]),
            number(&p["score"]),
            number(&p["direct"]),
            number(&p["flow"]),
            number(&p["rank"]),
            size(&Value::from(p["flow_to_us"].as_f64().unwrap_or(0.0) as u64)),
            size(&Value::from(
                p["flow_from_us"].as_f64().unwrap_or(0.0) as u64
            )),
            contract,
            p["refused"].as_str().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// Fetches a view from the node's API and prints it: the JSON as it came (`--json`), or
/// `render`ed, once it has the `required` arrays.
fn print_view(
    args: &ContractsArgs,
    data_dir: Option<std::path::PathBuf>,
    what: &'static str,
    fetch: fn(&str) -> Result<String, client::ClientError>,
    required: &[&str],
    render: fn(&Value, &mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let api = &args.node.url(data_dir);
    let context = || format!("cannot read the {what} of the node at {api}");
    let text = fetch(api).map_err(|e| Failure::new(client_code(&e), context(), e))?;
    let mut stdout = std::io::stdout().lock();
    let written = if args.json {
        writeln!(stdout, "{}", text.trim())
    } else {
        let not =
            |reason: String| Failure::new(ENVIRONMENT, context(), NotTheView { what, reason });
        let value: Value = serde_json::from_str(&text).map_err(|e| not(e.to_string()))?;
        if let Some(missing) = required.iter().find(|key| !value[**key].is_array()) {
            return Err(not(format!("no {missing} in it")));
        }
        render(&value, &mut stdout)
    };
    written.map_err(|e| Failure::new(ENVIRONMENT, "cannot write to stdout", e))
}

/// `cryptosphere peers`.
pub fn print_peers(
    args: &ContractsArgs,
    data_dir: Option<std::path::PathBuf>,
) -> Result<(), Failure> {
    print_view(
        args,
        data_dir,
        "peers",
        client::peers,
        &["peers"],
        render_peers,
    )
}

/// `cryptosphere node contracts`.
pub fn print(args: &ContractsArgs, data_dir: Option<std::path::PathBuf>) -> Result<(), Failure> {
    print_view(
        args,
        data_dir,
        "contracts",
        client::contracts,
        &["contracts", "ledgers"],
        render,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size(&Value::from(512u64)), "512 B");
        assert_eq!(size(&Value::from(3u64 << 20)), "3.0 MiB");
        assert_eq!(size(&Value::Null), "unlimited");
    }
}
