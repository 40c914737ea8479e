//! AWS SDK clients: one SDK configuration per process, and one client per service, each built
//! on first use and shared by every clone of its handle.
//!
//! A binary's `main` creates [`Aws`] once and hands the clients it needs ([`Aws::s3`],
//! [`Aws::kinesis`], [`Aws::sqs`]) down to the code that uses them; nothing below `main` builds
//! a client or reaches for a global. Building is lazy because a process that never touches a
//! service (a CLI run against local files, a function whose registry is on disk in a test)
//! should not pay for loading the SDK configuration, which may probe instance metadata for a
//! region. A handle only refers to its service's SDK crate where it is created, so a binary
//! links only the services its `main` asks for.
//!
//! Endpoints can be overridden (`LARDER_S3_ENDPOINT`, `LARDER_KINESIS_ENDPOINT`,
//! `LARDER_SQS_ENDPOINT`, `LARDER_SECRETSMANAGER_ENDPOINT`, or the SDK's own `AWS_ENDPOINT_URL*`), which is how tests point the
//! real SDK at `moto_server` on loopback. An overridden S3 endpoint uses path-style addressing,
//! since `bucket.127.0.0.1` does not resolve.

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use tokio::sync::OnceCell;

/// The process's AWS configuration, loaded (from the environment, profile or instance
/// metadata) the first time a client needs it. Clones share it.
#[derive(Clone, Default)]
pub struct Aws {
    config: Arc<OnceCell<SdkConfig>>,
}

impl Aws {
    pub fn new() -> Aws {
        Aws::default()
    }

    async fn sdk_config(&self) -> &SdkConfig {
        self.config.get_or_init(|| aws_config::defaults(BehaviorVersion::latest()).load()).await
    }

    /// The S3 client (registries, parquet sources, S3 dead letters).
    pub fn s3(&self) -> S3 {
        Client::new(self, build_s3)
    }

    /// The Kinesis client (`?mode=async` pushes).
    pub fn kinesis(&self) -> Kinesis {
        Client::new(self, build_kinesis)
    }

    /// The SQS client (SQS dead letters).
    pub fn sqs(&self) -> Sqs {
        Client::new(self, build_sqs)
    }

    /// The Secrets Manager client (a Redis password kept as a secret).
    pub fn secrets_manager(&self) -> SecretsManager {
        Client::new(self, build_secrets_manager)
    }

    /// The configuration's region and credentials provider, for signing requests the SDK
    /// does not send itself (ElastiCache IAM tokens).
    pub async fn signing(&self) -> (Option<String>, Option<aws_credential_types::provider::SharedCredentialsProvider>) {
        let config = self.sdk_config().await;
        (config.region().map(|r| r.to_string()), config.credentials_provider())
    }
}

/// A handle on one service's client, built on first use from the shared configuration.
/// Clones share the client (and its connection pool).
pub struct Client<C> {
    aws: Aws,
    client: Arc<OnceCell<C>>,
    build: fn(&SdkConfig) -> C,
}

impl<C> Clone for Client<C> {
    fn clone(&self) -> Self {
        Client { aws: self.aws.clone(), client: Arc::clone(&self.client), build: self.build }
    }
}

impl<C> Client<C> {
    fn new(aws: &Aws, build: fn(&SdkConfig) -> C) -> Self {
        Client { aws: aws.clone(), client: Arc::new(OnceCell::new()), build }
    }

    /// The client, built now if this is its first use.
    pub async fn get(&self) -> &C {
        self.client.get_or_init(|| async { (self.build)(self.aws.sdk_config().await) }).await
    }
}

pub type S3 = Client<aws_sdk_s3::Client>;
pub type Kinesis = Client<aws_sdk_kinesis::Client>;
pub type Sqs = Client<aws_sdk_sqs::Client>;
pub type SecretsManager = Client<aws_sdk_secretsmanager::Client>;

fn endpoint(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

fn build_s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(config);
    if let Some(url) = endpoint("LARDER_S3_ENDPOINT") {
        b = b.endpoint_url(url).force_path_style(true);
    } else if endpoint("AWS_ENDPOINT_URL_S3").or_else(|| endpoint("AWS_ENDPOINT_URL")).is_some() {
        b = b.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

fn build_kinesis(config: &SdkConfig) -> aws_sdk_kinesis::Client {
    let mut b = aws_sdk_kinesis::config::Builder::from(config);
    if let Some(url) = endpoint("LARDER_KINESIS_ENDPOINT") {
        b = b.endpoint_url(url);
    }
    aws_sdk_kinesis::Client::from_conf(b.build())
}

fn build_sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    let mut b = aws_sdk_sqs::config::Builder::from(config);
    if let Some(url) = endpoint("LARDER_SQS_ENDPOINT") {
        b = b.endpoint_url(url);
    }
    aws_sdk_sqs::Client::from_conf(b.build())
}

fn build_secrets_manager(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    let mut b = aws_sdk_secretsmanager::config::Builder::from(config);
    if let Some(url) = endpoint("LARDER_SECRETSMANAGER_ENDPOINT") {
        b = b.endpoint_url(url);
    }
    aws_sdk_secretsmanager::Client::from_conf(b.build())
}

/// A readable description of an SDK error: the service's code and message when there is one.
pub fn describe<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::SdkError;
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => e.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(d) => {
            format!("cannot reach the endpoint: {:?}", d.as_connector_error().map(|c| c.to_string()))
        }
        other => other.to_string(),
    }
}
