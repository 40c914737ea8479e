//! `features.yaml` text (Larder's feature definitions, YAML anchors and aliases included),
//! parsed into a validated registry, as `larder apply` and the functions' local registries do.
//! A registry that parses must also convert to Feast's protobuf and back.

#![no_main]

use larder::registry::{edit, yaml};
use larder::time::EventTime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = larder_fuzz::text(data) else { return };
    let Ok(registry) = yaml::parse(text, "features.yaml", larder_fuzz::PROJECT, 3) else { return };
    let (bytes, _) =
        edit::apply(None, &registry, 3, EventTime::new(1_704_085_200, 0)).expect("a parsed registry applies");
    let bytes = bytes.expect("a new registry is written");
    larder::registry::convert::registry_from_bytes(&bytes, larder_fuzz::PROJECT, 3)
        .expect("the applied registry reads back");
});
