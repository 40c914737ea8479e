//! The online-store conformance suite against the in-memory store.

larder_tests::conformance_tests!(larder_tests::conformance::memory());
