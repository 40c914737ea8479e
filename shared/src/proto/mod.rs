//! Feast's protobuf messages, written from the field numbers in the compatibility reference.
//!
//! Only what the data plane reads or writes is modelled; prost skips unknown fields on decode.
//! Because prost also *drops* them, Larder never re-encodes a whole decoded registry: updates go
//! through [`wire`], which edits the serialized message and copies every field it does not
//! touch verbatim (see `registry::store`).

pub mod core;
pub mod types;
pub mod wire;

pub use prost_types::{Duration, Timestamp};
