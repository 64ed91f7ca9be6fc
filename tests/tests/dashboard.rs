//! The operators' files (issue 20): the Grafana dashboard (`examples/grafana/hookvisor.json`)
//! and the Prometheus alert rules (`examples/prometheus/hookvisor-rules.yml`). Every metric
//! they query, every label they filter or group on, and every label value they ask for is served
//! by a real supervisor whose traffic exercised each series; the dashboard is Grafana JSON with
//! no machine's datasource in it; the rule file has the shape Prometheus reads, and its host
//! rules are the ones docs/hosts.md shows.
//!
//! There is no PromQL or YAML parser among the dependencies, so both are read here by small
//! hand-written readers: PromQL for its selectors and grouping labels, the rule file line by
//! line for the subset of YAML a Prometheus rule file needs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::{HostReport, Outcome, ToolCount};
use hookvisor_tests::harness::{
    PluginToml, Supervisor, plugins, repo_root, session_create, tool_call,
};
use serde_json::{Value, json};

const DASHBOARD: &str = "examples/grafana/hookvisor.json";
const RULES: &str = "examples/prometheus/hookvisor-rules.yml";
const HOSTS_DOC: &str = "docs/hosts.md";

/// The dashboard's datasource variable: every query names it, never a datasource's uid.
const DATASOURCE: &str = "${datasource}";

/// Labels Prometheus adds to every series it scrapes; the exposition does not carry them.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Metric families the dashboard leaves out: per-plugin sandbox facts, which only appear where
/// the machine gives plugins a uid or a sandbox (`hookvisor status` shows them).
const NOT_ON_THE_DASHBOARD: [&str; 2] = ["hookvisor_plugin_uid", "hookvisor_plugin_sandbox"];

/// The alerts issue 20 asks for, and docs/hosts.md's three.
const ALERTS: [&str; 7] = [
    "HookvisorPluginQuarantined",
    "HookvisorPluginDown",
    "HookvisorFailClosedBlocksRising",
    "HookvisorAuditLinesDropped",
    "HookvisorHostSilent",
    "HookvisorHostNeverReported",
    "HookvisorUnaskedRuns",
];

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---- The exposition ----

/// A scrape: each family's declared type and every sample with its labels.
#[derive(Debug, Default)]
struct Exposition {
    /// `# TYPE` lines: family name to type.
    families: BTreeMap<String, String>,
    /// Sample name to the label sets of its samples.
    samples: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut exposition = Exposition::default();
        for line in text.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (family, kind) = declared.split_once(' ').expect("# TYPE NAME TYPE");
                exposition
                    .families
                    .insert(family.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..end];
            let labels = if line[end..].starts_with('{') {
                let (matchers, _) =
                    matchers(line, end).unwrap_or_else(|e| panic!("sample {line:?}: {e}"));
                matchers.into_iter().map(|m| (m.label, m.value)).collect()
            } else {
                BTreeMap::new()
            };
            exposition
                .samples
                .entry(name.to_owned())
                .or_default()
                .push(labels);
        }
        exposition
    }

    /// The family a sample name belongs to, by the suffixes its declared type gives samples.
    fn family_of(&self, name: &str) -> Option<&str> {
        let is = |family: &str, kinds: &[&str]| {
            self.families
                .get(family)
                .is_some_and(|kind| kinds.contains(&kind.as_str()))
        };
        let gauge = Some(name).filter(|family| is(family, &["gauge", "unknown"]));
        let counter = name
            .strip_suffix("_total")
            .filter(|family| is(family, &["counter"]));
        let histogram = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|family| is(family, &["histogram"]));
        gauge
            .or(counter)
            .or(histogram)
            .and_then(|family| self.families.get_key_value(family))
            .map(|(family, _)| family.as_str())
    }

    /// Every label any sample of `name` has.
    fn labels_of(&self, name: &str) -> BTreeSet<&str> {
        self.samples
            .get(name)
            .into_iter()
            .flatten()
            .flat_map(|labels| labels.keys().map(String::as_str))
            .collect()
    }
}

// ---- PromQL, as far as the checks need it ----

/// One `label op "value"` of a selector.
#[derive(Debug, Clone)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

impl Matcher {
    /// Whether a series whose label has `actual` (absent: empty) satisfies this matcher;
    /// `None` when that cannot be told here (a Grafana variable, a real regular expression).
    fn accepts(&self, actual: Option<&str>) -> Option<bool> {
        let actual = actual.unwrap_or("");
        let literal = |v: &str| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b' ' | b'|'))
        };
        match self.op.as_str() {
            _ if self.value.contains('$') => None,
            "=" => Some(actual == self.value),
            "!=" => Some(actual != self.value),
            "=~" if literal(&self.value) => Some(self.value.split('|').any(|v| v == actual)),
            "!~" if literal(&self.value) => Some(!self.value.split('|').any(|v| v == actual)),
            _ => None,
        }
    }
}

/// A selector of one of hookvisor's metrics.
#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<Matcher>,
}

/// What a PromQL expression asks of the exposition.
#[derive(Debug, Default)]
struct Query {
    selectors: Vec<Selector>,
    /// The labels of every `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`.
    grouping: Vec<String>,
}

fn ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn skip_space(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The quoted string at `b[start]`, unescaped, and the index after its closing quote.
fn quoted(text: &str, start: usize) -> Result<(String, usize), String> {
    let b = text.as_bytes();
    let quote = b[start];
    let mut out = String::new();
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quote != b'`' && i + 1 < b.len() => {
                out.push(char::from(b[i + 1]));
                i += 2;
            }
            c if c == quote => return Ok((out, i + 1)),
            _ => {
                let c = text[i..].chars().next().expect("a char");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Err(format!("unterminated string at {start}"))
}

/// The matchers of the `{...}` at `text[open]`, and the index after its `}`.
fn matchers(text: &str, open: usize) -> Result<(Vec<Matcher>, usize), String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = open + 1;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        match b.get(i) {
            None => return Err(format!("no `}}` after the `{{` at {open}")),
            Some(b'}') => return Ok((out, i + 1)),
            Some(_) => {}
        }
        let start = i;
        while i < b.len() && ident_byte(b[i]) {
            i += 1;
        }
        let label = text[start..i].to_owned();
        if label.is_empty() {
            return Err(format!("a label name expected at {start}"));
        }
        i = skip_space(b, i);
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| text[i..].starts_with(op))
            .ok_or_else(|| format!("a matcher operator expected after {label} at {i}"))?;
        i = skip_space(b, i + op.len());
        if !matches!(b.get(i), Some(b'"' | b'\'' | b'`')) {
            return Err(format!("a quoted value expected for {label} at {i}"));
        }
        let (value, end) = quoted(text, i)?;
        i = end;
        out.push(Matcher {
            label,
            op: op.to_owned(),
            value,
        });
    }
}

/// Reads `expr` for the selectors of `hookvisor_*` metrics and the grouping labels; other
/// metrics (`probe_success`), functions, numbers, durations and Grafana's `$variables` are
/// stepped over.
fn parse_promql(expr: &str) -> Result<Query, String> {
    let b = expr.as_bytes();
    let mut query = Query::default();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = quoted(expr, i)?.1,
            b'[' => i = expr[i..].find(']').map_or(b.len(), |n| i + n + 1),
            b'$' if b.get(i + 1) == Some(&b'{') => {
                i = expr[i..].find('}').map_or(b.len(), |n| i + n + 1);
            }
            b'$' => {
                i += 1;
                while i < b.len() && ident_byte(b[i]) {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if ident_byte(c) => {
                let start = i;
                while i < b.len() && ident_byte(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let next = skip_space(b, i);
                let grouping = matches!(
                    word,
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                if word.starts_with("hookvisor_") {
                    let mut found = Vec::new();
                    if b.get(next) == Some(&b'{') {
                        (found, i) = matchers(expr, next)?;
                    }
                    query.selectors.push(Selector {
                        metric: word.to_owned(),
                        matchers: found,
                    });
                } else if grouping && b.get(next) == Some(&b'(') {
                    let close = expr[next..]
                        .find(')')
                        .map(|n| next + n)
                        .ok_or_else(|| format!("no `)` after {word}"))?;
                    query.grouping.extend(
                        expr[next + 1..close]
                            .split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                    i = close + 1;
                } else if b.get(next) == Some(&b'{') {
                    i = matchers(expr, next)?.1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(query)
}

/// One query of the dashboard or the rules, with where it is and the labels its text shows
/// (a legend's `{{label}}`, an annotation's `$labels.label`).
#[derive(Debug)]
struct Use {
    place: String,
    expr: String,
    shown: Vec<String>,
}

/// Checks one query against a scrape; each problem is one line naming the place.
fn check(used: &Use, exposed: &Exposition) -> Vec<String> {
    let place = &used.place;
    let mut problems = Vec::new();
    let query = match parse_promql(&used.expr) {
        Ok(query) => query,
        Err(e) => return vec![format!("{place}: cannot read {:?}: {e}", used.expr)],
    };
    if query.selectors.is_empty() {
        problems.push(format!("{place}: no hookvisor metric in {:?}", used.expr));
    }
    let mut known: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
    for selector in &query.selectors {
        let metric = &selector.metric;
        let Some(samples) = exposed.samples.get(metric) else {
            let kind = exposed.families.get(metric.as_str()).map(String::as_str);
            problems.push(match kind {
                Some("counter") => format!("{place}: {metric} is a counter: query {metric}_total"),
                Some("histogram") => format!(
                    "{place}: {metric} is a histogram: query {metric}_bucket, _sum or _count"
                ),
                _ if kind.is_some() || exposed.family_of(metric).is_some() => format!(
                    "{place}: {metric} is declared but has no sample: the traffic did not \
                     exercise it"
                ),
                _ => format!("{place}: {metric} is not exported"),
            });
            continue;
        };
        if exposed.family_of(metric).is_none() {
            problems.push(format!(
                "{place}: {metric} is served but no `# TYPE` line accounts for its name"
            ));
        }
        let labels = exposed.labels_of(metric);
        known.extend(labels.iter().copied());
        let ours: Vec<&Matcher> = selector
            .matchers
            .iter()
            .filter(|m| !TARGET_LABELS.contains(&m.label.as_str()))
            .collect();
        for m in &ours {
            if !labels.contains(m.label.as_str()) {
                problems.push(format!(
                    "{place}: {metric} has no label {} (it has {labels:?})",
                    m.label
                ));
            }
        }
        let matched = samples.iter().any(|sample| {
            ours.iter()
                .all(|m| m.accepts(sample.get(&m.label).map(String::as_str)) != Some(false))
        });
        if !matched {
            let wanted: Vec<String> = ours
                .iter()
                .map(|m| format!("{}{}{:?}", m.label, m.op, m.value))
                .collect();
            problems.push(format!(
                "{place}: no series of {metric} has {{{}}}",
                wanted.join(", ")
            ));
        }
    }
    let asked: BTreeSet<&String> = query.grouping.iter().chain(&used.shown).collect();
    for label in asked {
        if !known.contains(label.as_str()) {
            problems.push(format!(
                "{place}: label {label} is on none of the metrics of {:?}",
                used.expr
            ));
        }
    }
    problems
}

// ---- The dashboard ----

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// Every panel, those inside collapsed rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// The labels between `{{` and `}}` of a legend.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}"))
        .map(|(label, _)| label.trim().to_owned())
        .collect()
}

/// Every query of the dashboard: panel targets and template variables.
fn dashboard_uses(dashboard: &Value) -> Vec<Use> {
    let mut uses = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            uses.push(Use {
                place: format!(
                    "{DASHBOARD}: panel {:?}, query {}",
                    panel["title"].as_str().unwrap_or_default(),
                    target["refId"].as_str().unwrap_or("?")
                ),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                shown: legend_labels(target["legendFormat"].as_str().unwrap_or_default()),
            });
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if variable["type"] == "query" {
            let query = &variable["query"];
            let expr = query["query"]
                .as_str()
                .or(query.as_str())
                .unwrap_or_default();
            uses.push(Use {
                place: format!("{DASHBOARD}: variable {}", variable["name"]),
                expr: expr.to_owned(),
                shown: Vec::new(),
            });
        }
    }
    uses
}

/// Every `uid` anywhere in `value`, with its path.
fn uids(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let here = format!("{path}.{key}");
                match (key.as_str(), v) {
                    ("uid", Value::String(uid)) => out.push((here, uid.clone())),
                    _ => uids(v, &here, out),
                }
            }
        }
        Value::Array(list) => {
            for (i, v) in list.iter().enumerate() {
                uids(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_dashboard_is_grafana_json_with_no_machine_in_it() {
    let dashboard = dashboard();
    let schema = dashboard["schemaVersion"].as_u64().expect("schemaVersion");
    assert!(
        schema >= 39,
        "schemaVersion {schema}: older than Grafana 11"
    );
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    assert!(
        dashboard["id"].is_null(),
        "an id belongs to one Grafana's database"
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    assert!(
        variables.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && format!("${{{}}}", v["name"].as_str().unwrap_or_default()) == DATASOURCE),
        "no Prometheus datasource variable named as {DATASOURCE}"
    );

    // Datasources are named through the variable only (the built-in annotation aside).
    let mut found = Vec::new();
    uids(&dashboard, "", &mut found);
    for (path, uid) in &found {
        assert!(
            path == ".uid"
                || uid == DATASOURCE
                || (path.starts_with(".annotations") && uid == "-- Grafana --"),
            "{DASHBOARD}: {path} = {uid:?}: a uid of one machine's Grafana"
        );
    }

    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().expect("every panel has a title");
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} twice ({title})");
        let grid = &panel["gridPos"];
        let (x, w) = (
            grid["x"].as_u64().expect("x"),
            grid["w"].as_u64().expect("w"),
        );
        assert!(
            x + w <= 24 && grid["h"].as_u64().is_some() && grid["y"].as_u64().is_some(),
            "{title}: gridPos {grid}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{title}: say what the panel shows"
        );
        assert_eq!(panel["datasource"]["uid"], DATASOURCE, "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert!(
                refs.insert(target["refId"].to_string()),
                "{title}: refId twice"
            );
            assert_eq!(target["datasource"]["uid"], DATASOURCE, "{title}");
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{title}"
            );
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries} queries");
}

// ---- The rule file ----

/// One alerting rule as the rule file states it.
#[derive(Debug, Default)]
struct Rule {
    group: String,
    alert: String,
    expr: String,
    for_: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// A YAML scalar written plainly, in single or in double quotes (double-quoted ones without
/// escapes: none of the rules needs one).
fn scalar(text: &str) -> Result<String, String> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or("a double-quoted value must end with `\"`")?;
        if inner.contains(['"', '\\']) {
            return Err("`\"` or `\\` inside a double-quoted value".into());
        }
        return Ok(inner.to_owned());
    }
    if let Some(inner) = text.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .ok_or("a single-quoted value must end with `'`")?;
        if inner.replace("''", "").contains('\'') {
            return Err("a lone `'` inside a single-quoted value".into());
        }
        return Ok(inner.replace("''", "'"));
    }
    let first = text.chars().next().ok_or("an empty value")?;
    if "[]{}>|*&!%@`#,?:".contains(first) || text.starts_with("- ") {
        return Err(format!(
            "a plain value may not start with `{first}`: quote it"
        ));
    }
    if text.contains(": ") || text.contains(" #") || text.ends_with(':') {
        return Err("`: ` or ` #` in a plain value: quote it".into());
    }
    Ok(text.to_owned())
}

/// `key: value` (value possibly empty), with a plain lower-case key.
fn key_value(content: &str) -> Result<(&str, &str), String> {
    let (key, value) = match content.split_once(": ") {
        Some((key, value)) => (key, value.trim()),
        None => (
            content.strip_suffix(':').ok_or("`key: value` expected")?,
            "",
        ),
    };
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(format!("{key:?} is not a key"));
    }
    Ok((key, value))
}

/// Reads a Prometheus rule file written in the block style every Prometheus example uses:
/// `groups:`, `  - name:`, `    rules:`, `      - alert:`, its keys two spaces in, and `labels`
/// and `annotations` entries two more; `expr: |` takes the more indented lines below it. This
/// is a check of the structure, not a YAML parser: anything else is refused, naming the line.
fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut rules: Vec<Rule> = Vec::new();
    let mut groups = BTreeSet::new();
    let mut group: Option<String> = None;
    let mut in_rules = false;
    let mut seen_groups = false;
    let mut section: Option<String> = None;
    let mut n = 0;
    while n < lines.len() {
        let line = lines[n];
        n += 1;
        let at = n;
        let content = line.trim_start_matches(' ');
        if content.trim().is_empty() || content.starts_with('#') {
            continue;
        }
        let fail = |what: String| format!("line {at}: {what}: {line:?}");
        if line.contains('\t') {
            return Err(fail("a tab".into()));
        }
        if line.trim_end() != line {
            return Err(fail("trailing space".into()));
        }
        match line.len() - content.len() {
            0 if content == "groups:" && !seen_groups => seen_groups = true,
            2 if seen_groups => {
                let name = content
                    .strip_prefix("- name: ")
                    .ok_or_else(|| fail("`- name: GROUP` expected".into()))?;
                let name = scalar(name).map_err(fail)?;
                if !groups.insert(name.clone()) {
                    return Err(fail(format!("group {name} twice")));
                }
                group = Some(name);
                in_rules = false;
            }
            4 if group.is_some() && content == "rules:" && !in_rules => in_rules = true,
            6 if in_rules => {
                let alert = content
                    .strip_prefix("- alert: ")
                    .ok_or_else(|| fail("`- alert: NAME` expected".into()))?;
                rules.push(Rule {
                    group: group.clone().unwrap_or_default(),
                    alert: scalar(alert).map_err(fail)?,
                    ..Rule::default()
                });
                section = None;
            }
            8 if !rules.is_empty() => {
                let rule = rules.last_mut().expect("a rule");
                let (key, value) = key_value(content).map_err(fail)?;
                section = None;
                let alert = rule.alert.clone();
                let repeated = || fail(format!("{key} twice in {alert}"));
                match key {
                    "expr" if !rule.expr.is_empty() => return Err(repeated()),
                    "expr" if value == "|" || value == "|-" => {
                        let mut block = Vec::new();
                        while n < lines.len() {
                            let next = lines[n];
                            let indent = next.len() - next.trim_start_matches(' ').len();
                            if !next.trim().is_empty() && indent <= 8 {
                                break;
                            }
                            block.push(next);
                            n += 1;
                        }
                        let cut = block
                            .iter()
                            .find(|l| !l.trim().is_empty())
                            .map(|l| l.len() - l.trim_start_matches(' ').len())
                            .ok_or_else(|| fail("an empty block".into()))?;
                        let body: Vec<&str> =
                            block.iter().map(|l| l.get(cut..).unwrap_or("")).collect();
                        rule.expr = body.join("\n").trim_end().to_owned();
                    }
                    "expr" => rule.expr = scalar(value).map_err(fail)?,
                    "for" if rule.for_.is_some() => return Err(repeated()),
                    "for" => rule.for_ = Some(scalar(value).map_err(fail)?),
                    "labels" | "annotations" if value.is_empty() => {
                        let map = if key == "labels" {
                            &rule.labels
                        } else {
                            &rule.annotations
                        };
                        if !map.is_empty() {
                            return Err(repeated());
                        }
                        section = Some(key.to_owned());
                    }
                    _ => return Err(fail(format!("{key} is not a key of an alerting rule"))),
                }
            }
            10 if section.is_some() => {
                let rule = rules.last_mut().expect("a rule");
                let (key, value) = key_value(content).map_err(fail)?;
                let value = scalar(value).map_err(fail)?;
                let map = if section.as_deref() == Some("labels") {
                    &mut rule.labels
                } else {
                    &mut rule.annotations
                };
                if map.insert(key.to_owned(), value).is_some() {
                    return Err(fail(format!("{key} twice")));
                }
            }
            _ => return Err(fail("not where a rule file has it".into())),
        }
    }
    if rules.is_empty() {
        return Err("no alerting rule".into());
    }
    Ok(rules)
}

fn rules() -> Vec<Rule> {
    parse_rules(&read(RULES)).unwrap_or_else(|e| panic!("{RULES}: {e}"))
}

/// The rules in docs/hosts.md's `yaml` block.
fn documented_rules() -> Vec<Rule> {
    let doc = read(HOSTS_DOC);
    let block = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split_once("```"))
        .map(|(block, _)| block)
        .unwrap_or_else(|| panic!("{HOSTS_DOC}: no yaml block"));
    parse_rules(block).unwrap_or_else(|e| panic!("{HOSTS_DOC}'s rules: {e}"))
}

/// A Prometheus duration as rule files use it: digits and one unit.
fn is_duration(text: &str) -> bool {
    let unit = text.trim_start_matches(|c: char| c.is_ascii_digit());
    unit.len() < text.len() && ["ms", "s", "m", "h", "d", "w", "y"].contains(&unit)
}

#[test]
fn the_rule_file_is_well_formed_and_its_host_rules_are_those_of_docs_hosts_md() {
    let rules = rules();
    let mut names = BTreeSet::new();
    for rule in &rules {
        let alert = &rule.alert;
        assert!(names.insert(alert.as_str()), "{alert} twice");
        assert!(
            alert.starts_with("Hookvisor") && alert.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{alert}: CamelCase, starting with Hookvisor"
        );
        assert!(!rule.expr.is_empty(), "{alert}: no expr");
        if let Some(wait) = &rule.for_ {
            assert!(is_duration(wait), "{alert}: for: {wait}");
        }
        assert!(
            ["critical", "warning", "info"]
                .contains(&rule.labels.get("severity").map_or("", String::as_str)),
            "{alert}: severity {:?}",
            rule.labels
        );
        for key in ["summary", "description"] {
            assert!(
                rule.annotations.get(key).is_some_and(|v| !v.is_empty()),
                "{alert}: no {key}"
            );
        }
    }
    for alert in ALERTS {
        assert!(names.contains(alert), "{RULES}: no {alert}");
    }

    let documented = documented_rules();
    assert_eq!(documented.len(), 3, "{documented:?}");
    for doc in &documented {
        let ours = rules
            .iter()
            .find(|r| r.alert == doc.alert)
            .unwrap_or_else(|| panic!("{RULES}: no {} (docs/hosts.md has it)", doc.alert));
        assert_eq!(
            (&ours.group, ours.expr.trim(), &ours.for_),
            (&doc.group, doc.expr.trim(), &doc.for_),
            "{}: {RULES} and {HOSTS_DOC} differ",
            doc.alert
        );
    }
    let hosts_group: BTreeSet<&str> = rules
        .iter()
        .filter(|r| r.group == documented[0].group)
        .map(|r| r.alert.as_str())
        .collect();
    let documented_names: BTreeSet<&str> = documented.iter().map(|r| r.alert.as_str()).collect();
    assert_eq!(hosts_group, documented_names);
}

/// The checks of the reader itself: what a rule file must not get past it.
#[test]
fn the_rule_reader_refuses_what_prometheus_would() {
    let good = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > 0\n";
    assert!(parse_rules(good).is_ok());
    for (bad, why) in [
        (
            good.replace("expr: x > 0", "expr: {x} > 0"),
            "a plain value may not start with `{`",
        ),
        (
            good.replace("expr: x > 0", "expr: x: 0"),
            "`: ` or ` #` in a plain value",
        ),
        (good.replace("        expr", "         expr"), "not where"),
        (good.replace("expr:", "exp:"), "exp is not a key"),
        (good.replace("  - name", "\t- name"), "a tab"),
        (format!("{good}        expr: y\n"), "expr twice"),
    ] {
        let err = parse_rules(&bad).expect_err(&bad);
        assert!(err.contains(why), "{err} for:\n{bad}");
    }
    let query = parse_promql(
        r#"sum by (plugin, le) (rate(hookvisor_x_bucket{a="b", c!~"d|e", instance=~"$instance"}[$__rate_interval])) / on () probe_success{job="j"}"#,
    )
    .unwrap();
    assert_eq!(query.selectors.len(), 1);
    assert_eq!(query.selectors[0].metric, "hookvisor_x_bucket");
    assert_eq!(query.selectors[0].matchers.len(), 3);
    assert_eq!(query.grouping, ["plugin", "le"]);
}

// ---- Against a running supervisor ----

fn body() -> String {
    plugins(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .action("block-tool:danger"),
        // Fails every call to `boom` and is passed over: a failure that does not block.
        PluginToml::new("flaky", "fixture-error")
            .key("on_failure = \"skip\"")
            .env("FIXTURE_TOOLS", "boom"),
        // Exits at every start: quarantined, and the sessions it is asked about fail closed.
        PluginToml::new("quitter", "fixture-exit-at-start")
            .key("hooks = [\"before_session_create\"]"),
        PluginToml::new("watcher", "fixture-recorder")
            .key("mode = \"shadow\"")
            .action("block:the shadow says no"),
    ]) + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n"
}

/// Traffic that gives every series the dashboard and the rules read: verdicts that allow and
/// block, a plugin failure that blocks and one passed over, a quarantined plugin, shadow
/// answers that disagree, a host that reported a tool run it never asked about, a dispatch call.
async fn traffic(supervisor: &Supervisor) {
    let mut client = supervisor.client().await;
    client
        .report_host(HostReport {
            host: "gw-1".into(),
            kind: "openclaw".into(),
            version: "2026.9.6".into(),
            policy_id: "hookvisor".into(),
            adapter_version: "0.1.0".into(),
            interval_ms: 60_000,
            tools: vec![ToolCount {
                tool: "exec".into(),
                asked: 1,
                ran: 2,
            }],
            ..HostReport::default()
        })
        .await
        .expect("report");
    for (tool, outcome) in [
        ("exec", Outcome::Allow),
        ("danger", Outcome::Block),
        ("boom", Outcome::Allow),
    ] {
        let verdict = supervisor.verdict(tool, json!({})).await;
        assert_eq!(verdict.outcome(), outcome, "{tool}: {verdict:?}");
    }
    let mut outer = tool_call("tool_call", json!({"name": "exec"}));
    outer.dispatch = true;
    client.before_tool_call(outer).await.expect("dispatch call");
    let session = client
        .before_session_create(session_create("agent:agent-1:s1", &[]))
        .await
        .expect("BeforeSessionCreate")
        .into_inner();
    assert_eq!(session.outcome(), Outcome::Block, "{session:?}");
}

#[tokio::test]
async fn every_metric_and_label_the_dashboard_and_the_rules_use_is_served() {
    let supervisor = Supervisor::builder(&body())
        .supervisor_key("restart_delay_ms = 10")
        .supervisor_key("quarantine_after = 3")
        .supervisor_key("health_interval_ms = 200")
        .start()
        .await;
    traffic(&supervisor).await;

    let dashboard = dashboard();
    let mut uses = dashboard_uses(&dashboard);
    let dashboard_queries = uses.len();
    for rule in rules() {
        let shown = rule
            .annotations
            .values()
            .flat_map(|text| text.split("$labels.").skip(1))
            .map(|rest| {
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        uses.push(Use {
            place: format!("{RULES}: {}", rule.alert),
            expr: rule.expr,
            shown,
        });
    }

    // Shadow answers, the quarantine and the first health check come after the calls.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (text, exposed, problems) = loop {
        let text = supervisor.metrics().await;
        let exposed = Exposition::parse(&text);
        let problems: Vec<String> = uses.iter().flat_map(|u| check(u, &exposed)).collect();
        if problems.is_empty() || Instant::now() > deadline {
            break (text, exposed, problems);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        problems.is_empty(),
        "{}\n\nin the scrape:\n{text}",
        problems.join("\n")
    );

    // The dashboard shows every family the supervisor declares, but the ones listed.
    let mut shown = BTreeSet::new();
    for used in &uses[..dashboard_queries] {
        for selector in parse_promql(&used.expr).expect("read above").selectors {
            shown.extend(exposed.family_of(&selector.metric).map(str::to_owned));
        }
    }
    let missing: Vec<&String> = exposed
        .families
        .keys()
        .filter(|family| !shown.contains(*family))
        .filter(|family| !NOT_ON_THE_DASHBOARD.contains(&family.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "families on no panel of {DASHBOARD} (add a panel, or list them in \
         NOT_ON_THE_DASHBOARD with why): {missing:?}"
    );
    for family in NOT_ON_THE_DASHBOARD {
        assert!(
            exposed.families.contains_key(family),
            "NOT_ON_THE_DASHBOARD names {family}, which the supervisor no longer declares"
        );
    }
}
