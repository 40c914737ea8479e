//! `larder list [entities|sources|views|services]`: what the registry holds, one table per kind,
//! like Feast's `feast entities list` / `feast feature-views list`. No kind: every kind, grouped.
//! `--json`: the full objects (the same as `larder describe --json`), grouped by kind.

use clap::{Args, ValueEnum};
use larder::Result;
use larder::aws::Aws;
use larder::registry::Registry;
use larder::storage::Storage;
use serde_json::{Map, Value as Json};

use super::RepoArgs;
use super::describe::{self, Object};
use super::table::Table;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Entities,
    Sources,
    Views,
    Services,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Entities, Kind::Sources, Kind::Views, Kind::Services];

    fn name(self) -> &'static str {
        match self {
            Kind::Entities => "entities",
            Kind::Sources => "sources",
            Kind::Views => "views",
            Kind::Services => "services",
        }
    }
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Only this kind of object (default: every kind).
    pub kind: Option<Kind>,
    /// Print JSON: an object with one array of full objects per kind.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: ListArgs, aws: &Aws) -> Result<()> {
    let cfg = a.repo.config()?;
    let registry = larder::registry::load(&cfg, &Storage::new(aws)).await?;
    let kinds: Vec<Kind> = a.kind.map_or_else(|| Kind::ALL.to_vec(), |k| vec![k]);
    if a.json {
        let mut out = Map::new();
        for k in kinds {
            out.insert(k.name().into(), Json::Array(objects(&registry, k).iter().map(describe::to_json).collect()));
        }
        println!("{}", serde_json::to_string_pretty(&Json::Object(out)).unwrap_or_default());
        return Ok(());
    }
    let grouped = kinds.len() > 1;
    let mut sections = Vec::new();
    for k in kinds {
        let t = table(&registry, k);
        let body = if t.is_empty() { format!("  (no {})\n", k.name()) } else { t.render(if grouped { 2 } else { 0 }) };
        sections.push(if grouped { format!("{}\n{body}", k.name()) } else { body });
    }
    print!("{}", sections.join("\n"));
    Ok(())
}

/// The objects of one kind, in name order (on-demand views among the views).
fn objects(registry: &Registry, kind: Kind) -> Vec<Object<'_>> {
    match kind {
        Kind::Entities => registry.entities.values().map(Object::Entity).collect(),
        Kind::Sources => registry.data_sources.values().map(Object::Source).collect(),
        Kind::Views => {
            let mut views: Vec<(&str, Object<'_>)> =
                registry.feature_views.values().map(|v| (v.name.as_str(), Object::View(v))).collect();
            views.extend(registry.on_demand_views.iter().map(|n| (n.as_str(), Object::OnDemandView(n))));
            views.sort_by(|a, b| a.0.cmp(b.0));
            views.into_iter().map(|(_, o)| o).collect()
        }
        Kind::Services => registry.feature_services.values().map(Object::Service).collect(),
    }
}

/// One row per object: the summary `describe` expands.
fn table(registry: &Registry, kind: Kind) -> Table {
    let mut t = match kind {
        Kind::Entities => Table::new(["NAME", "JOIN KEY", "TYPE", "DESCRIPTION"]),
        Kind::Sources => Table::new(["NAME", "TYPE", "DETAIL", "TIMESTAMP FIELD"]),
        Kind::Views => Table::new(["NAME", "ENTITIES", "FEATURES", "TTL", "ONLINE", "SOURCE", "MATERIALIZED UNTIL"]),
        Kind::Services => Table::new(["NAME", "VIEWS"]),
    };
    for o in objects(registry, kind) {
        match o {
            Object::Entity(e) => {
                t.row([e.name.clone(), e.join_key.clone(), describe::type_text(e.value_type), e.description.clone()])
            }
            Object::Source(s) => t.row([
                s.name.clone(),
                s.kind_name().to_string(),
                describe::source_detail(s),
                s.timestamp_field.clone(),
            ]),
            Object::View(v) => t.row([
                v.name.clone(),
                v.entities.join(", "),
                v.features.len().to_string(),
                describe::ttl_text(v.ttl),
                if v.online { "yes" } else { "no" }.to_string(),
                describe::view_sources(v),
                describe::materialized_until(v),
            ]),
            Object::OnDemandView(name) => {
                t.row([name.to_string(), "(on demand: not served)".to_string()]);
            }
            Object::Service(s) => {
                let views: Vec<String> =
                    s.projections.iter().map(|p| format!("{} ({})", p.name_to_use(), p.features.len())).collect();
                t.row([s.name.clone(), views.join(", ")]);
            }
        }
    }
    t
}
