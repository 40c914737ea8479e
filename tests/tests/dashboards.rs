//! The dashboards and the staleness alarm use only the metrics Larder emits, with their labels.
//!
//! `shared/src/telemetry/names.rs` (`larder::telemetry::names::ALL`) is the contract. Every
//! metric name in infra/template.yaml's CloudWatch dashboard and staleness alarm and in
//! infra/grafana/larder.json must be one of it; every dimension or label used with a metric must
//! be one of that metric's labels (in CloudWatch, where a metric is found only under its exact
//! dimension set, all of them); percentiles and `_bucket` series only go with histograms; and the
//! panels an operator looks for exist. Renaming a metric or a label on either side fails here:
//! the last tests run the same checks over renamed copies. docs/observability.md's metric table
//! is checked against `ALL` too.
//!
//! Nothing is deployed: the template is read as YAML (CloudFormation's short forms are tagged
//! values), the dashboard body's `!Sub` resolved with a made-up stack name, and the queries
//! parsed just far enough to find metric names and the dimensions or labels next to them:
//! Metrics Insights (`SELECT f(m) FROM SCHEMA("ns", dims) WHERE .. GROUP BY ..`), SEARCH
//! expressions (`{ns,dims} MetricName="m" dim="v"`), metric rows (`[ns, m, dim, value, {..}]`)
//! and PromQL (selectors' matchers, `by` / `without` / `on` / `ignoring` clauses scoped to their
//! aggregation, `histogram_quantile`, Grafana's `label_values`).

use std::collections::BTreeSet;

use larder::telemetry::names::{ALL, Kind, Metric};
use larder_tests::repo_root;
use serde_json::{Value as Json, json};
use serde_yaml_ng::Value as Yaml;

const STACK: &str = "test-stack";
const REGION: &str = "us-east-1";
const HISTOGRAM_SERIES: [&str; 3] = ["_bucket", "_sum", "_count"];

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One metric as a widget, panel or alarm uses it.
#[derive(Debug, Clone)]
struct Use {
    /// As written (PromQL names a histogram's series: `_bucket`, `_sum`, `_count`).
    name: String,
    /// The dimensions or labels named with it.
    labels: Vec<String>,
    /// The labels must be all of the metric's: CloudWatch finds a metric only under its exact
    /// dimension set (SCHEMA, SEARCH's schema, a metric row's dimension pairs).
    exact: bool,
    /// A percentile: CloudWatch `p50` / `p99`, PromQL `histogram_quantile`.
    percentile: bool,
}

/// A widget, panel or alarm: its title, the metrics it uses and its query text.
#[derive(Debug, Default)]
struct Panel {
    title: String,
    uses: Vec<Use>,
    queries: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dialect {
    CloudWatch,
    Prometheus,
}

fn find<'m>(metrics: &'m [Metric], name: &str) -> Option<&'m Metric> {
    metrics.iter().find(|m| m.name == name)
}

/// The metric a name denotes, and the histogram series suffix it carries (PromQL only).
fn resolve<'m>(
    metrics: &'m [Metric],
    name: &str,
    dialect: Dialect,
) -> Result<(&'m Metric, Option<&'static str>), String> {
    if let Some(m) = find(metrics, name) {
        if dialect == Dialect::Prometheus && m.kind == Kind::Histogram {
            return Err(format!("{name} is a histogram: Prometheus has it as {name}_bucket, _sum and _count"));
        }
        return Ok((m, None));
    }
    if dialect == Dialect::Prometheus {
        for suffix in HISTOGRAM_SERIES {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(m) = find(metrics, base)
            {
                return match m.kind {
                    Kind::Histogram => Ok((m, Some(suffix))),
                    kind => Err(format!("{name}: {suffix} is a histogram's series, and {base} is a {kind:?}")),
                };
            }
        }
    }
    Err(format!("{name} is not a metric of larder::telemetry::names::ALL"))
}

/// What is wrong with one use of a metric.
fn check_use(metrics: &[Metric], dialect: Dialect, u: &Use) -> Vec<String> {
    let (m, suffix) = match resolve(metrics, &u.name, dialect) {
        Ok(found) => found,
        Err(e) => return vec![e],
    };
    let mut problems = vec![];
    let mut allowed: BTreeSet<&str> = m.labels.iter().copied().collect();
    if suffix == Some("_bucket") {
        allowed.insert("le");
    }
    for label in &u.labels {
        if !allowed.contains(label.as_str()) {
            problems.push(format!("{}: `{label}` is not a label of {} (its labels: {:?})", u.name, m.name, m.labels));
        }
    }
    if u.exact {
        let used: BTreeSet<&str> = u.labels.iter().map(String::as_str).collect();
        let all: BTreeSet<&str> = m.labels.iter().copied().collect();
        if used != all {
            problems.push(format!(
                "{}: CloudWatch has it under exactly the dimensions {:?}, not {:?}",
                u.name, m.labels, u.labels
            ));
        }
    }
    if u.percentile && (m.kind != Kind::Histogram || (dialect == Dialect::Prometheus && suffix != Some("_bucket"))) {
        problems.push(format!(
            "{}: a percentile needs a histogram('s _bucket series); {} is a {:?}",
            u.name, m.name, m.kind
        ));
    }
    problems
}

/// Every `larder_[a-z_]+` in `text`, in order.
fn metric_tokens(text: &str) -> Vec<(usize, usize, String)> {
    let b = text.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while let Some(at) = text[i..].find("larder_") {
        let start = i + at;
        let mut end = start + "larder_".len();
        while end < b.len() && (b[end].is_ascii_lowercase() || b[end] == b'_') {
            end += 1;
        }
        let boundary = start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        if boundary && end > start + "larder_".len() {
            out.push((start, end, text[start..end].to_string()));
        }
        i = end;
    }
    out
}

/// Each metric-looking word of a file must be a metric (or, in PromQL, a histogram's series).
fn check_tokens(metrics: &[Metric], dialect: Dialect, what: &str, text: &str) -> Vec<String> {
    let mut problems = vec![];
    let names: BTreeSet<String> = metric_tokens(text).into_iter().map(|(_, _, name)| name).collect();
    for name in names {
        let known = find(metrics, &name).is_some()
            || (dialect == Dialect::Prometheus
                && HISTOGRAM_SERIES.iter().any(|s| {
                    name.strip_suffix(s).and_then(|base| find(metrics, base)).is_some_and(|m| m.kind == Kind::Histogram)
                }));
        if !known {
            problems.push(format!("{what}: {name} is not a metric of larder::telemetry::names::ALL"));
        }
    }
    problems
}

// ------------------------------------------------------------------------------- CloudWatch

/// A Metrics Insights query.
#[derive(Debug)]
struct Insights {
    function: String,
    metric: String,
    namespace: String,
    schema: Vec<String>,
    where_keys: Vec<String>,
    group_by: Vec<String>,
}

fn parse_insights(query: &str) -> Result<Insights, String> {
    let q = query.trim();
    let err = |what: &str| format!("Metrics Insights query {q:?}: {what}");
    if !q.to_ascii_uppercase().starts_with("SELECT ") {
        return Err(err("expected SELECT"));
    }
    let open = q.find('(').ok_or_else(|| err("no ( after SELECT"))?;
    let close = open + q[open..].find(')').ok_or_else(|| err("no )"))?;
    let function = q["SELECT ".len()..open].trim().to_ascii_uppercase();
    let metric = q[open + 1..close].trim().to_string();
    let rest = q[close + 1..].trim_start();
    let from = "FROM SCHEMA(";
    if !rest.to_ascii_uppercase().starts_with(from) {
        return Err(err("expected FROM SCHEMA(namespace, dimensions...): dimensions must be stated"));
    }
    let args_end = rest.find(')').ok_or_else(|| err("SCHEMA( without )"))?;
    let mut args = rest[from.len()..args_end].split(',').map(|a| a.trim().to_string());
    let namespace = args.next().unwrap_or_default().trim_matches('"').to_string();
    let schema: Vec<String> = args.filter(|a| !a.is_empty()).collect();
    let tail = &rest[args_end + 1..];
    let upper = tail.to_ascii_uppercase();
    let keywords = [" WHERE ", " GROUP BY ", " ORDER BY ", " LIMIT "];
    let clause = |kw: &str| -> Option<&str> {
        let start = upper.find(kw)? + kw.len();
        let end = keywords.iter().filter_map(|k| upper[start..].find(k).map(|e| start + e)).min().unwrap_or(tail.len());
        Some(&tail[start..end])
    };
    let mut where_keys = vec![];
    if let Some(w) = clause(" WHERE ") {
        // Values are single-quoted strings, so every bare word but an operator is a key.
        let mut in_quote = false;
        let mut word = String::new();
        for c in w.chars().chain(std::iter::once(' ')) {
            if c == '\'' {
                in_quote = !in_quote;
            } else if !in_quote && (c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                word.push(c);
                continue;
            }
            if !word.is_empty() && !["AND", "OR", "NOT", "IN", "LIKE"].contains(&word.to_ascii_uppercase().as_str()) {
                where_keys.push(word.clone());
            }
            word.clear();
        }
    }
    let group_by = clause(" GROUP BY ")
        .map(|g| g.split(',').map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect())
        .unwrap_or_default();
    Ok(Insights { function, metric, namespace, schema, where_keys, group_by })
}

/// One SEARCH() of a metric math expression.
#[derive(Debug)]
struct Search {
    namespace: String,
    schema: Vec<String>,
    metric: Option<String>,
    keys: Vec<String>,
    statistic: String,
}

fn parse_searches(expression: &str) -> Result<Vec<Search>, String> {
    let err = |what: &str| format!("SEARCH in {expression:?}: {what}");
    let mut out = vec![];
    let mut rest = expression;
    while let Some(at) = rest.find("SEARCH(") {
        rest = &rest[at + "SEARCH(".len()..];
        let open = rest.find('\'').ok_or_else(|| err("no quoted search string"))?;
        let close = open + 1 + rest[open + 1..].find('\'').ok_or_else(|| err("unterminated search string"))?;
        let search = rest[open + 1..close].trim();
        let after = &rest[close + 1..];
        let s_open = after.find('\'').ok_or_else(|| err("no statistic"))?;
        let s_close = s_open + 1 + after[s_open + 1..].find('\'').ok_or_else(|| err("unterminated statistic"))?;
        let statistic = after[s_open + 1..s_close].to_string();
        rest = &after[s_close + 1..];
        let body = search
            .strip_prefix('{')
            .ok_or_else(|| err("no {namespace,dimensions} schema: dimensions must be stated"))?;
        let end = body.find('}').ok_or_else(|| err("schema without }"))?;
        let mut parts = body[..end].split(',').map(|p| p.trim().trim_matches('"').to_string());
        let namespace = parts.next().unwrap_or_default();
        let schema: Vec<String> = parts.filter(|p| !p.is_empty()).collect();
        let terms = &body[end + 1..];
        let mut metric = None;
        let mut keys = vec![];
        let b = terms.as_bytes();
        let mut in_quote = false;
        for (i, &c) in b.iter().enumerate() {
            match c {
                b'"' => in_quote = !in_quote,
                b'=' if !in_quote => {
                    let mut s = i;
                    while s > 0 && (b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'_' || b[s - 1] == b'.') {
                        s -= 1;
                    }
                    let key = &terms[s..i];
                    if key == "MetricName" {
                        let value = terms[i + 1..].trim_start();
                        let value =
                            value.strip_prefix('"').ok_or_else(|| err("MetricName must be quoted (an exact match)"))?;
                        metric =
                            Some(value[..value.find('"').ok_or_else(|| err("unterminated MetricName"))?].to_string());
                    } else {
                        keys.push(key.to_string());
                    }
                }
                _ => {}
            }
        }
        out.push(Search { namespace, schema, metric, keys, statistic });
    }
    Ok(out)
}

fn is_percentile(statistic: &str) -> bool {
    statistic.len() > 1
        && statistic.starts_with(['p', 'P'])
        && statistic[1..].chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// The metrics of one CloudWatch expression (Metrics Insights, or metric math with SEARCH).
fn expression_uses(expression: &str, namespace: &str, at: &str, problems: &mut Vec<String>) -> Vec<Use> {
    let mut uses = vec![];
    if expression.trim().to_ascii_uppercase().starts_with("SELECT") {
        match parse_insights(expression) {
            Err(e) => problems.push(format!("{at}: {e}")),
            Ok(q) => {
                if q.namespace != namespace {
                    problems.push(format!("{at}: namespace {:?}, the functions emit into {namespace:?}", q.namespace));
                }
                if !["AVG", "COUNT", "MAX", "MIN", "SUM"].contains(&q.function.as_str()) {
                    problems.push(format!("{at}: Metrics Insights has no function {}", q.function));
                }
                for key in q.where_keys.iter().chain(&q.group_by) {
                    if !q.schema.contains(key) {
                        problems.push(format!("{at}: {key} is not in SCHEMA(..., {:?})", q.schema));
                    }
                }
                let mut labels = q.schema.clone();
                labels.extend(q.where_keys.iter().chain(&q.group_by).cloned());
                labels.sort();
                labels.dedup();
                uses.push(Use { name: q.metric, labels, exact: true, percentile: false });
            }
        }
    } else {
        match parse_searches(expression) {
            Err(e) => problems.push(format!("{at}: {e}")),
            Ok(searches) => {
                for s in searches {
                    if s.namespace != namespace {
                        problems.push(format!(
                            "{at}: SEARCH namespace {:?}, the functions emit into {namespace:?}",
                            s.namespace
                        ));
                    }
                    for key in &s.keys {
                        if !s.schema.contains(key) {
                            problems.push(format!("{at}: SEARCH term {key}= is not in the schema {:?}", s.schema));
                        }
                    }
                    let Some(metric) = s.metric else {
                        problems.push(format!("{at}: SEARCH without MetricName=\"...\""));
                        continue;
                    };
                    uses.push(Use {
                        name: metric,
                        labels: s.schema,
                        exact: true,
                        percentile: is_percentile(&s.statistic),
                    });
                }
            }
        }
    }
    // A name anywhere else in the expression would escape the checks above.
    for (_, _, name) in metric_tokens(expression) {
        if !uses.iter().any(|u| u.name == name) {
            problems.push(format!("{at}: {name} is outside a SELECT or a SEARCH's MetricName"));
        }
    }
    uses
}

/// The widgets of a CloudWatch dashboard body.
fn cloudwatch_widgets(body: &Json, namespace: &str, problems: &mut Vec<String>) -> Vec<Panel> {
    let mut panels = vec![];
    for (i, w) in body["widgets"].as_array().expect("widgets").iter().enumerate() {
        let props = &w["properties"];
        let title = props["title"].as_str().unwrap_or(w["type"].as_str().unwrap_or("?")).to_string();
        let at = format!("dashboard widget {i} ({title})");
        let mut panel = Panel { title, ..Panel::default() };
        if w["type"] == "metric" {
            panel.queries = props["metrics"].to_string();
            for row in props["metrics"].as_array().expect("metric widget without metrics") {
                let row = row.as_array().expect("a metrics row is an array");
                if let Some(expression) = row.first().and_then(|r| r["expression"].as_str()) {
                    panel.uses.extend(expression_uses(expression, namespace, &at, problems));
                    continue;
                }
                // [namespace, metric, dim, value, ..., {options}]
                let words: Vec<&str> = row.iter().filter_map(Json::as_str).collect();
                let options = row.iter().find(|r| r.is_object()).cloned().unwrap_or(Json::Null);
                if words.contains(&".") {
                    problems.push(format!("{at}: write metric rows out in full, not with \".\""));
                    continue;
                }
                let [ns, metric, dims @ ..] = words.as_slice() else {
                    problems.push(format!("{at}: metric row {row:?} has no namespace and name"));
                    continue;
                };
                if *ns != namespace {
                    if metric.starts_with("larder_") {
                        problems
                            .push(format!("{at}: {metric} in namespace {ns:?}, the functions emit into {namespace:?}"));
                    }
                    continue;
                }
                if dims.len() % 2 != 0 {
                    problems.push(format!("{at}: {metric}: dimensions come in name, value pairs: {dims:?}"));
                }
                let labels = dims.chunks(2).map(|p| p[0].to_string()).collect();
                let percentile = options["stat"].as_str().is_some_and(is_percentile);
                panel.uses.push(Use { name: metric.to_string(), labels, exact: true, percentile });
            }
        }
        panels.push(panel);
    }
    panels
}

/// `Fn::Sub`'s text with CloudFormation's substitutions: pseudo parameters, parameters (their
/// defaults), resources (a made-up ARN), `${!Literal}`.
fn substitute(text: &str, template: &Yaml) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = at + rest[at..].find('}').expect("unterminated ${");
        let name = &rest[at + 2..end];
        rest = &rest[end + 1..];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str(&format!("${{{literal}}}"));
            continue;
        }
        let value = match name {
            "AWS::StackName" => STACK.to_string(),
            "AWS::Region" => REGION.to_string(),
            "AWS::AccountId" => "123456789012".to_string(),
            "AWS::Partition" => "aws".to_string(),
            "AWS::URLSuffix" => "amazonaws.com".to_string(),
            _ => {
                let resource = name.split('.').next().unwrap();
                if let Some(p) = template["Parameters"].get(name) {
                    match p.get("Default").unwrap_or_else(|| panic!("${{{name}}}: parameter without a default")) {
                        Yaml::Number(n) => n.to_string(),
                        v => v.as_str().expect("a scalar default").to_string(),
                    }
                } else if template["Resources"].get(resource).is_some() {
                    format!("arn:aws:test:{REGION}:123456789012:{name}")
                } else {
                    panic!("${{{name}}}: neither a parameter nor a resource of the template");
                }
            }
        };
        out.push_str(&value);
    }
    out.push_str(rest);
    out
}

/// A `!Sub` / `Fn::Sub` (of a string) resolved.
fn sub(value: &Yaml, template: &Yaml) -> String {
    let text = match value {
        Yaml::Tagged(t) if t.tag == "Sub" => t.value.as_str(),
        Yaml::Mapping(_) => value.get("Fn::Sub").and_then(Yaml::as_str),
        other => other.as_str(),
    };
    substitute(text.unwrap_or_else(|| panic!("expected !Sub of a string, found {value:?}")), template)
}

fn resources_of_type<'t>(template: &'t Yaml, kind: &str) -> Vec<(String, &'t Yaml)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(k, r)| (k.as_str().unwrap().to_string(), r))
        .collect()
}

/// A panel any of `panels` must be: its title names `keyword`, it uses `metric` with `labels`
/// (a percentile of it if `percentile`), and its queries contain `fragments`.
struct Required {
    keyword: &'static str,
    metric: &'static str,
    labels: &'static [&'static str],
    percentile: bool,
    fragments: &'static [&'static str],
}

const fn req(
    keyword: &'static str,
    metric: &'static str,
    labels: &'static [&'static str],
    percentile: bool,
    fragments: &'static [&'static str],
) -> Required {
    Required { keyword, metric, labels, percentile, fragments }
}

fn check_required(what: &str, panels: &[Panel], required: &[Required]) -> Vec<String> {
    required
        .iter()
        .filter(|r| {
            !panels.iter().any(|p| {
                p.title.to_lowercase().contains(r.keyword)
                    && p.uses.iter().any(|u| {
                        u.name == r.metric
                            && r.labels.iter().all(|l| u.labels.iter().any(|x| x == l))
                            && (!r.percentile || u.percentile)
                    })
                    && r.fragments.iter().all(|f| p.queries.contains(f))
            })
        })
        .map(|r| {
            format!(
                "{what}: no panel titled with {:?} shows {}{} by {:?} (with {:?})",
                r.keyword,
                if r.percentile { "a percentile of " } else { "" },
                r.metric,
                r.labels,
                r.fragments
            )
        })
        .collect()
}

/// Everything wrong with infra/template.yaml's dashboard and staleness alarm, given the
/// template's text and the list of metrics.
fn cloudwatch_problems(template_text: &str, metrics: &[Metric]) -> Vec<String> {
    let template: Yaml = serde_yaml_ng::from_str(template_text).expect("infra/template.yaml is YAML");
    let mut problems = vec![];

    // The namespace the functions emit into is the one the dashboard reads.
    let env = &template["Globals"]["Function"]["Environment"]["Variables"];
    let namespace = sub(env.get("LARDER_METRICS_NAMESPACE").expect("Globals set LARDER_METRICS_NAMESPACE"), &template);
    assert_eq!(namespace, format!("Larder/{STACK}"), "the namespace is Larder/<stack name>");

    let dashboards = resources_of_type(&template, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one CloudWatch dashboard");
    let body_text = sub(&dashboards[0].1["Properties"]["DashboardBody"], &template);
    let body: Json = serde_json::from_str(&body_text).unwrap_or_else(|e| panic!("the dashboard body is not JSON: {e}"));
    problems.extend(check_tokens(metrics, Dialect::CloudWatch, "CloudWatch dashboard", &body_text));
    let mut panels = cloudwatch_widgets(&body, &namespace, &mut problems);

    // The alarms over Larder's own metrics (the others are over AWS/* namespaces).
    let mut staleness_alarms = vec![];
    for (id, alarm) in resources_of_type(&template, "AWS::CloudWatch::Alarm") {
        let props = &alarm["Properties"];
        if props.get("Namespace").and_then(Yaml::as_str).is_some_and(|ns| ns.starts_with("Larder")) {
            problems.push(format!("{id}: a plain-metric alarm over Larder's namespace (use a Metrics Insights query)"));
        }
        let Some(queries) = props.get("Metrics").and_then(Yaml::as_sequence) else { continue };
        let mut panel = Panel { title: id.clone(), ..Panel::default() };
        for q in queries {
            let Some(expression) = q.get("Expression") else { continue };
            let expression = sub(expression, &template);
            problems.extend(check_tokens(metrics, Dialect::CloudWatch, &id, &expression));
            panel.uses.extend(expression_uses(&expression, &namespace, &id, &mut problems));
            panel.queries.push_str(&expression);
        }
        if panel.queries.contains("larder_view_staleness_seconds") {
            staleness_alarms.push((id, props, panel.queries.clone()));
        }
        panels.push(panel);
    }

    for p in &panels {
        for u in &p.uses {
            problems
                .extend(check_use(metrics, Dialect::CloudWatch, u).into_iter().map(|e| format!("{}: {e}", p.title)));
        }
    }

    // The staleness alarm: MAX over every view, the parameter as threshold, the notification
    // target of the other alarms.
    match staleness_alarms.as_slice() {
        [(id, props, query)] => {
            match parse_insights(query) {
                Ok(q) if q.function == "MAX" && q.metric == "larder_view_staleness_seconds" => {}
                other => problems
                    .push(format!("{id}: expected SELECT MAX(larder_view_staleness_seconds) ..., got {other:?}")),
            }
            let threshold = &props["Threshold"];
            let is_ref = matches!(threshold, Yaml::Tagged(t) if t.tag == "Ref" && t.value == "StalenessAlarmSeconds");
            if !is_ref {
                problems.push(format!("{id}: Threshold must be !Ref StalenessAlarmSeconds, is {threshold:?}"));
            }
            if template["Parameters"].get("StalenessAlarmSeconds").and_then(|p| p.get("Default")).is_none() {
                problems.push("parameter StalenessAlarmSeconds with a default is missing".into());
            }
            if props["ComparisonOperator"] != "GreaterThanThreshold" {
                problems.push(format!("{id}: ComparisonOperator must be GreaterThanThreshold"));
            }
            if props.get("TreatMissingData").is_none() {
                problems.push(format!("{id}: TreatMissingData must be chosen"));
            }
            let reference = &template["Resources"]["GetOnlineFeaturesErrorsAlarm"]["Properties"];
            for actions in ["AlarmActions", "OKActions"] {
                if props.get(actions) != reference.get(actions) {
                    problems.push(format!("{id}: {actions} differ from the other alarms'"));
                }
            }
        }
        other => {
            problems.push(format!("expected one alarm querying larder_view_staleness_seconds, found {}", other.len()))
        }
    }

    problems.extend(check_required(
        "CloudWatch dashboard",
        &panels,
        &[
            req("serving latency", "larder_request_duration_seconds", &["route"], true, &["'p50'", "'p99'"]),
            req("requests by status", "larder_requests_total", &["status"], false, &["GROUP BY status"]),
            req(
                "miss rate",
                "larder_feature_answers_total",
                &["status", "view"],
                false,
                &["NOT_FOUND", "OUTSIDE_MAX_AGE"],
            ),
            req(
                "misses per view",
                "larder_feature_answers_total",
                &["status", "view"],
                false,
                &["NOT_FOUND", "OUTSIDE_MAX_AGE", "GROUP BY view"],
            ),
            req("redis", "larder_redis_duration_seconds", &["operation"], true, &[]),
            req("push lag", "larder_push_lag_seconds", &["view"], true, &[]),
            req(
                "written vs not newer",
                "larder_push_rows_not_newer_total",
                &[],
                false,
                &["larder_push_rows_written_total"],
            ),
            req("dead letters", "larder_push_dead_letters_total", &["reason"], false, &["GROUP BY reason"]),
            req("kinesis batch age", "larder_stream_batch_age_seconds", &["trigger"], true, &["kinesis"]),
            req(
                "materialization recency",
                "larder_view_materialized_age_seconds",
                &["view"],
                false,
                &["GROUP BY view"],
            ),
            req("staleness", "larder_view_staleness_seconds", &["view"], false, &["GROUP BY view"]),
            req("rows read", "larder_materialize_rows_read_total", &[], false, &[]),
            req("keys written", "larder_materialize_keys_written_total", &["view"], false, &[]),
            req("materialization duration", "larder_materialize_duration_seconds", &[], true, &[]),
            req("registry", "larder_registry_age_seconds", &[], false, &["larder_registry_refresh_errors_total"]),
        ],
    ));
    problems
}

// ------------------------------------------------------------------------------- Prometheus

/// The balanced group `(...)` opening at `open` (an index of '('): the index of its ')'.
fn closing(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote = None;
    for (i, &c) in b.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'' | b'`') => quote = Some(c),
            (None, b'(') => depth += 1,
            (None, b')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The opening '(' of the group whose ')' is at `close`.
fn opening(b: &[u8], close: usize) -> Option<usize> {
    (0..close).rev().find(|&o| b[o] == b'(' && closing(b, o) == Some(close))
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Positions of `word` as a whole word followed by `(` (after spaces): (start, the '(').
fn calls(expr: &str, word: &str) -> Vec<(usize, usize)> {
    let b = expr.as_bytes();
    let mut out = vec![];
    let mut from = 0;
    while let Some(at) = expr[from..].find(word) {
        let start = from + at;
        let end = start + word.len();
        from = end;
        if (start > 0 && is_word_byte(b[start - 1])) || (end < b.len() && is_word_byte(b[end])) {
            continue;
        }
        let paren = skip_spaces(b, end);
        if paren < b.len() && b[paren] == b'(' {
            out.push((start, paren));
        }
    }
    out
}

/// The metrics of a PromQL expression, each with the labels named with it.
fn promql_uses(expr: &str) -> Result<Vec<Use>, String> {
    let b = expr.as_bytes();
    let tokens = metric_tokens(expr);
    let mut uses: Vec<Use> = tokens
        .iter()
        .map(|(_, _, n)| Use { name: n.clone(), labels: vec![], exact: false, percentile: false })
        .collect();
    // Matchers: metric{label="v", label=~"re"}.
    for ((_, end, _), u) in tokens.iter().zip(&mut uses) {
        let brace = skip_spaces(b, *end);
        if brace < b.len() && b[brace] == b'{' {
            let close = brace + expr[brace..].find('}').ok_or("unterminated {")?;
            let mut in_quote = false;
            let mut part = String::new();
            for c in expr[brace + 1..close].chars().chain(std::iter::once(',')) {
                match c {
                    '"' => in_quote = !in_quote,
                    ',' if !in_quote => {
                        let label: String =
                            part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                        if !label.is_empty() {
                            u.labels.push(label);
                        }
                        part.clear();
                        continue;
                    }
                    _ => {}
                }
                part.push(c);
            }
        }
    }
    // Grouping clauses, each over its aggregation's argument (or the whole expression).
    for kw in ["by", "without", "on", "ignoring", "group_left", "group_right"] {
        for (start, open) in calls(expr, kw) {
            let close = closing(b, open).ok_or_else(|| format!("unterminated {kw}("))?;
            let labels: Vec<String> =
                expr[open + 1..close].split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
            let scope = match kw {
                "by" | "without" => {
                    let next = skip_spaces(b, close + 1);
                    if next < b.len() && b[next] == b'(' {
                        // sum by (x) (argument)
                        (next, closing(b, next).ok_or("unterminated aggregation")?)
                    } else {
                        // sum(argument) by (x)
                        let mut before = start;
                        while before > 0 && b[before - 1].is_ascii_whitespace() {
                            before -= 1;
                        }
                        if before == 0 || b[before - 1] != b')' {
                            return Err(format!("{kw} (...) neither before nor after an aggregation's argument"));
                        }
                        (opening(b, before - 1).ok_or("unbalanced")?, before - 1)
                    }
                }
                _ => (0, b.len()),
            };
            for ((pos, _, _), u) in tokens.iter().zip(&mut uses) {
                if (scope.0..scope.1).contains(pos) {
                    u.labels.extend(labels.iter().cloned());
                }
            }
        }
    }
    for (_, open) in calls(expr, "histogram_quantile") {
        let close = closing(b, open).ok_or("unterminated histogram_quantile(")?;
        for ((pos, _, _), u) in tokens.iter().zip(&mut uses) {
            if (open..close).contains(pos) {
                u.percentile = true;
            }
        }
    }
    for u in &mut uses {
        u.labels.sort();
        u.labels.dedup();
    }
    Ok(uses)
}

/// Everything wrong with infra/grafana/larder.json, given its text and the list of metrics.
fn grafana_problems(text: &str, metrics: &[Metric]) -> Vec<String> {
    let dash: Json = serde_json::from_str(text).expect("infra/grafana/larder.json is JSON");
    let mut problems = check_tokens(metrics, Dialect::Prometheus, "Grafana dashboard", text);

    // Importable: a DS_PROMETHEUS input and variable, every query through it.
    let ds = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    if !dash["__inputs"]
        .as_array()
        .is_some_and(|i| i.iter().any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"))
    {
        problems.push("Grafana dashboard: no DS_PROMETHEUS input".into());
    }
    let variables = dash["templating"]["list"].as_array().cloned().unwrap_or_default();
    if !variables
        .iter()
        .any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource" && v["query"] == "prometheus")
    {
        problems.push("Grafana dashboard: no DS_PROMETHEUS datasource variable".into());
    }
    if dash["schemaVersion"].as_u64().is_none_or(|v| v < 39) {
        problems.push("Grafana dashboard: schemaVersion of a current Grafana expected".into());
    }

    let mut panels = vec![];
    fn walk<'j>(list: &'j Json, out: &mut Vec<&'j Json>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut all = vec![];
    walk(&dash["panels"], &mut all);
    for p in all {
        let title = p["title"].as_str().unwrap_or("?").to_string();
        let mut panel = Panel { title: title.clone(), ..Panel::default() };
        if p["type"] != "row" && p["datasource"] != ds {
            problems.push(format!("Grafana panel {title}: datasource must be {ds}"));
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            if t["datasource"] != ds {
                problems.push(format!("Grafana panel {title}: a target's datasource must be {ds}"));
            }
            let expr = t["expr"].as_str().unwrap_or("");
            panel.queries.push_str(expr);
            panel.queries.push('\n');
            match promql_uses(expr) {
                Ok(uses) => panel.uses.extend(uses),
                Err(e) => problems.push(format!("Grafana panel {title}: {e} in {expr}")),
            }
        }
        panels.push(panel);
    }
    for v in &variables {
        let query = v["definition"].as_str().or(v["query"]["query"].as_str()).unwrap_or("");
        if let Some(args) = query.strip_prefix("label_values(").and_then(|a| a.strip_suffix(')')) {
            let mut parts = args.split(',').map(str::trim);
            let (metric, label) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let metric = metric.split('{').next().unwrap().to_string();
            panels.push(Panel {
                title: format!("variable {}", v["name"]),
                uses: vec![Use { name: metric, labels: vec![label.to_string()], exact: false, percentile: false }],
                queries: query.to_string(),
            });
        }
    }
    for p in &panels {
        for u in &p.uses {
            problems.extend(
                check_use(metrics, Dialect::Prometheus, u).into_iter().map(|e| format!("Grafana {}: {e}", p.title)),
            );
        }
    }
    problems.extend(check_required(
        "Grafana dashboard",
        &panels,
        &[
            req(
                "serving latency",
                "larder_request_duration_seconds_bucket",
                &["le", "route"],
                true,
                &["0.5,", "0.99,"],
            ),
            req("requests by status", "larder_requests_total", &["status"], false, &[]),
            req(
                "miss rate",
                "larder_feature_answers_total",
                &["view", "status"],
                false,
                &["NOT_FOUND", "OUTSIDE_MAX_AGE", " / "],
            ),
            req("redis", "larder_redis_duration_seconds_bucket", &["le", "operation"], true, &[]),
            req("push lag", "larder_push_lag_seconds_bucket", &["le", "view"], true, &[]),
            req(
                "written vs not newer",
                "larder_push_rows_not_newer_total",
                &[],
                false,
                &["larder_push_rows_written_total"],
            ),
            req("dead letters", "larder_push_dead_letters_total", &["reason"], false, &[]),
            req("batch age", "larder_stream_batch_age_seconds_bucket", &["le"], true, &[]),
            req("materialization recency", "larder_view_materialized_age_seconds", &["view"], false, &[]),
            req("staleness", "larder_view_staleness_seconds", &["view"], false, &[]),
            req("rows read", "larder_materialize_rows_read_total", &[], false, &[]),
            req("keys written", "larder_materialize_keys_written_total", &["view"], false, &[]),
            req("materialization duration", "larder_materialize_duration_seconds_bucket", &["le"], true, &[]),
            req("registry age", "larder_registry_age_seconds", &[], false, &[]),
            req("refresh errors", "larder_registry_refresh_errors_total", &[], false, &[]),
        ],
    ));
    problems
}

fn assert_clean(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn the_cloudwatch_dashboard_and_staleness_alarm_use_the_emitted_names() {
    assert_clean("infra/template.yaml", &cloudwatch_problems(&read("infra/template.yaml"), ALL));
}

#[test]
fn the_grafana_dashboard_uses_the_emitted_names() {
    assert_clean("infra/grafana/larder.json", &grafana_problems(&read("infra/grafana/larder.json"), ALL));
}

/// names.rs renames a metric (here: a copy of `ALL` with one name changed): both fail.
#[test]
fn a_metric_renamed_in_names_fails_both_dashboards() {
    let renamed: Vec<Metric> =
        ALL.iter()
            .map(|m| {
                if m.name == "larder_push_lag_seconds" {
                    Metric { name: "larder_push_delay_seconds", ..*m }
                } else {
                    *m
                }
            })
            .collect();
    for problems in [
        cloudwatch_problems(&read("infra/template.yaml"), &renamed),
        grafana_problems(&read("infra/grafana/larder.json"), &renamed),
    ] {
        assert!(problems.iter().any(|p| p.contains("larder_push_lag_seconds")), "{problems:#?}");
    }
}

/// A dashboard renames a metric, or uses a label the metric does not have: it fails.
#[test]
fn a_metric_or_label_renamed_in_a_dashboard_fails() {
    let template = read("infra/template.yaml");
    let grafana = read("infra/grafana/larder.json");
    for (from, to) in [
        ("larder_push_dead_letters_total", "larder_push_deadletters_total"),
        ("larder_view_staleness_seconds", "larder_view_stale_seconds"),
        ("GROUP BY reason", "GROUP BY code"),
        (",route}", ",path}"),
    ] {
        assert!(template.contains(from), "{from}");
        let problems = cloudwatch_problems(&template.replace(from, to), ALL);
        assert!(!problems.is_empty(), "renaming {from} to {to} in the template went unnoticed");
    }
    for (from, to) in [
        ("larder_push_dead_letters_total", "larder_push_deadletters_total"),
        ("sum by (reason)", "sum by (code)"),
        ("larder_request_duration_seconds_bucket", "larder_request_duration_seconds_count"),
        ("larder_requests_total", "larder_requests_total_bucket"),
        ("view=~\\\"$view\\\"", "feature_view=~\\\"$view\\\""),
    ] {
        assert!(grafana.contains(from), "{from}");
        let problems = grafana_problems(&grafana.replace(from, to), ALL);
        assert!(!problems.is_empty(), "renaming {from} to {to} in the Grafana dashboard went unnoticed");
    }
}

#[test]
fn promql_clauses_apply_to_their_aggregation() {
    let uses = promql_uses(
        r#"sum(rate(a_larder_x[5m])) + sum(rate(larder_one{status="x"}[5m])) by (view) / sum by (le, route) (rate(larder_two_bucket[1m]))"#,
    )
    .unwrap();
    let labels = |name: &str| uses.iter().find(|u| u.name == name).unwrap().labels.clone();
    assert_eq!(labels("larder_one"), ["status", "view"]);
    assert_eq!(labels("larder_two_bucket"), ["le", "route"]);
    assert!(uses.iter().all(|u| u.name != "larder_x"), "a_larder_x is not a larder metric");
    let q = parse_insights(
        r#"SELECT SUM(m) FROM SCHEMA("Larder/s", status, view) WHERE status = 'A' OR view != 'b' GROUP BY view"#,
    )
    .unwrap();
    assert_eq!(
        (q.schema, q.where_keys, q.group_by),
        (vec!["status".into(), "view".into()], vec!["status".into(), "view".into()], vec!["view".into()])
    );
    let s = parse_searches(
        r#"SUM(SEARCH('{"Larder/s",status,view} MetricName="m" (status="A" OR status="B")', 'p99', 300))"#,
    )
    .unwrap();
    assert_eq!(
        (s[0].metric.as_deref(), s[0].keys.clone(), s[0].statistic.as_str()),
        (Some("m"), vec!["status".into(), "status".into()], "p99")
    );
}

/// docs/observability.md's table lists exactly the metrics of `ALL`, with their kind, unit,
/// labels and meaning.
#[test]
fn the_operators_table_matches_the_names() {
    let doc = read("docs/observability.md");
    let rows: Vec<Vec<String>> = doc
        .lines()
        .filter(|l| l.starts_with("| `larder_"))
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect();
    let expected: Vec<Vec<String>> = ALL
        .iter()
        .map(|m| {
            let labels = if m.labels.is_empty() {
                "none".to_string()
            } else {
                m.labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
            };
            vec![
                format!("`{}`", m.name),
                format!("{:?}", m.kind).to_lowercase(),
                format!("{:?}", m.unit).to_lowercase(),
                labels,
                m.help.to_string(),
            ]
        })
        .collect();
    assert_eq!(rows, expected, "regenerate docs/observability.md's table from shared/src/telemetry/names.rs");
}
