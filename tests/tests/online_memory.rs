//! The online-store conformance suite against the in-memory store.

larder_tests::conformance_tests!(larder_tests::conformance::memory());

/// What unit tests read the in-memory store by: `len` and `is_empty` count live keys only.
#[tokio::test]
async fn the_memory_store_counts_live_keys_only() {
    use std::time::Duration;

    use larder::online::OnlineStore;
    use larder_tests::conformance::{two_fields, two_views, wait_until};

    let store = larder::online::memory::MemoryStore::new();
    assert!(store.is_empty());
    assert_eq!(store.len(), 0);
    let fields = two_fields();
    for (keys, ttl) in [(&["expiring"][..], Some(1)), (&["k1", "k2"][..], None)] {
        for w in two_views(&fields, keys, 10, ttl) {
            store.write(&w).await.unwrap();
        }
    }
    assert_eq!(store.len(), 3);
    assert!(!store.is_empty());
    wait_until("the expiring key to go", Duration::from_secs(10), async || store.len() == 2).await;
    assert!(store.hash(b"expiring").is_none() && !store.is_empty());
    // What /health reports as the store's kind.
    assert_eq!(store.describe(), "in-memory store");
}
