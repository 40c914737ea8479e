use larder::Result;
use larder::aws::Aws;
use larder::storage::Storage;

use super::RepoArgs;

pub async fn run(args: RepoArgs, aws: &Aws, dry_run: bool) -> Result<()> {
    let cfg = args.config()?;
    let plan = larder::registry::apply(&cfg, &Storage::new(aws), dry_run).await?;
    print!("{plan}");
    if !dry_run && plan.has_changes() {
        println!("Registry {} updated for project '{}'.", cfg.registry.path, cfg.project);
    }
    Ok(())
}
