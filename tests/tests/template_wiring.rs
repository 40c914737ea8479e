//! The template's wiring is what the code reads: `infra/template.yaml` itself is resolved (by
//! `tests/cfn_local.py`, with local values for the parameters and resources) into each
//! function's environment, and each function runs under the Lambda Runtime API emulator with
//! exactly that environment (plus what Lambda itself provides: region, credentials; and the
//! test-only endpoint overrides that point the SDK at moto_server), answering the events in
//! `events/`. The materialize state machine's definition is run from the template too, its
//! JSONata evaluated, each Lambda task invoking the function.
//!
//! Two configurations: an existing cache with its password in Secrets Manager (a plain Redis),
//! and the cache the stack creates (ElastiCache Serverless: cluster mode, TLS, IAM auth), which
//! a one-node TLS Redis Cluster stands in for. Real IAM tokens are checked in `redis_auth.rs`;
//! here the IAM user accepts any password, so what is checked is the wiring around it (user,
//! cluster type, TLS).

use std::sync::OnceLock;
use std::time::Duration;

use larder::config::RepoConfig;
use larder::time::EventTime;
use larder_tests::{LambdaWatch, MotoServer, RedisServer, repo_root, venv_bin};
use serde_json::{Value, json};

const BUCKET: &str = "larder-template";
const PROJECT: &str = "driver_demo";

fn moto() -> &'static MotoServer {
    static MOTO: OnceLock<MotoServer> = OnceLock::new();
    MOTO.get_or_init(|| {
        let m = MotoServer::start();
        m.export_env();
        m
    })
}

fn event(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("events").join(name)).unwrap()
}

/// `tests/cfn_local.py <args>` with `config` on its standard input.
fn cfn_local(args: &[&str], config: &Value) -> Value {
    let mut child = std::process::Command::new(venv_bin("python"))
        .current_dir(repo_root())
        .arg(repo_root().join("tests/cfn_local.py"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(config.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cfn_local.py {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The template's environment of `function` (its BuildProperties.Binary) under `config`.
fn template_env(config: &Value, function: &str) -> Vec<(String, String)> {
    let all = cfn_local(&["env", "infra/template.yaml"], config);
    let (_, f) = all.as_object().unwrap().iter().find(|(_, f)| f["binary"] == json!(function)).unwrap();
    f["env"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect()
}

/// Registry and parquet history on moto's S3, as `larder apply` would put them.
async fn setup_s3() {
    let s3 = larder_tests::aws::s3().await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let repo = tempfile::tempdir().unwrap();
    // Two files, so the plan has at least two work items.
    for seed in [1, 2] {
        let local = repo.path().join(format!("part-{seed}.parquet"));
        let end = EventTime::parse("2026-11-20T00:00:00Z").unwrap();
        larder::example_data::write_driver_stats(&local, 200, 24, end, seed).unwrap();
        let body = std::fs::read(&local).unwrap();
        let key = format!("data/driver/part-{seed}.parquet");
        s3.put_object().bucket(BUCKET).key(key).body(body.into()).send().await.unwrap();
    }
    let yaml = std::fs::read_to_string(repo_root().join("examples/driver/features.yaml"))
        .unwrap()
        .replace("data/driver_stats.parquet", &format!("s3://{BUCKET}/data/driver/"));
    std::fs::write(repo.path().join("features.yaml"), yaml).unwrap();
    std::fs::write(
        repo.path().join("feature_store.yaml"),
        format!("project: {PROJECT}\nregistry: s3://{BUCKET}/registry.db\n"),
    )
    .unwrap();
    let cfg = RepoConfig::load_with(Some(repo.path()), &|_| None).unwrap();
    larder::registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();
}

fn acl_user(redis: &RedisServer, user: &str, password: Option<&str>) {
    let mut c = redis.client();
    let pass = password.map_or("nopass".to_string(), |p| format!(">{p}"));
    let _: () =
        redis::cmd("ACL").arg("SETUSER").arg(user).arg("on").arg(pass).arg("~*").arg("+@all").query(&mut c).unwrap();
}

#[test]
fn an_existing_cache_with_its_password_in_secrets_manager() {
    let moto = moto();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redis = RedisServer::start();
    acl_user(&redis, "larder-app", Some("s3cr3t-from-sm"));
    let (secret_arn, queue_url, stream_arn) = rt.block_on(async {
        setup_s3().await;
        let sm = larder_tests::aws::secrets_manager().await;
        let secret = sm
            .create_secret()
            .name("larder/redis")
            .secret_string(r#"{"username": "larder-app", "password": "s3cr3t-from-sm"}"#)
            .send()
            .await
            .unwrap();
        let sqs = larder_tests::aws::sqs().await;
        let queue = sqs.create_queue().queue_name("larder-push-dlq").send().await.unwrap();
        let k = larder_tests::aws::kinesis().await;
        k.create_stream().stream_name("driver-events").shard_count(1).send().await.unwrap();
        let stream = k.describe_stream_summary().stream_name("driver-events").send().await.unwrap();
        (
            secret.arn().unwrap().to_string(),
            queue.queue_url().unwrap().to_string(),
            stream.stream_description_summary().unwrap().stream_arn().to_string(),
        )
    });
    let config = json!({
        "parameters": {
            "Project": PROJECT, "RegistryBucket": BUCKET, "RegistryKey": "registry.db", "DataBucket": BUCKET,
            "VpcId": "vpc-0123", "SubnetIds": "subnet-0123",
            "RedisConnectionString": redis.addr(), "RedisType": "redis", "RedisAuth": "secret",
            "RedisPasswordSecretArn": secret_arn,
            "PushStream": stream_arn, "AsyncPush": "true", "PushSource": "driver_stats_push_source",
            "MaterializeRowsPerItem": "2000",
        },
        "refs": {"PushDeadLetterQueue": queue_url, "MaterializeFunction.Alias": "materialize"},
    });
    let env_of = |function: &str| {
        let mut env = template_env(&config, function);
        // Not a password anywhere in the environment the template gives.
        assert!(env.iter().all(|(_, v)| !v.contains("s3cr3t")), "{env:?}");
        env.extend(moto.env());
        env
    };
    let gof_env = env_of("get-online-features");
    assert!(gof_env.contains(&("LARDER_REDIS_AUTH".into(), "secret".into())), "{gof_env:?}");
    assert!(gof_env.contains(&("LARDER_AUTH".into(), "apigateway".into())), "{gof_env:?}");
    let watch = LambdaWatch::start_each(&[
        ("get-online-features", gof_env),
        ("push", env_of("push")),
        ("materialize", env_of("materialize")),
    ]);
    let invoke = |f: &str, e: &str| watch.invoke(f, e, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));

    // The state machine, as the template defines it: plan, items (looping on remaining
    // work), commit; started by the schedule with the event's time.
    watch.ensure_started("materialize");
    let run = cfn_local(
        &[
            "run-state-machine",
            "infra/template.yaml",
            "MaterializeStateMachine",
            &watch.invoke_url(),
            r#"{"time": "2026-11-20T00:00:00Z"}"#,
        ],
        &config,
    );
    let calls = run["invocations"].as_array().unwrap();
    let states: Vec<&str> = calls.iter().map(|c| c["state"].as_str().unwrap()).collect();
    assert_eq!(states.first(), Some(&"Plan"), "{states:?}");
    assert_eq!(states.last(), Some(&"Commit"), "{states:?}");
    assert!(states.iter().filter(|s| **s == "Item").count() >= 2, "an item per file at least: {states:?}");
    assert_eq!(calls[0]["payload"], json!({"action": "plan", "incremental": true, "end": "2026-11-20T00:00:00Z"}));
    assert_eq!(run["output"]["recorded"], json!(true), "{run}");
    let keys: i64 = redis::cmd("DBSIZE").query(&mut redis.client()).unwrap();
    assert_eq!(keys, 200, "every driver materialized");

    // Served from what was materialized, through the template's get-online-features wiring.
    let answer = invoke("get-online-features", &event("apigw-http-get-online-features.json"));
    assert_eq!(answer["statusCode"], json!(200), "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["results"][1]["statuses"][0], json!("PRESENT"), "{body}");
    // The template sets LARDER_AUTH=apigateway: a request no authorizer vouched for (a direct
    // URL invocation with an API Gateway-shaped event) is refused, not served.
    let mut anonymous: Value = serde_json::from_str(&event("apigw-http-get-online-features.json")).unwrap();
    anonymous["requestContext"].as_object_mut().unwrap().remove("authorizer");
    let answer = invoke("get-online-features", &anonymous.to_string());
    assert_eq!(answer["statusCode"], json!(401), "{answer}");

    // Push: a Kinesis batch (the default push source from the template), a poison record to
    // the dead-letter queue the template names, and ?mode=async onto the stream it names.
    let out = invoke("push", &event("kinesis-poison.json"));
    assert_eq!(out, json!({"batchItemFailures": []}));
    let mut async_push: Value = serde_json::from_str(&event("push-apigw-http.json")).unwrap();
    async_push["rawQueryString"] = json!("mode=async");
    let out = invoke("push", &async_push.to_string());
    assert_eq!(out["statusCode"], json!(202), "{out}");
    rt.block_on(async {
        let sqs = larder_tests::aws::sqs().await;
        let got = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await.unwrap();
        assert!(!got.messages().is_empty(), "poison records reach the template's dead-letter queue");
        let k = larder_tests::aws::kinesis().await;
        let shard =
            k.list_shards().stream_name("driver-events").send().await.unwrap().shards()[0].shard_id().to_string();
        let it = k
            .get_shard_iterator()
            .stream_name("driver-events")
            .shard_id(shard)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let records = k.get_records().shard_iterator(it.shard_iterator().unwrap()).send().await.unwrap();
        assert!(!records.records().is_empty(), "async pushes reach the template's stream");
    });
}

#[test]
fn the_cache_the_stack_creates_serverless_tls_cluster_with_iam() {
    let moto = moto();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = RedisServer::start_tls_cluster_node();
    rt.block_on(async {
        // The bucket exists once per process (the other test may have made it).
        let s3 = larder_tests::aws::s3().await;
        if s3.head_bucket().bucket(BUCKET).send().await.is_err() {
            setup_s3().await;
        }
    });
    let config = json!({
        "parameters": {
            "Project": PROJECT, "RegistryBucket": BUCKET, "DataBucket": BUCKET,
            "VpcId": "vpc-0123", "SubnetIds": "subnet-0123", "PushStream": "none",
        },
        "refs": {"Cache": "larder-cache", "CacheLarderUser": "larder-cache-larder", "PushDeadLetterQueue": "https://sqs.local/q",
                 "MaterializeFunction.Alias": "materialize"},
        "attrs": {"Cache.Endpoint.Address": "127.0.0.1", "Cache.Endpoint.Port": cache.port.to_string()},
    });
    let mut env = template_env(&config, "get-online-features");
    for (k, v) in [
        ("LARDER_REDIS_AUTH", "iam"),
        ("LARDER_REDIS_TYPE", "redis_cluster"),
        ("LARDER_REDIS_USERNAME", "larder-cache-larder"),
        ("LARDER_REDIS_IAM_CACHE", "larder-cache"),
        ("LARDER_REDIS_IAM_SERVERLESS", "true"),
    ] {
        assert!(env.contains(&(k.to_string(), v.to_string())), "{k}={v} in {env:?}");
    }
    assert!(env.iter().all(|(k, _)| k != "LARDER_REDIS_PASSWORD_SECRET"), "{env:?}");
    // The IAM user signs in with a token (any password here: the token is checked in redis_auth.rs).
    acl_user(&cache, "larder-cache-larder", None);
    env.extend(moto.env());
    // The stand-in's certificate is signed by the test's CA; ElastiCache's by a public one.
    env.push(("SSL_CERT_FILE".into(), cache.tls().unwrap().ca_cert.display().to_string()));
    let watch = LambdaWatch::start(&env);
    let health =
        watch.invoke("get-online-features", &event("apigw-http-health.json"), Duration::from_secs(120)).unwrap();
    let body: Value = serde_json::from_str(health["body"].as_str().unwrap()).unwrap();
    assert_eq!(health["statusCode"], json!(200), "{body}");
    assert_eq!(body["online_store"]["error"], Value::Null, "{body}");
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut cache.client()).unwrap();
    assert!(clients.contains("user=larder-cache-larder"), "the function signed in as the template's user:\n{clients}");
}
