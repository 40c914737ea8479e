//! Resolving what a request asks for: feature references or a feature service, grouped by
//! view, with output column names, and the entity columns each view needs.

use std::sync::Arc;

use crate::aggregate::ViewWindows;
use crate::error::{Error, ObjectKind, Result};
use crate::registry::{FeatureView, Registry};

/// The features read from one view (one projection of it, for a feature service).
#[derive(Debug, Clone)]
pub struct ViewGroup {
    pub view: Arc<FeatureView>,
    /// Indexes into `view.features`, in request order.
    pub features: Vec<usize>,
    /// Indexes into `view.aggregations` (window aggregations answered from tiles), in request
    /// order.
    pub aggregations: Vec<usize>,
    /// The view's aggregations as computed, when any is asked for.
    pub windows: Option<Arc<ViewWindows>>,
    /// For each join key of the view (in `entity_columns` order), the request column holding it:
    /// the join key's name, or the name a feature service's `join_key_map` gives it.
    pub key_columns: Vec<String>,
}

/// One feature column of the answer.
#[derive(Debug, Clone)]
pub struct OutputFeature {
    pub name: String,
    /// Index into [`Plan::groups`].
    pub group: usize,
    /// Index into the group's `features` (and so into its read result cells), or into its
    /// `aggregations` when `aggregated`.
    pub slot: usize,
    pub aggregated: bool,
}

/// A feature of a view, as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// Index into the view's features.
    Plain(usize),
    /// Index into the view's aggregations.
    Aggregation(usize),
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub groups: Vec<ViewGroup>,
    /// Feature columns in answer order: grouped by view, as Feast answers.
    pub outputs: Vec<OutputFeature>,
}

/// Splits `"view:feature"` at the first `:`.
fn split_ref(r: &str) -> Result<(&str, &str)> {
    match r.split_once(':') {
        Some((v, f)) if !v.is_empty() && !f.is_empty() => Ok((v, f)),
        _ => Err(Error::BadRequest(format!("feature reference '{r}' is not of the form 'feature_view:feature'"))),
    }
}

fn servable_view<'r>(registry: &'r Registry, name: &str) -> Result<&'r Arc<FeatureView>> {
    if let Some((base, version)) = name.split_once('@')
        && (version == "latest" || version.strip_prefix('v').is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())))
    {
        return Err(Error::Unsupported(format!(
            "'{name}': versioned feature view references need feature view versioning, which Larder does not support yet (use '{base}')"
        )));
    }
    let view = registry.view(name)?;
    if view.disabled {
        return Err(Error::Unsupported(format!("feature view '{name}' is disabled")));
    }
    if !view.servable() {
        return Err(Error::Unsupported(format!(
            "feature view '{name}' is not available online (state {:?})",
            view.state
        )));
    }
    Ok(view)
}

/// What `feature` of `view` is. A window aggregation's output is usually not among a stream
/// view's features (Feast does not list it there), and when the schema does declare it, the
/// aggregation answers it (Larder computes it; nothing else writes it).
fn feature_index(view: &FeatureView, feature: &str, project: &str) -> Result<Wanted> {
    if let Some(a) = view.aggregations.iter().position(|a| a.output() == feature) {
        let windows = ViewWindows::of(view).expect("the view has aggregations");
        return match &windows.aggregations[a] {
            Ok(_) => Ok(Wanted::Aggregation(a)),
            Err(e) => Err(Error::Unsupported(e.0.clone())),
        };
    }
    if let Some((i, _)) = view.feature(feature) {
        return Ok(Wanted::Plain(i));
    }
    Err(Error::NotFound {
        kind: ObjectKind::Feature,
        name: format!("{}:{feature}", view.name),
        project: project.to_string(),
    })
}

/// Builds the plan for `features` refs or a `feature_service` (which wins when set).
pub fn plan(
    registry: &Registry,
    features: &[String],
    feature_service: Option<&str>,
    full_feature_names: bool,
) -> Result<Plan> {
    let mut groups: Vec<ViewGroup> = Vec::new();
    // (group, feature index) pairs in request order, with the display prefix for full names.
    let mut wanted: Vec<(usize, Wanted, String)> = Vec::new();
    match feature_service {
        Some(name) => {
            let service = registry.service(name)?;
            for p in &service.projections {
                let view = servable_view(registry, &p.view)?;
                let g = groups.len();
                groups.push(ViewGroup {
                    view: view.clone(),
                    features: Vec::new(),
                    aggregations: Vec::new(),
                    windows: None,
                    key_columns: view
                        .entity_columns
                        .iter()
                        .map(|c| p.join_key_map.get(&c.name).cloned().unwrap_or_else(|| c.name.clone()))
                        .collect(),
                });
                for f in &p.features {
                    wanted.push((g, feature_index(view, f, &registry.project)?, p.name_to_use().to_string()));
                }
            }
        }
        None => {
            if features.is_empty() {
                return Err(Error::BadRequest(
                    "the request names no features: give `features` (view:feature) or `feature_service`".into(),
                ));
            }
            for r in features {
                let (view_name, feature) = split_ref(r)?;
                let g = match groups.iter().position(|g| g.view.name == view_name) {
                    Some(g) => g,
                    None => {
                        let view = servable_view(registry, view_name)?;
                        groups.push(ViewGroup {
                            view: view.clone(),
                            features: Vec::new(),
                            aggregations: Vec::new(),
                            windows: None,
                            key_columns: view.entity_columns.iter().map(|c| c.name.clone()).collect(),
                        });
                        groups.len() - 1
                    }
                };
                wanted.push((g, feature_index(&groups[g].view, feature, &registry.project)?, view_name.to_string()));
            }
        }
    }
    let mut outputs: Vec<OutputFeature> = Vec::with_capacity(wanted.len());
    for (g, want, prefix) in wanted {
        let group = &mut groups[g];
        let feature = match want {
            Wanted::Plain(fi) => group.view.features[fi].name.clone(),
            Wanted::Aggregation(a) => group.view.aggregations[a].output(),
        };
        let name = if full_feature_names { format!("{prefix}__{feature}") } else { feature };
        // The same feature asked for twice is answered once: a feature is in its group only
        // once it has an output.
        let (list, i) = match want {
            Wanted::Plain(fi) => (&mut group.features, fi),
            Wanted::Aggregation(a) => (&mut group.aggregations, a),
        };
        if list.contains(&i) {
            continue;
        }
        list.push(i);
        let slot = list.len() - 1;
        let aggregated = matches!(want, Wanted::Aggregation(_));
        if aggregated && group.windows.is_none() {
            group.windows = ViewWindows::of(&group.view).map(Arc::new);
        }
        if let Some(clash) = outputs.iter().find(|o| o.name == name) {
            let other = &groups[clash.group].view.name;
            return Err(Error::BadRequest(format!(
                "feature name '{name}' is requested from both '{other}' and '{}'; set full_feature_names to true to tell them apart",
                groups[g].view.name
            )));
        }
        outputs.push(OutputFeature { name, group: g, slot, aggregated });
    }
    // Feast answers features grouped by view, views in the order they first appear, each
    // view's features in request order: `[a:x, b:y, a:z]` answers `x, z, y`.
    outputs.sort_by_key(|o| o.group);
    Ok(Plan { groups, outputs })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::registry::aggregation::Aggregation;

    #[test]
    fn an_aggregated_feature_is_named_for_what_it_is() {
        let yaml = "entities: {sensor: {join_key: sensor_id, type: Int64}}\n\
                    sources: {s: {type: file, path: x.parquet, timestamp_field: ts}}\n\
                    feature_views: {v: {entities: [sensor], source: s, features: {reading: Float64}}}\n";
        let mut reg = crate::registry::yaml::parse(yaml, "features.yaml", "p", 3).unwrap();
        let mut view = (*reg.feature_views["v"]).clone();
        let agg = |function: &str| Aggregation {
            column: "reading".into(),
            function: function.into(),
            window: Duration::from_secs(60),
            slide: None,
            name: String::new(),
        };
        view.aggregations = vec![agg("avg"), agg("median")];
        reg.feature_views.insert("v".into(), Arc::new(view));
        let err = |f: &str| plan(&reg, &[f.to_string()], None, false).err().unwrap();
        let e = err("v:median_reading_60s");
        assert_eq!((e.status(), e.code()), (422, "unsupported"));
        assert!(e.to_string().contains("aggregation 'median_reading_60s': unknown function 'median'"), "{e}");
        assert_eq!(err("v:max_reading_60s").status(), 404, "not an aggregation of the view: no such feature");
        let p = plan(&reg, &["v:reading".into(), "v:avg_reading_60s".into()], None, true).unwrap();
        assert_eq!(p.groups[0].features, [0]);
        assert_eq!(p.groups[0].aggregations, [0]);
        assert!(p.groups[0].windows.is_some());
        let names: Vec<(&str, bool, usize)> =
            p.outputs.iter().map(|o| (o.name.as_str(), o.aggregated, o.slot)).collect();
        assert_eq!(names, [("v__reading", false, 0), ("v__avg_reading_60s", true, 0)]);
        let plain = plan(&reg, &["v:reading".to_string()], None, false).unwrap();
        assert!(plain.groups[0].windows.is_none(), "a request for plain features only reads no tiles");
    }
}
