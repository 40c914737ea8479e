//! Changes to a serialized registry that keep everything Larder does not own byte for byte.
//!
//! - [`apply`]: makes the project's entities, data sources, feature views and feature services
//!   (and, when `features.yaml` has those sections, stream views and permissions) match the
//!   definitions (creating, updating, deleting), keeps objects of other projects and object
//!   kinds it does not define (on-demand views, history) untouched, and keeps an unchanged
//!   object's original bytes.
//! - [`record_materialization`]: appends an interval to views' metadata and marks them
//!   AVAILABLE_ONLINE, touching nothing else.

use std::collections::{BTreeMap, HashMap};

use prost::Message;

use super::convert::{self, Stamps};
use super::model::*;
use crate::error::{Error, Result};
use crate::proto::core::{self as pb, feature_view_field as fvf, feature_view_state, registry_field as rf};
use crate::proto::wire::{self, RawField};
use crate::time::EventTime;

/// What `apply` does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub kind: &'static str,
    pub name: String,
    pub action: Action,
}

/// The changes an apply makes, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Unchanged)
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.has_changes() {
            return writeln!(f, "No changes: the registry already matches the definitions.");
        }
        for c in self.changes.iter().filter(|c| c.action != Action::Unchanged) {
            let verb = match c.action {
                Action::Create => "+ create",
                Action::Update => "~ update",
                Action::Delete => "- delete",
                Action::Unchanged => "  keep",
            };
            writeln!(f, "{verb} {} {}", c.kind, c.name)?;
        }
        let count = |a| self.changes.iter().filter(|c| c.action == a).count();
        writeln!(
            f,
            "{} to create, {} to update, {} to delete.",
            count(Action::Create),
            count(Action::Update),
            count(Action::Delete)
        )
    }
}

fn spec_project_and_name(field: &RawField<'_>) -> Option<(String, String)> {
    match field.number {
        rf::ENTITIES => pb::Entity::decode(field.payload).ok()?.spec.map(|s| (s.project, s.name)),
        rf::FEATURE_VIEWS => pb::FeatureView::decode(field.payload).ok()?.spec.map(|s| (s.project, s.name)),
        rf::STREAM_FEATURE_VIEWS => {
            pb::StreamFeatureView::decode(field.payload).ok()?.spec.map(|s| (s.project, s.name))
        }
        rf::FEATURE_SERVICES => pb::FeatureService::decode(field.payload).ok()?.spec.map(|s| (s.project, s.name)),
        rf::DATA_SOURCES => pb::DataSource::decode(field.payload).ok().map(|s| (s.project, s.name)),
        rf::PROJECTS => pb::Project::decode(field.payload).ok()?.spec.map(|s| (s.name.clone(), s.name)),
        rf::PERMISSIONS => pb::Permission::decode(field.payload).ok()?.spec.map(|s| (s.project, s.name)),
        _ => None,
    }
}

/// Kinds whose objects `apply` owns for the project. Permissions and stream views too, when the
/// definitions have a `permissions:` or `stream_feature_views:` section: without one, apply
/// leaves the project's objects of that kind (written by `feast apply`, say) as they are.
fn owned_kinds(desired: &Registry) -> Vec<u32> {
    let mut kinds = vec![rf::ENTITIES, rf::DATA_SOURCES, rf::FEATURE_VIEWS, rf::FEATURE_SERVICES];
    if desired.permissions.is_some() {
        kinds.push(rf::PERMISSIONS);
    }
    if desired.stream_views_defined {
        kinds.push(rf::STREAM_FEATURE_VIEWS);
    }
    kinds
}

fn kind_name(number: u32) -> &'static str {
    match number {
        rf::ENTITIES => "entity",
        rf::DATA_SOURCES => "data source",
        rf::FEATURE_VIEWS => "feature view",
        rf::PERMISSIONS => "permission",
        rf::STREAM_FEATURE_VIEWS => "stream feature view",
        _ => "feature service",
    }
}

/// Whether two views have the same definition, what `features.yaml` says of them: their kind,
/// state, materialization history, transformation and layout are not part of it.
fn same_view_definition(a: &FeatureView, b: &FeatureView) -> bool {
    let FeatureView { kind, state, ref materialization_intervals, has_transformation, ref layout, .. } = *a;
    let b = FeatureView {
        kind,
        state,
        materialization_intervals: materialization_intervals.clone(),
        has_transformation,
        layout: layout.clone(),
        ..b.clone()
    };
    *a == b
}

fn created_of(field: &RawField<'_>) -> Option<EventTime> {
    let ts = match field.number {
        rf::ENTITIES => pb::Entity::decode(field.payload).ok()?.meta?.created_timestamp,
        rf::FEATURE_VIEWS => pb::FeatureView::decode(field.payload).ok()?.meta?.created_timestamp,
        rf::STREAM_FEATURE_VIEWS => pb::StreamFeatureView::decode(field.payload).ok()?.meta?.created_timestamp,
        rf::FEATURE_SERVICES => pb::FeatureService::decode(field.payload).ok()?.meta?.created_timestamp,
        rf::PERMISSIONS => pb::Permission::decode(field.payload).ok()?.meta?.created_timestamp,
        _ => None,
    };
    ts.as_ref().map(EventTime::from_proto)
}

/// Makes the registry's definitions for `desired.project` match `desired`. `current` is the
/// serialized registry (`None` if there is none yet). Returns the new bytes (`None` when
/// nothing changes) and the plan.
pub fn apply(
    current: Option<&[u8]>,
    desired: &Registry,
    key_version: u32,
    now: EventTime,
) -> Result<(Option<Vec<u8>>, Plan)> {
    let project = desired.project.as_str();
    let fields = match current {
        Some(bytes) => wire::split(bytes).map_err(|e| Error::storage(format!("registry is corrupt: {e}")))?,
        None => Vec::new(),
    };
    let existing = match current {
        Some(bytes) => convert::registry_from_bytes(bytes, project, key_version)?,
        None => Registry { project: project.to_string(), ..Default::default() },
    };
    let kinds = owned_kinds(desired);
    let kinds = kinds.as_slice();
    let unmatched = owned_objects(&fields, project, kinds);
    let mut objects = Objects { unmatched, now, plan: Plan::default(), out: BTreeMap::new() };
    objects.put_entities(desired, &existing)?;
    objects.put_sources(desired, &existing)?;
    objects.put_views(desired, &existing)?;
    objects.put_services(desired, &existing)?;
    objects.put_permissions(desired, &existing)?;
    let (plan, owned) = objects.finish();
    if !plan.has_changes() && current.is_some() {
        return Ok((None, plan));
    }
    let capacity = current.map_or(1024, <[u8]>::len) + 1024;
    Ok((Some(rewrite(&fields, capacity, project, kinds, &owned, now)), plan))
}

/// The project's objects of the kinds `apply` owns, by kind and name.
fn owned_objects<'a>(fields: &[RawField<'a>], project: &str, kinds: &[u32]) -> HashMap<(u32, String), RawField<'a>> {
    let mut owned = HashMap::new();
    for f in fields {
        if kinds.contains(&f.number)
            && let Some((_, name)) = spec_project_and_name(f).filter(|(p, _)| p == project)
        {
            owned.insert((f.number, name), *f);
        }
    }
    owned
}

/// An object `apply` finds by name in the current registry.
trait Named {
    fn name(&self) -> &str;
}

impl Named for Entity {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for DataSource {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for FeatureService {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for Permission {
    fn name(&self) -> &str {
        &self.name
    }
}

/// The project's objects as an apply decides them, one definition at a time.
struct Objects<'a> {
    /// Objects of the current registry no definition has claimed yet: what is left is deleted.
    unmatched: HashMap<(u32, String), RawField<'a>>,
    now: EventTime,
    plan: Plan,
    /// Per registry field number, the serialized objects to write.
    out: BTreeMap<u32, Vec<Vec<u8>>>,
}

impl Objects<'_> {
    /// Keeps an unchanged object's bytes as they are; builds a changed one (keeping its
    /// creation time) or a new one.
    fn put(
        &mut self,
        number: u32,
        name: &str,
        same: bool,
        build: impl FnOnce(Stamps) -> Result<Vec<u8>>,
    ) -> Result<()> {
        let now = self.now;
        let (action, bytes) = match self.unmatched.remove(&(number, name.to_string())) {
            Some(raw) if same => (Action::Unchanged, raw.payload.to_vec()),
            Some(raw) => (Action::Update, build(Stamps { created: created_of(&raw).unwrap_or(now), updated: now })?),
            None => (Action::Create, build(Stamps { created: now, updated: now })?),
        };
        self.plan.changes.push(Change { kind: kind_name(number), name: name.to_string(), action });
        self.out.entry(number).or_default().push(bytes);
        Ok(())
    }

    /// Puts each definition of one kind, unchanged when the current registry holds an equal one.
    fn put_each<'d, T: Named + PartialEq + 'd>(
        &mut self,
        number: u32,
        definitions: impl IntoIterator<Item = &'d T>,
        existing: &BTreeMap<String, T>,
        to_proto: impl Fn(&T, Stamps) -> Result<Vec<u8>>,
    ) -> Result<()> {
        for d in definitions {
            let same = existing.get(d.name()) == Some(d);
            self.put(number, d.name(), same, |t| to_proto(d, t))?;
        }
        Ok(())
    }

    /// The definitions' entities, and the dummy entity Feast keeps in every registry.
    fn put_entities(&mut self, desired: &Registry, existing: &Registry) -> Result<()> {
        let mut entities: Vec<Entity> = desired.entities.values().cloned().collect();
        if !desired.entities.contains_key(crate::keys::DUMMY_ENTITY_NAME) {
            entities.push(convert::dummy_entity());
        }
        let project = desired.project.as_str();
        self.put_each(rf::ENTITIES, &entities, &existing.entities, |e, t| {
            Ok(convert::entity_to_proto(e, project, t).encode_to_vec())
        })
    }

    fn put_sources(&mut self, desired: &Registry, existing: &Registry) -> Result<()> {
        let project = Some(desired.project.as_str());
        self.put_each(rf::DATA_SOURCES, desired.data_sources.values(), &existing.data_sources, |s, t| {
            Ok(convert::source_to_proto(s, project, true, t).encode_to_vec())
        })
    }

    fn put_services(&mut self, desired: &Registry, existing: &Registry) -> Result<()> {
        let project = desired.project.as_str();
        self.put_each(rf::FEATURE_SERVICES, desired.feature_services.values(), &existing.feature_services, |s, t| {
            Ok(convert::service_to_proto(s, desired, project, t)?.encode_to_vec())
        })
    }

    fn put_permissions(&mut self, desired: &Registry, existing: &Registry) -> Result<()> {
        let Some(permissions) = &desired.permissions else { return Ok(()) };
        let current: BTreeMap<String, Permission> =
            existing.permissions.iter().flatten().map(|p| (p.name.clone(), p.clone())).collect();
        let project = desired.project.as_str();
        self.put_each(rf::PERMISSIONS, permissions, &current, |p, t| {
            Ok(convert::permission_to_proto(p, project, t).encode_to_vec())
        })
    }

    fn put_views(&mut self, desired: &Registry, existing: &Registry) -> Result<()> {
        for v in desired.feature_views.values() {
            let old = existing.feature_views.get(&v.name).filter(|o| o.kind == v.kind);
            let same = old.is_some_and(|o| same_view_definition(o, v));
            let number = match v.kind {
                ViewKind::Batch => rf::FEATURE_VIEWS,
                ViewKind::Stream => rf::STREAM_FEATURE_VIEWS,
            };
            self.put(number, &v.name, same, |t| {
                // A redefined view keeps its materialization history and state.
                let mut view = (**v).clone();
                if let Some(o) = old {
                    view.materialization_intervals = o.materialization_intervals.clone();
                    view.state = o.state;
                }
                Ok(match view.kind {
                    ViewKind::Batch => convert::view_to_proto(&view, &desired.project, t).encode_to_vec(),
                    ViewKind::Stream => convert::stream_view_to_proto(&view, &desired.project, t).encode_to_vec(),
                })
            })?;
        }
        Ok(())
    }

    /// The plan, with the objects no definition claimed as deletions, and the objects to write.
    fn finish(mut self) -> (Plan, BTreeMap<u32, Vec<Vec<u8>>>) {
        let mut deleted: Vec<&(u32, String)> = self.unmatched.keys().collect();
        deleted.sort();
        for (number, name) in deleted {
            self.plan.changes.push(Change { kind: kind_name(*number), name: name.clone(), action: Action::Delete });
        }
        self.plan.changes.sort_by(|a, b| (a.action, a.kind, &a.name).cmp(&(b.action, b.kind, &b.name)));
        (self.plan, self.out)
    }
}

/// The new registry: every field of `fields` but the project's owned objects and the
/// registry-level stamps, then `owned`, the project entry if there is none, and new stamps.
fn rewrite(
    fields: &[RawField<'_>],
    capacity: usize,
    project: &str,
    kinds: &[u32],
    owned: &BTreeMap<u32, Vec<Vec<u8>>>,
    now: EventTime,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    for f in fields {
        match f.number {
            n if kinds.contains(&n) => {
                let ours = spec_project_and_name(f).is_some_and(|(p, _)| p == project);
                if !ours {
                    out.extend_from_slice(f.raw);
                }
            }
            rf::REGISTRY_SCHEMA_VERSION | rf::VERSION_ID | rf::LAST_UPDATED => {}
            _ => out.extend_from_slice(f.raw),
        }
    }
    for (number, items) in owned {
        for item in items {
            wire::put_bytes(*number, item, &mut out);
        }
    }
    let has_project =
        fields.iter().any(|f| f.number == rf::PROJECTS && spec_project_and_name(f).is_some_and(|(_, n)| n == project));
    if !has_project {
        wire::put_message(
            rf::PROJECTS,
            &convert::project_to_proto(project, Stamps { created: now, updated: now }),
            &mut out,
        );
    }
    stamp_registry(&mut out, now);
    out
}

/// Appends the registry-level fields every commit rewrites: schema version, a new version id,
/// and the update time.
fn stamp_registry(out: &mut Vec<u8>, now: EventTime) {
    wire::put_bytes(rf::REGISTRY_SCHEMA_VERSION, b"1", out);
    wire::put_bytes(rf::VERSION_ID, uuid::Uuid::new_v4().to_string().as_bytes(), out);
    wire::put_message(rf::LAST_UPDATED, &now.to_proto(), out);
}

/// One materialization to record: the view's name and the window written.
#[derive(Debug, Clone)]
pub struct Interval {
    pub view: String,
    pub start: EventTime,
    pub end: EventTime,
}

/// Appends each interval to its view's `meta.materialization_intervals`, sets the view's state
/// to AVAILABLE_ONLINE and its update time, and stamps the registry. Everything else is copied
/// verbatim. A view that no longer exists is an error (it was deleted while materializing).
pub fn record_materialization(
    current: &[u8],
    project: &str,
    intervals: &[Interval],
    now: EventTime,
) -> Result<Vec<u8>> {
    let fields = wire::split(current).map_err(|e| Error::storage(format!("registry is corrupt: {e}")))?;
    let mut pending: Vec<&Interval> = intervals.iter().collect();
    let mut out = Vec::with_capacity(current.len() + 64 * intervals.len());
    for f in &fields {
        match f.number {
            rf::FEATURE_VIEWS | rf::STREAM_FEATURE_VIEWS => {
                let view = view_identity(f.payload).filter(|(p, _)| p == project).map(|(_, n)| n);
                let mine: Vec<&Interval> = match &view {
                    Some(name) => pending.iter().copied().filter(|i| &i.view == name).collect(),
                    None => Vec::new(),
                };
                if mine.is_empty() {
                    out.extend_from_slice(f.raw);
                } else {
                    pending.retain(|i| Some(&i.view) != view.as_ref());
                    let edited = edit_view_meta(f.payload, &mine, now)?;
                    wire::put_bytes(f.number, &edited, &mut out);
                }
            }
            rf::REGISTRY_SCHEMA_VERSION | rf::VERSION_ID | rf::LAST_UPDATED => {}
            _ => out.extend_from_slice(f.raw),
        }
    }
    if let Some(missing) = pending.first() {
        return Err(Error::Conflict(format!(
            "feature view '{}' is no longer in the registry; it was removed while being materialized",
            missing.view
        )));
    }
    stamp_registry(&mut out, now);
    Ok(out)
}

/// (project, name) of a serialized FeatureView or StreamFeatureView.
fn view_identity(view: &[u8]) -> Option<(String, String)> {
    let fields = wire::split(view).ok()?;
    let spec = wire::split(wire::first_bytes(&fields, fvf::SPEC)?).ok()?;
    let text = |n| wire::first_bytes(&spec, n).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    Some((text(fvf::SPEC_PROJECT), text(fvf::SPEC_NAME)))
}

fn edit_view_meta(view: &[u8], intervals: &[&Interval], now: EventTime) -> Result<Vec<u8>> {
    let corrupt = |e: String| Error::storage(format!("registry feature view is corrupt: {e}"));
    let fields = wire::split(view).map_err(corrupt)?;
    let meta = wire::first_bytes(&fields, fvf::META).unwrap_or_default();
    let meta_fields = wire::split(meta).map_err(corrupt)?;
    let mut new_meta = Vec::with_capacity(meta.len() + 32 * intervals.len());
    for m in &meta_fields {
        if m.number != fvf::META_STATE && m.number != fvf::META_LAST_UPDATED {
            new_meta.extend_from_slice(m.raw);
        }
    }
    for i in intervals {
        let interval =
            pb::MaterializationInterval { start_time: Some(i.start.to_proto()), end_time: Some(i.end.to_proto()) };
        wire::put_message(fvf::META_INTERVALS, &interval, &mut new_meta);
    }
    wire::put_message(fvf::META_LAST_UPDATED, &now.to_proto(), &mut new_meta);
    wire::put_varint(fvf::META_STATE, feature_view_state::AVAILABLE_ONLINE as u64, &mut new_meta);

    let mut out = Vec::with_capacity(view.len() + new_meta.len());
    let mut wrote = false;
    for f in &fields {
        if f.number == fvf::META {
            if !wrote {
                wire::put_bytes(fvf::META, &new_meta, &mut out);
                wrote = true;
            }
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    if !wrote {
        wire::put_bytes(fvf::META, &new_meta, &mut out);
    }
    Ok(out)
}
