use std::path::PathBuf;

use clap::Args;
use larder::Result;
use larder::time::EventTime;

#[derive(Args)]
pub struct ExampleDataArgs {
    /// Number of drivers (entities).
    #[arg(long, default_value_t = 1000)]
    pub drivers: u64,
    /// Hourly rows per driver.
    #[arg(long, default_value_t = 24)]
    pub hours: u64,
    /// End of the data (exclusive); default: the current hour.
    #[arg(long)]
    pub end: Option<String>,
    /// Seed of the value generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output file.
    #[arg(long, default_value = "data/driver_stats.parquet")]
    pub out: PathBuf,
}

pub fn run(a: ExampleDataArgs) -> Result<()> {
    let end = match &a.end {
        Some(text) => EventTime::parse(text).map_err(larder::Error::Config)?,
        None => {
            let now = EventTime::now();
            EventTime::new(now.secs - now.secs.rem_euclid(3600), 0)
        }
    };
    let rows = larder::example_data::write_driver_stats(&a.out, a.drivers, a.hours, end, a.seed)?;
    println!("wrote {rows} rows ({} drivers x {} hours, ending {end}) to {}", a.drivers, a.hours, a.out.display());
    Ok(())
}
