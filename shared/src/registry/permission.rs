//! Feast's permissions (`Registry.permissions`, Permission.proto and Policy.proto): which
//! callers may do which actions to which objects of the project. [`crate::access`] enforces them.

use std::collections::BTreeMap;

/// The kind of object a permission covers (`PermissionSpec.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    FeatureView,
    OnDemandFeatureView,
    BatchFeatureView,
    StreamFeatureView,
    Entity,
    FeatureService,
    DataSource,
    ValidationReference,
    SavedDataset,
    Permission,
    Project,
    LabelView,
    /// A type number this version does not know; it matches nothing.
    Other(i32),
}

const RESOURCE_TYPES: [(ResourceType, &str); 12] = [
    (ResourceType::FeatureView, "FEATURE_VIEW"),
    (ResourceType::OnDemandFeatureView, "ON_DEMAND_FEATURE_VIEW"),
    (ResourceType::BatchFeatureView, "BATCH_FEATURE_VIEW"),
    (ResourceType::StreamFeatureView, "STREAM_FEATURE_VIEW"),
    (ResourceType::Entity, "ENTITY"),
    (ResourceType::FeatureService, "FEATURE_SERVICE"),
    (ResourceType::DataSource, "DATA_SOURCE"),
    (ResourceType::ValidationReference, "VALIDATION_REFERENCE"),
    (ResourceType::SavedDataset, "SAVED_DATASET"),
    (ResourceType::Permission, "PERMISSION"),
    (ResourceType::Project, "PROJECT"),
    (ResourceType::LabelView, "LABEL_VIEW"),
];

impl ResourceType {
    pub fn from_i32(v: i32) -> Self {
        usize::try_from(v).ok().and_then(|i| RESOURCE_TYPES.get(i)).map_or(ResourceType::Other(v), |(t, _)| *t)
    }

    pub fn as_i32(self) -> i32 {
        match self {
            ResourceType::Other(v) => v,
            t => RESOURCE_TYPES.iter().position(|(k, _)| *k == t).unwrap_or(0) as i32,
        }
    }

    /// Feast's name (`FEATURE_VIEW`), as `features.yaml` and messages write it.
    pub fn name(self) -> String {
        RESOURCE_TYPES
            .iter()
            .find(|(k, _)| *k == self)
            .map_or_else(|| format!("TYPE_{}", self.as_i32()), |(_, n)| n.to_string())
    }

    /// Parses Feast's name, in any case (`feature_view`, `FEATURE_VIEW`).
    pub fn parse(name: &str) -> Option<Self> {
        RESOURCE_TYPES.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(t, _)| *t)
    }
}

/// An action on an object (`PermissionSpec.AuthzedAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthzAction {
    Create,
    Describe,
    Update,
    Delete,
    ReadOnline,
    ReadOffline,
    WriteOnline,
    WriteOffline,
    /// An action number this version does not know; no request asks for it.
    Other(i32),
}

const ACTIONS: [(AuthzAction, &str); 8] = [
    (AuthzAction::Create, "CREATE"),
    (AuthzAction::Describe, "DESCRIBE"),
    (AuthzAction::Update, "UPDATE"),
    (AuthzAction::Delete, "DELETE"),
    (AuthzAction::ReadOnline, "READ_ONLINE"),
    (AuthzAction::ReadOffline, "READ_OFFLINE"),
    (AuthzAction::WriteOnline, "WRITE_ONLINE"),
    (AuthzAction::WriteOffline, "WRITE_OFFLINE"),
];

impl AuthzAction {
    pub fn from_i32(v: i32) -> Self {
        usize::try_from(v).ok().and_then(|i| ACTIONS.get(i)).map_or(AuthzAction::Other(v), |(a, _)| *a)
    }

    pub fn as_i32(self) -> i32 {
        match self {
            AuthzAction::Other(v) => v,
            a => ACTIONS.iter().position(|(k, _)| *k == a).unwrap_or(0) as i32,
        }
    }

    pub fn name(self) -> String {
        ACTIONS
            .iter()
            .find(|(k, _)| *k == self)
            .map_or_else(|| format!("ACTION_{}", self.as_i32()), |(_, n)| n.to_string())
    }

    pub fn parse(name: &str) -> Option<Self> {
        ACTIONS.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(a, _)| *a)
    }

    /// Feast's shorthands: `ALL_ACTIONS`, `READ` (online and offline), `WRITE` (online and
    /// offline), `CRUD` (create, describe, update, delete).
    pub fn parse_group(name: &str) -> Option<Vec<Self>> {
        use AuthzAction::*;
        Some(match name.to_ascii_uppercase().as_str() {
            "ALL_ACTIONS" | "ALL" => ACTIONS.iter().map(|(a, _)| *a).collect(),
            "READ" => vec![ReadOnline, ReadOffline],
            "WRITE" => vec![WriteOnline, WriteOffline],
            "CRUD" => vec![Create, Describe, Update, Delete],
            other => vec![Self::parse(other)?],
        })
    }
}

/// Who a permission admits (`Policy`). A caller satisfies a list when it has any one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// No policy set: what Feast's `AllowAll` writes (an empty `Policy`). Feast itself cannot
    /// read it back (its loader returns no policy and enforcement then fails); Larder admits
    /// every authenticated caller, which is what the policy's author asked for.
    AllowAll,
    Roles(Vec<String>),
    Groups(Vec<String>),
    Namespaces(Vec<String>),
    /// Feast's `CombinedGroupNamespacePolicy`: a matching group **or** a matching namespace.
    GroupsOrNamespaces {
        groups: Vec<String>,
        namespaces: Vec<String>,
    },
}

/// One permission of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub name: String,
    /// Empty: every type.
    pub types: Vec<ResourceType>,
    /// Regular expressions a name must match in full (any one); empty: every name.
    pub name_patterns: Vec<String>,
    /// Tags an object must carry with these values.
    pub required_tags: BTreeMap<String, String>,
    pub actions: Vec<AuthzAction>,
    pub policy: Policy,
    pub tags: BTreeMap<String, String>,
}
