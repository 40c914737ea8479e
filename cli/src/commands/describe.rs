//! `larder describe NAME`: one registry object in full (an entity, a data source, a feature view
//! or a feature service), as Feast's `feast feature-views describe` and `feast registry-dump`
//! show them. A name used by objects of several kinds describes each. `--json` gives the same
//! objects as `larder list --json`.
//!
//! The text and JSON forms of every kind live here; `list` shows their summaries.

use clap::Args;
use larder::aws::Aws;
use larder::registry::{DataSource, Entity, FeatureService, FeatureView, Registry, SourceKind, ViewKind};
use larder::storage::Storage;
use larder::time::EventTime;
use larder::value::ValueType;
use larder::{Error, Result};
use serde_json::{Value as Json, json};

use super::RepoArgs;
use super::table::Table;

#[derive(Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The name of an entity, data source, feature view or feature service.
    pub name: String,
    /// Print JSON (an array: one object per kind the name is used by).
    #[arg(long)]
    pub json: bool,
}

/// A registry object of any kind, for commands that show several kinds alike.
pub enum Object<'r> {
    Entity(&'r Entity),
    Source(&'r DataSource),
    View(&'r FeatureView),
    OnDemandView(&'r str),
    Service(&'r FeatureService),
}

pub async fn run(a: DescribeArgs, aws: &Aws) -> Result<()> {
    let cfg = a.repo.config()?;
    let registry = larder::registry::load(&cfg, &Storage::new(aws)).await?;
    let found = find(&registry, &a.name);
    if found.is_empty() {
        return Err(Error::BadRequest(unknown(&registry, &a.name)));
    }
    if a.json {
        let objects: Vec<Json> = found.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&objects).unwrap_or_default());
    } else {
        let texts: Vec<String> = found.iter().map(text).collect();
        print!("{}", texts.join("\n"));
    }
    Ok(())
}

/// Every object named `name`, one per kind.
pub fn find<'r>(registry: &'r Registry, name: &str) -> Vec<Object<'r>> {
    let mut found = Vec::new();
    if let Some(e) = registry.entities.get(name) {
        found.push(Object::Entity(e));
    }
    if let Some(s) = registry.data_sources.get(name) {
        found.push(Object::Source(s));
    }
    if let Some(v) = registry.feature_views.get(name) {
        found.push(Object::View(v));
    }
    if let Some(v) = registry.on_demand_views.get(name) {
        found.push(Object::OnDemandView(v));
    }
    if let Some(s) = registry.feature_services.get(name) {
        found.push(Object::Service(s));
    }
    found
}

/// One line saying nothing is called `name`, and what there is.
fn unknown(registry: &Registry, name: &str) -> String {
    let names = |it: &mut dyn Iterator<Item = &String>| {
        let all: Vec<&str> = it.map(String::as_str).collect();
        if all.is_empty() { "none".to_string() } else { all.join(", ") }
    };
    let mut views: Vec<&String> = registry.feature_views.keys().chain(&registry.on_demand_views).collect();
    views.sort();
    format!(
        "nothing is named '{name}' in project '{}'; entities: {}; data sources: {}; feature views: {}; feature services: {}",
        registry.project,
        names(&mut registry.entities.keys()),
        names(&mut registry.data_sources.keys()),
        names(&mut views.into_iter()),
        names(&mut registry.feature_services.keys()),
    )
}

/// A type as `features.yaml` spells it; `-` when the registry leaves it unset (Feast often
/// does for entities: the views' join-key columns carry the type).
pub fn type_text(t: ValueType) -> String {
    if t == ValueType::Invalid { "-".to_string() } else { t.to_string() }
}

/// A TTL as `features.yaml` writes one (`3650d`, `1h30m`, `45s`); no TTL is `none`.
pub fn ttl_text(ttl: Option<std::time::Duration>) -> String {
    let Some(ttl) = ttl else { return "none".into() };
    let s = ttl.as_secs();
    let parts = [(s / 86_400, "d"), (s / 3600 % 24, "h"), (s / 60 % 60, "m"), (s % 60, "s")];
    let text: String = parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect();
    if text.is_empty() { "0s".into() } else { text }
}

/// Where a source's rows come from, in a few words.
pub fn source_detail(s: &DataSource) -> String {
    match &s.kind {
        SourceKind::File { path, .. } => path.clone(),
        SourceKind::Push { batch } => format!("batch source {}", batch.name),
        SourceKind::Other { class_type, .. } if !class_type.is_empty() => class_type.clone(),
        _ => String::new(),
    }
}

/// A view's sources, batch first: `name` or `name + push_source`.
pub fn view_sources(v: &FeatureView) -> String {
    let names: Vec<&str> = [&v.batch_source, &v.stream_source].into_iter().flatten().map(|s| s.name.as_str()).collect();
    if names.is_empty() { "-".into() } else { names.join(" + ") }
}

/// The end of the last materialized interval, or `never`.
pub fn materialized_until(v: &FeatureView) -> String {
    v.last_materialized_end().map_or_else(|| "never".to_string(), |t| t.to_string())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn time_json(t: Option<EventTime>) -> Json {
    t.map_or(Json::Null, |t| Json::String(t.to_string()))
}

/// The full text of one object.
pub fn text(o: &Object<'_>) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        if !value.is_empty() {
            out.push_str(&format!("  {label:<18}{value}\n"));
        }
    };
    let tags = |t: &std::collections::BTreeMap<String, String>| {
        t.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    };
    match o {
        Object::Entity(e) => {
            let head = format!("entity {}\n", e.name);
            line("join key", &e.join_key);
            line("type", &type_text(e.value_type));
            line("description", &e.description);
            line("tags", &tags(&e.tags));
            line("owner", &e.owner);
            out.insert_str(0, &head);
        }
        Object::Source(s) => {
            let head = format!("data source {}\n", s.name);
            line("type", s.kind_name());
            match &s.kind {
                SourceKind::File { path, s3_endpoint_override } => {
                    line("path", path);
                    line("s3 endpoint", s3_endpoint_override.as_deref().unwrap_or(""));
                }
                SourceKind::Push { batch } => line("batch source", &batch.name),
                _ => line("detail", &source_detail(s)),
            }
            line("timestamp field", &s.timestamp_field);
            line("created column", s.created_timestamp_column.as_deref().unwrap_or(""));
            line("partition column", s.date_partition_column.as_deref().unwrap_or(""));
            let mapping: Vec<String> = s.field_mapping.iter().map(|(k, v)| format!("{k} -> {v}")).collect();
            line("field mapping", &mapping.join(", "));
            line("description", &s.description);
            line("tags", &tags(&s.tags));
            line("owner", &s.owner);
            out.insert_str(0, &head);
        }
        Object::View(v) => {
            let head = format!("feature view {}\n", v.name);
            line("type", if v.kind == ViewKind::Stream { "stream" } else { "batch" });
            line("entities", &v.entities.join(", "));
            let keys: Vec<String> =
                v.entity_columns.iter().map(|c| format!("{} ({})", c.name, type_text(c.dtype))).collect();
            line("join keys", &keys.join(", "));
            line("ttl", &ttl_text(v.ttl));
            let served = if v.servable() { "" } else { " (disabled or not available online: not served)" };
            line("online", &format!("{}{served}", yes(v.online)));
            line("offline", yes(v.offline));
            line("batch source", v.batch_source.as_ref().map_or("-", |s| s.name.as_str()));
            line("stream source", v.stream_source.as_ref().map_or("", |s| s.name.as_str()));
            line("description", &v.description);
            line("tags", &tags(&v.tags));
            line("owner", &v.owner);
            out.insert_str(0, &head);
            out.push_str(&format!("  features ({})\n", v.features.len()));
            let mut fields = Table::new(["NAME", "TYPE", "DESCRIPTION"]);
            for f in &v.features {
                fields.row([f.name.clone(), type_text(f.dtype), f.description.clone()]);
            }
            out.push_str(&fields.render(4));
            if v.materialization_intervals.is_empty() {
                out.push_str("  materialized      never\n");
            } else {
                let n = v.materialization_intervals.len();
                let plural = if n == 1 { "" } else { "s" };
                out.push_str(&format!("  materialized      {n} interval{plural}, up to {}\n", materialized_until(v)));
                let mut intervals = Table::new(["START", "END"]);
                for (start, end) in &v.materialization_intervals {
                    intervals.row([start.to_string(), end.to_string()]);
                }
                out.push_str(&intervals.render(4));
            }
        }
        Object::OnDemandView(name) => {
            out.push_str(&format!(
                "on-demand feature view {name}\n  Larder cannot run its Python transformation; it is not served\n"
            ));
        }
        Object::Service(s) => {
            let head = format!("feature service {}\n", s.name);
            line("description", &s.description);
            line("tags", &tags(&s.tags));
            line("owner", &s.owner);
            out.insert_str(0, &head);
            let mut t = Table::new(["VIEW", "ALIAS", "FEATURES"]);
            for p in &s.projections {
                t.row([p.view.clone(), p.alias.clone().unwrap_or_default(), p.features.join(", ")]);
            }
            out.push_str("  projections\n");
            out.push_str(&t.render(4));
        }
    }
    out
}

/// One object as JSON, with a `kind` saying what it is.
pub fn to_json(o: &Object<'_>) -> Json {
    match o {
        Object::Entity(e) => json!({
            "kind": "entity",
            "name": e.name,
            "join_key": e.join_key,
            "value_type": type_text(e.value_type),
            "description": e.description,
            "tags": e.tags,
            "owner": e.owner,
        }),
        Object::Source(s) => {
            let mut j = json!({
                "kind": "data_source",
                "name": s.name,
                "type": s.kind_name(),
                "timestamp_field": s.timestamp_field,
                "created_timestamp_column": s.created_timestamp_column,
                "date_partition_column": s.date_partition_column,
                "field_mapping": s.field_mapping,
                "description": s.description,
                "tags": s.tags,
                "owner": s.owner,
            });
            match &s.kind {
                SourceKind::File { path, .. } => j["path"] = json!(path),
                SourceKind::Push { batch } => j["batch_source"] = json!(batch.name),
                _ => {}
            }
            j
        }
        Object::View(v) => json!({
            "kind": "feature_view",
            "name": v.name,
            "type": if v.kind == ViewKind::Stream { "stream" } else { "batch" },
            "entities": v.entities,
            "join_keys": v.entity_columns.iter().map(|c| json!({"name": c.name, "type": type_text(c.dtype)})).collect::<Vec<_>>(),
            "features": v.features.iter().map(|f| json!({"name": f.name, "type": type_text(f.dtype), "description": f.description})).collect::<Vec<_>>(),
            "ttl_seconds": v.ttl.map(|t| t.as_secs()),
            "online": v.online,
            "offline": v.offline,
            "servable": v.servable(),
            "batch_source": v.batch_source.as_ref().map(|s| &s.name),
            "stream_source": v.stream_source.as_ref().map(|s| &s.name),
            "materialization_intervals": v.materialization_intervals.iter().map(|(s, e)| json!({"start": s.to_string(), "end": e.to_string()})).collect::<Vec<_>>(),
            "materialized_until": time_json(v.last_materialized_end()),
            "description": v.description,
            "tags": v.tags,
            "owner": v.owner,
        }),
        Object::OnDemandView(name) => json!({"kind": "on_demand_feature_view", "name": name, "servable": false}),
        Object::Service(s) => json!({
            "kind": "feature_service",
            "name": s.name,
            "projections": s.projections.iter().map(|p| json!({"view": p.view, "alias": p.alias, "features": p.features})).collect::<Vec<_>>(),
            "description": s.description,
            "tags": s.tags,
            "owner": s.owner,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let yaml = include_str!("../../../examples/driver/features.yaml");
        larder::registry::yaml::parse(yaml, "features.yaml", "driver_demo", 3).unwrap()
    }

    #[test]
    fn ttls_read_like_features_yaml() {
        use std::time::Duration;
        assert_eq!(ttl_text(None), "none");
        assert_eq!(ttl_text(Some(Duration::from_secs(3650 * 86_400))), "3650d");
        assert_eq!(ttl_text(Some(Duration::from_secs(5400))), "1h30m");
        assert_eq!(ttl_text(Some(Duration::from_secs(0))), "0s");
    }

    #[test]
    fn a_name_of_several_kinds_finds_each_and_an_unknown_one_lists_what_exists() {
        let mut reg = registry();
        let entity = reg.entities["driver"].clone();
        reg.entities.insert("driver_fresh".into(), Entity { name: "driver_fresh".into(), ..entity });
        let kinds: Vec<String> =
            find(&reg, "driver_fresh").iter().map(|o| to_json(o)["kind"].as_str().unwrap().to_string()).collect();
        assert_eq!(kinds, ["entity", "feature_view"]);
        assert!(find(&reg, "nope").is_empty());
        let msg = unknown(&reg, "nope");
        assert!(msg.starts_with("nothing is named 'nope' in project 'driver_demo'"), "{msg}");
        assert!(msg.contains("feature views: driver_fresh, driver_hourly_stats"), "{msg}");
        assert!(msg.contains("feature services: driver_model_v1, driver_model_v2"), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
