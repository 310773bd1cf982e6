//! The operations kit under `deploy/` stays true to the server: the Prometheus alert rules
//! pass `promtool check rules` and their own unit tests (`promtool test rules`), the Grafana
//! dashboard's queries are valid PromQL, and both name only metrics the server exports, the
//! dashboard every one of them. promtool is Debian's `prometheus` package, which
//! `scripts/test-tools.sh` installs when it is missing.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::tools::{repo_root, run_with_timeout};
use switchboard::metrics::{Kind, catalog};

const RULES: &str = "deploy/prometheus/switchboard-alerts.yml";
const RULE_TESTS: &str = "deploy/prometheus/switchboard-alerts.test.yml";
const DASHBOARD: &str = "deploy/grafana/switchboard.json";

/// The names a scrape shows: each metric's, and a histogram's `_bucket`, `_sum` and `_count`
/// series, each with the metric it belongs to.
fn exported() -> HashMap<String, &'static str> {
    let mut names = HashMap::new();
    for metric in catalog() {
        names.insert(metric.name.to_owned(), metric.name);
        if let Kind::Histogram(_) = metric.kind {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{}{suffix}", metric.name), metric.name);
            }
        }
    }
    names
}

/// Every word in `text` that looks like one of the server's metric names.
fn metric_words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            ["switchboard_", "grpc_server_", "process_"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .map(str::to_owned)
        .collect()
}

fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!("promtool missing: run scripts/test-tools.sh (it installs Debian's prometheus)")
    })
}

/// Runs promtool with `args` in `dir`; fails with its output unless it succeeds.
fn promtool_in(dir: &Path, args: &[&str]) -> String {
    let mut command = Command::new(promtool());
    command.current_dir(dir).args(args);
    let output = run_with_timeout(command, Duration::from_secs(60));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{said}");
    said
}

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join(DASHBOARD)).expect("the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel that is not a row, with its queries.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

fn queries(panel: &serde_json::Value) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["expr"].as_str())
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = repo_root().join("deploy/prometheus");
    let checked = promtool_in(&dir, &["check", "rules", "switchboard-alerts.yml"]);
    assert!(checked.contains("SUCCESS: 4 rules found"), "{checked}");
    let tested = promtool_in(&dir, &["test", "rules", "switchboard-alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn the_dashboards_queries_are_valid_promql() {
    // promtool checks PromQL in rule files: each query becomes a recording rule.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, query) in panels(&dashboard())
        .iter()
        .flat_map(|p| queries(p))
        .enumerate()
    {
        let query = query.replace("$instance", ".*");
        let quoted = serde_json::to_string(&query).expect("a JSON string is a YAML string");
        rules.push_str(&format!(
            "      - record: dashboard:query_{index}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("dashboard.yml"), rules).expect("the rules are written");
    promtool_in(dir.path(), &["check", "rules", "dashboard.yml"]);
}

#[test]
fn the_dashboard_is_well_formed_and_shows_every_metric() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "switchboard");
    let panels = panels(&dashboard);
    assert!(panels.len() >= 20, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(ids.insert(panel["id"].as_u64().expect("an id")), "{panel}");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(
            x + w <= 24,
            "{} is wider than the dashboard",
            panel["title"]
        );
    }
    let mut shown = BTreeSet::new();
    for panel in &panels {
        let title = panel["title"].as_str().expect("a title");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let queries = queries(panel);
        assert!(!queries.is_empty(), "{title} has no query");
        for target in panel["targets"].as_array().expect("targets") {
            assert!(target["refId"].is_string(), "{title}");
        }
        for query in queries {
            shown.extend(metric_words(query));
        }
    }
    let exported = exported();
    let unknown: Vec<&String> = shown
        .iter()
        .filter(|n| !exported.contains_key(*n))
        .collect();
    assert!(unknown.is_empty(), "the server exports no {unknown:?}");
    let shown: BTreeSet<&str> = shown.iter().map(|n| exported[n]).collect();
    let missing: Vec<&str> = catalog()
        .map(|m| m.name)
        .filter(|name| !shown.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard shows nothing of {missing:?}"
    );
}

#[test]
fn the_alert_rules_name_only_exported_metrics() {
    let exported = exported();
    for file in [RULES, RULE_TESTS] {
        let text = std::fs::read_to_string(repo_root().join(file)).expect("the file");
        let named = metric_words(&text);
        assert!(named.len() >= 4, "{file} names {named:?}");
        let unknown: Vec<&String> = named
            .iter()
            .filter(|n| !exported.contains_key(*n))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file}: the server exports no {unknown:?}"
        );
    }
}
