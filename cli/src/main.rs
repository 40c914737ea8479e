//! `larder`: the command line for laptops and CI/CD.
//!
//! Each subcommand lives in its own module under `commands/` and is a thin layer over the
//! `larder` crate: parse arguments, call the operation, print the result. Errors print one
//! line naming what was wrong and exit with status 1.

mod commands;

use clap::Parser;

#[derive(Parser)]
#[command(name = "larder", version, about = "Larder: a Feast-compatible, serverless feature store data plane")]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // `larder push` lists each rejected record itself (with --dead-letters to keep them), so the
    // stream processor's own "poison record" warning, meant for Lambda's log, would say it twice.
    let filter =
        EnvFilter::try_from_env("LARDER_LOG").unwrap_or_else(|_| EnvFilter::new("warn,larder::push::stream=error"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    // The composition root: one AWS configuration for the process, loaded on first use.
    let aws = larder::aws::Aws::new();
    match commands::run(cli.command, &aws).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::debug!(error = %e.report(), "failed");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
