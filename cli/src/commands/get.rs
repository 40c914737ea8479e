//! `larder get`: the HTTP API's get-online-features from the command line, for looking at what
//! is served without building a request body or reading Redis by hand.
//!
//! The request is the one the HTTP body would carry (`--features`, `--feature-service`,
//! `--entity`, `--full-feature-names`) and is answered by the same operation, so the answer is
//! the API's. It prints as a table, one row per entity row; `--json` prints exactly the HTTP
//! API's body.

use clap::Args;
use larder::api::Limits;
use larder::aws::Aws;
use larder::proto::types::value::Val;
use larder::retrieval::{self, EntityColumns, Request, Response, Status};
use larder::storage::Storage;
use larder::time::EventTime;
use larder::{Error, Result, value};

use super::RepoArgs;
use super::table::Table;

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Features to read, `view:feature`, comma-separated or repeated.
    #[arg(long, value_delimiter = ',', required_unless_present = "feature_service")]
    pub features: Vec<String>,
    /// A feature service to read instead of --features.
    #[arg(long)]
    pub feature_service: Option<String>,
    /// An entity value, `join_key=value`; repeat for more rows (the values of one key form its
    /// column, in order) or more keys. A value that reads as a JSON number or boolean is one;
    /// anything else is a string (quote it as JSON, '"1001"', to force a string).
    #[arg(long = "entity", value_name = "KEY=VALUE", required = true)]
    pub entities: Vec<String>,
    /// Name features `view__feature`, as Feast's full_feature_names does.
    #[arg(long)]
    pub full_feature_names: bool,
    /// Print the HTTP API's JSON body instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: GetArgs, aws: &Aws) -> Result<()> {
    let request = Request {
        features: a.features.clone(),
        feature_service: a.feature_service.clone(),
        entities: entity_columns(&a.entities)?,
        full_feature_names: a.full_feature_names,
        include_feature_view_version_metadata: false,
    };
    let cfg = a.repo.config()?;
    let registry = larder::registry::load(&cfg, &Storage::new(aws)).await?;
    // A feature or service that does not exist is the error to give, whether Redis is up or not.
    retrieval::plan::plan(&registry, &request.features, request.feature_service.as_deref(), false)?;
    let store = larder::online::connect_now(&cfg, aws).await?;
    let max_rows = Limits::from_env()?.max_entity_rows;
    let response =
        retrieval::get_online_features(&registry, store.as_ref(), &request, max_rows, EventTime::now()).await?;
    if a.json {
        println!("{}", String::from_utf8_lossy(&response.to_json()));
    } else {
        print!("{}", table(&response).render(0));
    }
    Ok(())
}

/// `--entity k=v ...` as the request's entity columns: one column per key in order of first
/// appearance, its values in the order given. Columns of different lengths are refused here,
/// with the counts, rather than as the API's error about the body.
pub fn entity_columns(args: &[String]) -> Result<EntityColumns> {
    let mut columns: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for arg in args {
        let Some((key, text)) = arg.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(Error::BadRequest(format!("--entity {arg}: expected JOIN_KEY=VALUE, e.g. driver_id=1001")));
        };
        let key = key.trim();
        let value = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_) | serde_json::Value::String(_))) => v,
            _ => serde_json::Value::String(text.to_string()),
        };
        match columns.iter_mut().find(|(k, _)| k == key) {
            Some((_, values)) => values.push(value),
            None => columns.push((key.to_string(), vec![value])),
        }
    }
    if let Some(((first, a), (other, b))) = columns
        .first()
        .and_then(|first| columns.iter().find(|c| c.1.len() != first.1.len()).map(|other| (first, other)))
    {
        return Err(Error::BadRequest(format!(
            "--entity {first} is given {} times but {other} {} times: give every join key once per row",
            a.len(),
            b.len()
        )));
    }
    Ok(EntityColumns(columns))
}

/// The answer as a table: the response's columns, one row per entity row. A cell is the value
/// as the API writes it (strings without quotes); a status other than PRESENT is shown with
/// it, alone when there is no value.
fn table(response: &Response) -> Table {
    let mut t = Table::new(response.columns.iter().map(|c| c.name.clone()));
    let rows = response.columns.first().map_or(0, |c| c.values.len());
    for row in 0..rows {
        t.row(response.columns.iter().map(|c| {
            let v = &c.values[row];
            let status = c.statuses[row];
            let text = value_text(v);
            match status {
                Status::Present => text,
                _ if value::is_null(v) => status.name().to_string(),
                _ => format!("{text} ({})", status.name()),
            }
        }));
    }
    t
}

/// A value as the HTTP API writes it, a string without its quotes, a float32 as its shortest
/// text (the API widens it to float64's digits: `0.9006274342536926` for `0.90062743`).
fn value_text(v: &larder::proto::types::Value) -> String {
    if let Some(Val::FloatVal(f)) = v.val {
        return f.to_string();
    }
    let mut json = Vec::new();
    value::write_json(v, &mut json);
    match serde_json::from_slice::<serde_json::Value>(&json) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::from_utf8_lossy(&json).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entity_values_form_columns_typed_like_json() {
        let cols = entity_columns(&args(&[
            "driver_id=1001",
            "city=sf",
            "driver_id=1002",
            "city=\"42\"",
            "driver_id=-3.5",
            "city=true",
        ]))
        .unwrap();
        assert_eq!(
            cols.0,
            vec![
                ("driver_id".to_string(), vec![json!(1001), json!(1002), json!(-3.5)]),
                ("city".to_string(), vec![json!("sf"), json!("42"), json!(true)]),
            ]
        );
        // `=` inside a value is part of it; null is not a number or boolean.
        let cols = entity_columns(&args(&["k=a=b", "n=null"])).unwrap();
        assert_eq!(cols.0[0].1, vec![json!("a=b")]);
        assert_eq!(cols.0[1].1, vec![json!("null")]);
    }

    #[test]
    fn bad_entities_name_what_is_wrong() {
        let e = entity_columns(&args(&["driver_id=1", "driver_id=2", "city=sf"])).unwrap_err().to_string();
        assert!(e.contains("driver_id is given 2 times but city 1 times"), "{e}");
        for bad in ["driver_id", "=5"] {
            let e = entity_columns(&args(&[bad])).unwrap_err().to_string();
            assert!(e.contains(&format!("--entity {bad}: expected JOIN_KEY=VALUE")), "{e}");
        }
    }
}
