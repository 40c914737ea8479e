//! The test harness: real peers started on free loopback ports and stopped when dropped, or
//! when the test process ends, however it ends ([`Peer`]).
//!
//! Nothing here ever connects to a server it did not start. The programs come from the
//! machine (`redis-server` from Debian) and from the virtualenv `scripts/test.sh` prepares
//! (`moto_server`, `feast`, `cargo-lambda`); [`venv`] finds it.

pub mod aws;
pub mod cli;
pub mod conformance;
pub mod example;
pub mod feast;
pub mod http;
pub mod lambda;
pub mod peers;
pub mod rng;

pub use feast::FeastRepo;
pub use lambda::LambdaWatch;
pub use peers::*;
pub use rng::Rng;
