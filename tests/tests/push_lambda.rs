//! The `push` binary end to end under the Lambda Runtime API (`cargo lambda watch`, then
//! `cargo lambda invoke --data-file events/...`), configured only by its environment: a repo
//! applied by `larder apply`, a private redis-server, and an SQS dead-letter queue on a
//! private moto_server.

mod push_support;

use std::time::Duration;

use larder::config::RepoConfig;
use larder::proto::types::value::Val;
use larder::value::Value;
use larder_tests::feast::copy_dir;
use larder_tests::{LambdaWatch, MotoServer, RedisServer, repo_root};
use redis::Commands;
use serde_json::{Value as Json, json};

fn event(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("events").join(name)).unwrap()
}

#[tokio::test]
async fn the_push_function_handles_every_sample_event_under_cargo_lambda() {
    let redis = RedisServer::start();
    let moto = MotoServer::start();
    moto.export_env();
    let queue = larder_tests::aws::sqs().await.create_queue().queue_name("push-dlq").send().await.unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();

    let repo = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/driver"), repo.path());
    let cfg = RepoConfig::load_with(Some(repo.path()), &|k| (k == "REDIS_ADDR").then(|| redis.addr())).unwrap();
    larder::registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();

    let mut env: Vec<(String, String)> = moto.env();
    env.extend([
        ("LARDER_REPO".to_string(), repo.path().display().to_string()),
        ("REDIS_ADDR".to_string(), redis.addr()),
        ("LARDER_PUSH_SOURCE".to_string(), "driver_stats_push_source".to_string()),
        ("LARDER_DEAD_LETTER".to_string(), queue_url.clone()),
    ]);
    let watch = LambdaWatch::start(&env);
    let invoke = |name: &str| {
        watch.invoke("push", &event(name), Duration::from_secs(60)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };

    assert_eq!(invoke("kinesis.json"), json!({"batchItemFailures": []}));
    assert_eq!(invoke("kinesis-poison.json"), json!({"batchItemFailures": []}));
    assert_eq!(invoke("msk.json"), json!({"batchItemFailures": []}));
    assert_eq!(invoke("kafka-self-managed.json"), json!({"batchItemFailures": []}));
    let http = invoke("push-apigw-http.json");
    assert_eq!((http["statusCode"].clone(), http["body"].clone()), (json!(200), json!("")));
    let rest = invoke("push-apigw-rest.json");
    assert_eq!(rest["statusCode"], 200, "{rest}");
    let write = invoke("push-apigw-http-write.json");
    assert_eq!(write["body"], "null");
    assert_eq!(invoke("push-direct.json"), json!({"statusCode": 200, "body": null}));
    let invalid = invoke("push-apigw-http-invalid.json");
    assert_eq!(invalid["statusCode"], 422, "a client's mistake is a 4xx answer: {invalid}");
    let err: Json = serde_json::from_str(invalid["body"].as_str().unwrap()).unwrap();
    assert_eq!(err["error"]["code"], "invalid_value");

    // Everything valid is in Redis, under Feast's keys.
    let reg = larder::registry::load(&cfg, &larder::storage::Storage::default()).await.unwrap();
    let view = reg.view("driver_fresh").unwrap();
    let mut c = redis.client();
    for id in [1001, 1002, 1003, 1004, 1006, 2001, 2003, 3001, 3002, 4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008] {
        let key = view.layout.key_encoder.redis_key(&[&Value { val: Some(Val::Int64Val(id)) }], &cfg.project).unwrap();
        let ts: Option<Vec<u8>> = c.hget(&key, &view.layout.ts_field[..]).unwrap();
        assert!(ts.is_some(), "driver {id} is not in Redis");
    }
    // Driver 1005 was only in a poison record (its city column is missing).
    let key = view.layout.key_encoder.redis_key(&[&Value { val: Some(Val::Int64Val(1005)) }], &cfg.project).unwrap();
    let exists: bool = c.exists(&key).unwrap();
    assert!(!exists);

    // The poison records are in the dead-letter queue: 4 from Kinesis, 1 from MSK.
    let sqs = larder_tests::aws::sqs().await;
    let mut letters = Vec::new();
    loop {
        let got = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await.unwrap();
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            letters.push(serde_json::from_str::<Json>(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    let mut kinds: Vec<String> = letters.iter().map(|l| l["source"]["kind"].as_str().unwrap().to_string()).collect();
    kinds.sort();
    assert_eq!(kinds, ["kafka", "kinesis", "kinesis", "kinesis", "kinesis"]);
}
