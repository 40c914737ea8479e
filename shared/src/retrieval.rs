//! Online retrieval: Feast's `get-online-features` over the online store.
//! (Filled in by the retrieval work.)
