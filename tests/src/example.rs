//! A repo of `examples/` as its README runs it: copied to a temp directory, with
//! `REDIS_ADDR` pointing at a test Redis, and applied.

use larder::config::RepoConfig;
use larder::registry::{self, Registry};
use larder::storage::Storage;

use crate::feast::copy_dir;
use crate::peers::repo_root;

/// `examples/<name>` applied on the Redis at `redis_addr`: the copy, its configuration and the
/// registry `larder apply` wrote.
pub async fn applied(name: &str, redis_addr: &str) -> (tempfile::TempDir, RepoConfig, Registry) {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&repo_root().join("examples").join(name), dir.path());
    let cfg = RepoConfig::load_with(Some(dir.path()), &|k| (k == "REDIS_ADDR").then(|| redis_addr.to_string()))
        .unwrap_or_else(|e| panic!("examples/{name}: {e}"));
    let storage = Storage::default();
    registry::apply(&cfg, &storage, false).await.unwrap_or_else(|e| panic!("apply examples/{name}: {e}"));
    let reg = registry::load(&cfg, &storage).await.unwrap_or_else(|e| panic!("load examples/{name}: {e}"));
    (dir, cfg, reg)
}
