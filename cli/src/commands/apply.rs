use super::RepoArgs;
use larder::Result;

pub async fn run(args: RepoArgs, dry_run: bool) -> Result<()> {
    let cfg = args.config()?;
    let plan = larder::registry::apply(&cfg, dry_run).await?;
    print!("{plan}");
    if !dry_run && plan.has_changes() {
        println!("Registry {} updated for project '{}'.", cfg.registry.path, cfg.project);
    }
    Ok(())
}
