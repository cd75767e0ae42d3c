//! Scenario-file errors point at the mistake: a missing comma or bracket on the line where it
//! is missing (not the next key's or table's), the key path with the group's index, the
//! valid metric names, and the unit of a value out of its sensible range.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use cryptosphere_sim::scenario::{Scenario, ScenarioError};

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

fn smoke() -> String {
    std::fs::read_to_string(scenario_path("smoke.toml")).unwrap()
}

/// The smoke scenario with a second group, `servers`, after the first.
fn two_groups() -> String {
    smoke().replace(
        "[workload]",
        "[[group]]\nname = \"servers\"\ncount = 5\nstorage_mib = 1024\nupload_mbps = 100.0\n\
         download_mbps = 100.0\nmean_online_hours = 1000.0\n\n[workload]",
    )
}

fn error(text: &str) -> String {
    Scenario::parse(text, "bad.toml").unwrap_err().to_string()
}

/// 1-based number of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines().position(|l| l.starts_with(prefix)).unwrap() + 1
}

#[test]
fn a_missing_comma_or_bracket_is_shown_where_it_is_missing() {
    // A multi-line array: the comma is missing at the end of the first row, which the parser
    // only finds at the second.
    let text = smoke().replace(
        "latency_ms = [[15.0, 45.0], [45.0, 20.0]]",
        "latency_ms = [\n  [15.0, 45.0]   # eu\n\n  [45.0, 20.0],  # us\n]",
    );
    let row = line_of(&text, "  [15.0, 45.0]");
    let message = error(&text);
    let expected_column = "  [15.0, 45.0]".len() + 1;
    assert!(
        message.starts_with(&format!(
            "bad.toml:{row}:{expected_column}: network.latency_ms: missing comma"
        )),
        "{message}"
    );

    // An inline table left open: found only at the next table's header.
    let text = smoke().replace("departures = 0.05", "strategy = { altruism = 0.5");
    let at = line_of(&text, "strategy = {");
    let message = error(&text);
    assert!(
        message.starts_with(&format!(
            "bad.toml:{at}:{}: group[0].strategy: ",
            "strategy = { altruism = 0.5".len() + 1
        )),
        "{message}"
    );
    assert!(!message.starts_with(&format!("bad.toml:{}:", line_of(&text, "[workload]"))));

    // A mistake in the middle of a line stays where it is.
    let text = smoke().replace("count = 60", "count = 60,");
    assert!(
        error(&text).starts_with(&format!(
            "bad.toml:{}:11: group[0].count: ",
            line_of(&text, "count = 60,")
        )),
        "{}",
        error(&text)
    );
}

#[test]
fn type_and_key_errors_name_the_group_by_index() {
    let text = two_groups().replace(
        "mean_online_hours = 1000.0",
        "mean_online_hours = 1000.0\n[group.strategy]\naltruism = 0.9\nalturism = 0.2",
    );
    let message = error(&text);
    assert!(
        message.starts_with(&format!(
            "bad.toml:{}:1: group[1].strategy.alturism: unknown field `alturism`",
            line_of(&text, "alturism")
        )),
        "{message}"
    );

    // A strategy key written in the group says where it belongs.
    let text = two_groups().replace(
        "mean_online_hours = 1000.0",
        "mean_online_hours = 1000.0\naltruism = 0.9",
    );
    let message = error(&text);
    assert!(
        message.contains("group[1].altruism: unknown field `altruism`")
            && message.contains(
                "(altruism is a strategy key: write it under [group.strategy], or as strategy = { altruism = ... })"
            ),
        "{message}"
    );
    let text = two_groups().replace(
        "mean_online_hours = 1000.0",
        "mean_online_hours = 1000.0\nspeed = 2",
    );
    assert!(!error(&text).contains("strategy key"), "{}", error(&text));

    let text = two_groups().replace("upload_mbps = 100.0", "upload_mbps = \"fast\"");
    let message = error(&text);
    assert!(
        message.starts_with(&format!(
            "bad.toml:{}:15: group[1].upload_mbps: must be a number, not \"fast\"",
            line_of(&text, "upload_mbps = \"fast\"")
        )),
        "{message}"
    );

    // Whole numbers are asked for in words, with their range.
    for (bad, shown) in [("-40", "-40"), ("40.5", "40.5")] {
        let text = two_groups().replacen("count = ", &format!("count = {bad} #"), 1);
        let message = error(&text);
        assert!(
            message.contains(&format!(
                "group[0].count: must be a whole number from 0 to 4294967295, not {shown}"
            )),
            "{message}"
        );
    }

    let text = two_groups().replace("name = \"servers\"\n", "");
    let message = error(&text);
    assert!(
        message.contains("group[1]: missing field `name`"),
        "{message}"
    );
    match Scenario::parse(&text, "bad.toml").unwrap_err() {
        ScenarioError::Syntax { key, .. } => assert_eq!(key.as_deref(), Some("group[1]")),
        other => panic!("{other}"),
    }
}

#[test]
fn a_key_missing_from_a_table_names_that_table() {
    let chains = "\n[chains]\nrecord_every_minutes = 60.0\nexchange_every_minutes = 20.0\n";
    // No `record_every_minutes`: the table is named, not the key written before it.
    let text = format!(
        "{}{}",
        smoke(),
        chains.replace("record_every_minutes = 60.0\n", "")
    );
    let message = error(&text);
    let header = line_of(&text, "[chains]");
    assert!(
        message.starts_with(&format!(
            "bad.toml:{header}:1: chains: missing field `record_every_minutes`"
        )),
        "{message}"
    );
    // A table where a value belongs is named by its own path.
    let text = format!(
        "{}{}",
        smoke(),
        chains.replace("[chains]", "[chains.filter]")
    );
    let message = error(&text);
    assert!(message.contains(": chains.filter: "), "{message}");
}

#[test]
fn an_unknown_metric_lists_the_valid_names() {
    let text = smoke().replace(
        "metric = \"fetch_success_ratio\"",
        "metric = \"fetch_succes_ratio\"",
    );
    let message = error(&text);
    assert!(
        message.starts_with(&format!(
            "bad.toml:{}:1: expect[0].metric: \"fetch_succes_ratio\" is not a metric \
             (see docs/scenario-format.md); did you mean fetch_success_ratio? Valid metrics: peers, ",
            line_of(&text, "metric = \"fetch_succes_ratio\"")
        )),
        "{message}"
    );
    for name in [
        "availability_mean",
        "storage_obtained_mean",
        "objects_lost_final",
        "probe.NAME.success_ratio",
    ] {
        assert!(message.contains(name), "{name}: {message}");
    }
    // Nothing near: no guess, still the list.
    let text = smoke().replace("metric = \"fetch_success_ratio\"", "metric = \"happiness\"");
    let message = error(&text);
    assert!(!message.contains("did you mean"), "{message}");
    assert!(
        message
            .contains("(see docs/scenario-format.md); valid metrics: peers, publishes, fetches,"),
        "{message}"
    );
}

#[test]
fn values_out_of_their_sensible_range_are_refused_with_their_unit() {
    let cases = [
        (
            two_groups().replace("upload_mbps = 100.0", "upload_mbps = 1e-300"),
            "upload_mbps = 1e-300",
            "group[1].upload_mbps: must be between 0.001 and 1000000 Mbps, not 1e-300 Mbps",
        ),
        (
            smoke().replace("download_mbps = 100.0", "download_mbps = 1e12"),
            "download_mbps",
            "group[0].download_mbps: must be between 0.001 and 1000000 Mbps, not 1e12 Mbps",
        ),
        (
            smoke().replace(
                "[[15.0, 45.0], [45.0, 20.0]]",
                "[[15.0, 1e300], [45.0, 20.0]]",
            ),
            "latency_ms",
            "network.latency_ms: must be between 0 and 60000 ms, not 1e300 ms",
        ),
        (
            smoke().replace("mean_online_hours = 20.0", "mean_online_hours = 1e-9"),
            "mean_online_hours",
            "group[0].mean_online_hours: must be between 0.01 and 87600 hours, not 1e-9 hours",
        ),
        (
            smoke().replace(
                "fetch_per_peer_per_day = 4.0",
                "fetch_per_peer_per_day = 1e9",
            ),
            "fetch_per_peer_per_day",
            "workload.fetch_per_peer_per_day: must be between 0 and 100000 per peer per day, \
             not 1e9 per peer per day",
        ),
        (
            smoke().replace("duration_hours = 48", "duration_hours = 1e7"),
            "duration_hours",
            "duration_hours: must be between 0.001 and 8784 hours, not 1e7 hours",
        ),
    ];
    for (text, line_prefix, problem) in cases {
        assert_eq!(
            error(&text),
            format!("bad.toml:{}:1: {problem}", line_of(&text, line_prefix))
        );
    }
}

#[test]
fn every_shipped_scenario_is_within_the_ranges() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut loaded = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            loaded += 1;
        }
    }
    assert!(loaded >= 7, "{loaded} scenarios");
}

#[test]
fn the_filter_s_keys_are_checked() {
    let chains = "\n[chains]\nrecord_every_minutes = 10.0\nexchange_every_minutes = 5.0\n";
    let text = format!("{}{chains}graph_edges_max = 5\n", smoke());
    let message = error(&text);
    assert!(
        message.contains("chains.graph_edges_max: must be 16 to 16,777,216, not 5"),
        "{message}"
    );
    let text = format!("{}{chains}recompute_every_hours = 0.0\n", smoke());
    let message = error(&text);
    assert!(
        message.contains("chains.recompute_every_hours: must be between 0.01 and"),
        "{message}"
    );
    let text = format!("{}{chains}filter = \"yes\"\n", smoke());
    let message = error(&text);
    assert!(message.contains("filter"), "{message}");
    let text = smoke().replace(
        "mean_online_hours = 20.0",
        "mean_online_hours = 20.0\nstrategy = { rekey_every_hours = 0.0 }",
    );
    let message = error(&text);
    assert!(
        message.contains("group[0].strategy.rekey_every_hours: must be between 0.1 and"),
        "{message}"
    );
}

#[test]
fn colluders_need_chains_to_praise_and_fixed_members() {
    let praise = two_groups().replace(
        "mean_online_hours = 1000.0",
        "mean_online_hours = 1000.0\nstrategy = { praise_bytes = 1000 }",
    );
    let message = error(&praise);
    assert!(
        message.contains("group[1].strategy.praise_bytes: needs a [chains] table"),
        "{message}"
    );
    let arrivals = two_groups().replace(
        "mean_online_hours = 1000.0",
        "mean_online_hours = 1000.0\narrivals = 2\nstrategy = { serves_only_group = true }",
    );
    let message = error(&arrivals);
    assert!(
        message.contains(
            "group[1].strategy.serves_only_group: colluders are the members present at time 0"
        ),
        "{message}"
    );
}

#[test]
fn a_stranger_policy_is_one_of_three_words_and_its_old_key_says_so() {
    let with = |strategy: &str| {
        two_groups().replace(
            "mean_online_hours = 1000.0",
            &format!("mean_online_hours = 1000.0\nstrategy = {{ {strategy} }}"),
        )
    };
    assert!(Scenario::parse(&with("strangers = \"stingy\""), "ok.toml").is_ok());
    for (bad, shown) in [
        ("strangers = true", "true"),
        ("strangers = \"stingey\"", "\"stingey\""),
        ("strangers = { stingy = {} }", "a table"),
    ] {
        let message = error(&with(bad));
        assert!(
            message.contains(&format!(
                "group[1].strategy.strangers: must be one of \"adaptive\", \"fixed\" or \"stingy\", not {shown}"
            )),
            "{bad}: {message}"
        );
    }
    let message = error(&with("strangers_adapt = true"));
    assert!(
        message.contains("unknown field `strangers_adapt`")
            && message.contains("it was renamed; write strangers = \"adaptive\" for true")
            && !message.contains("expected one of"),
        "{message}"
    );
}

#[test]
fn a_defection_after_the_run_s_end_is_refused() {
    let traitor = |at: &str| {
        two_groups().replace(
            "mean_online_hours = 1000.0",
            &format!("mean_online_hours = 1000.0\nstrategy = {{ defect_at_hours = {at} }}"),
        )
    };
    let duration: f64 = smoke()
        .lines()
        .find_map(|l| l.strip_prefix("duration_hours = "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let message = error(&traitor(&format!("{duration:.1}")));
    assert!(
        message.contains("group[1].strategy.defect_at_hours: must come before the run's end"),
        "{message}"
    );
    assert!(Scenario::parse(&traitor(&format!("{:.1}", duration / 2.0)), "ok.toml").is_ok());
}

#[test]
fn a_liar_about_others_needs_the_filter_that_reads_them() {
    let liar = two_groups().replace(
        "mean_online_hours = 1000.0",
        "mean_online_hours = 1000.0\nstrategy = { omits_others_records = true }",
    );
    let needs = "needs [chains] with filter = true";
    assert!(error(&liar).contains(needs), "{}", error(&liar));
    let chains = "[chains]\nrecord_every_minutes = 60.0\nexchange_every_minutes = 20.0\n";
    let off = liar.replace("[workload]", &format!("{chains}\n[workload]"));
    assert!(error(&off).contains(needs), "{}", error(&off));
    let on = liar.replace(
        "[workload]",
        &format!("{chains}filter = true\n\n[workload]"),
    );
    assert!(Scenario::parse(&on, "ok.toml").is_ok());
}
