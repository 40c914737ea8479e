use std::path::PathBuf;

use clap::Args;
use larder::{Error, Result};

const FEATURE_STORE_YAML: &str = include_str!("../../../examples/driver/feature_store.yaml");
const FEATURES_YAML: &str = include_str!("../../../examples/driver/features.yaml");

#[derive(Args)]
pub struct InitArgs {
    /// Directory to create the repository in.
    #[arg(default_value = "feature_repo")]
    pub dir: PathBuf,
    /// Overwrite files that already exist.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: InitArgs) -> Result<()> {
    std::fs::create_dir_all(a.dir.join("data"))
        .map_err(|e| Error::Config(format!("cannot create {}: {e}", a.dir.display())))?;
    let files = [("feature_store.yaml", FEATURE_STORE_YAML), ("features.yaml", FEATURES_YAML)];
    // Every file is checked before any is written: a refusal leaves the directory as it was.
    if !a.force
        && let Some(path) = files.iter().map(|(name, _)| a.dir.join(name)).find(|p| p.exists())
    {
        return Err(Error::Config(format!("{} already exists (use --force to overwrite)", path.display())));
    }
    for (name, text) in files {
        let path = a.dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))?;
    }
    println!("Created a feature repository in {}.", a.dir.display());
    println!("Next: cd {} && larder example-data && larder apply", a.dir.display());
    Ok(())
}
