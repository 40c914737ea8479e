//! Online retrieval: Feast's `get-online-features` over the online store.

pub mod http;
