//! The subcommands. Add one by writing a module with an `Args` struct and a `run` function,
//! then a variant below.

mod apply;
mod describe;
mod example_data;
mod freshness;
mod get;
mod init;
mod list;
mod materialize;
mod push;
mod serve;
mod table;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use larder::Result;
use larder::aws::Aws;
use larder::config::RepoConfig;

#[derive(Subcommand)]
pub enum Command {
    /// Create a feature repository (feature_store.yaml + features.yaml) from the driver example.
    Init(init::InitArgs),
    /// Show what `apply` would change in the registry.
    Plan(RepoArgs),
    /// Write features.yaml to the registry (registry.db in Feast's format).
    Apply(RepoArgs),
    /// Generate the example driver statistics parquet file.
    ExampleData(example_data::ExampleDataArgs),
    /// Load features from parquet into the online store for a window of event times.
    Materialize(materialize::MaterializeArgs),
    /// Load features from where each view's last materialization ended up to END.
    MaterializeIncremental(materialize::IncrementalArgs),
    /// Serve the HTTP API (get-online-features, push, materialize, health) locally.
    Serve(serve::ServeArgs),
    /// Push Feast push requests or rows (JSON, JSON array or JSON lines; files or stdin) to the online store.
    Push(push::PushArgs),
    /// Read features as the HTTP API's get-online-features answers, printed as a table.
    Get(get::GetArgs),
    /// List entities, data sources, feature views and feature services in the registry.
    List(list::ListArgs),
    /// Show one entity, data source, feature view or feature service in full.
    Describe(describe::DescribeArgs),
    /// Per online view: the newest event in a sample of stored keys and the last materialization.
    Freshness(freshness::FreshnessArgs),
}

/// `--repo DIR`: the feature repository (where feature_store.yaml is).
#[derive(Args, Clone)]
pub struct RepoArgs {
    #[arg(long, env = "LARDER_REPO", default_value = ".")]
    pub repo: PathBuf,
}

impl RepoArgs {
    pub fn config(&self) -> Result<RepoConfig> {
        RepoConfig::load(Some(&self.repo))
    }
}

/// Runs one command. `aws` is the process's AWS configuration, loaded only if a command
/// reaches S3 or Kinesis.
pub async fn run(command: Command, aws: &Aws) -> Result<()> {
    match command {
        Command::Init(a) => init::run(a),
        Command::Plan(a) => apply::run(a, aws, true).await,
        Command::Apply(a) => apply::run(a, aws, false).await,
        Command::ExampleData(a) => example_data::run(a),
        Command::Serve(a) => serve::run(a, aws).await,
        Command::Materialize(a) => materialize::run(a, aws).await,
        Command::MaterializeIncremental(a) => materialize::run_incremental(a, aws).await,
        Command::Push(a) => push::run(a, aws).await,
        Command::Get(a) => get::run(a, aws).await,
        Command::List(a) => list::run(a, aws).await,
        Command::Describe(a) => describe::run(a, aws).await,
        Command::Freshness(a) => freshness::run(a, aws).await,
    }
}
