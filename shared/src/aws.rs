//! AWS SDK clients, built once per process.
//!
//! Endpoints can be overridden (`LARDER_S3_ENDPOINT`, `LARDER_KINESIS_ENDPOINT`, or the SDK's
//! own `AWS_ENDPOINT_URL*`), which is how tests point the real SDK at `moto_server` on
//! loopback. An overridden S3 endpoint uses path-style addressing, since `bucket.127.0.0.1`
//! does not resolve.

use aws_config::{BehaviorVersion, SdkConfig};
use tokio::sync::OnceCell;

static SDK_CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();
static S3: OnceCell<aws_sdk_s3::Client> = OnceCell::const_new();
static KINESIS: OnceCell<aws_sdk_kinesis::Client> = OnceCell::const_new();
static SQS: OnceCell<aws_sdk_sqs::Client> = OnceCell::const_new();

async fn sdk_config() -> &'static SdkConfig {
    SDK_CONFIG.get_or_init(|| aws_config::defaults(BehaviorVersion::latest()).load()).await
}

fn endpoint(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

pub async fn s3() -> &'static aws_sdk_s3::Client {
    S3.get_or_init(|| async {
        let mut b = aws_sdk_s3::config::Builder::from(sdk_config().await);
        if let Some(url) = endpoint("LARDER_S3_ENDPOINT") {
            b = b.endpoint_url(url).force_path_style(true);
        } else if endpoint("AWS_ENDPOINT_URL_S3").or_else(|| endpoint("AWS_ENDPOINT_URL")).is_some() {
            b = b.force_path_style(true);
        }
        aws_sdk_s3::Client::from_conf(b.build())
    })
    .await
}

pub async fn kinesis() -> &'static aws_sdk_kinesis::Client {
    KINESIS
        .get_or_init(|| async {
            let mut b = aws_sdk_kinesis::config::Builder::from(sdk_config().await);
            if let Some(url) = endpoint("LARDER_KINESIS_ENDPOINT") {
                b = b.endpoint_url(url);
            }
            aws_sdk_kinesis::Client::from_conf(b.build())
        })
        .await
}

pub async fn sqs() -> &'static aws_sdk_sqs::Client {
    SQS.get_or_init(|| async {
        let mut b = aws_sdk_sqs::config::Builder::from(sdk_config().await);
        if let Some(url) = endpoint("LARDER_SQS_ENDPOINT") {
            b = b.endpoint_url(url);
        }
        aws_sdk_sqs::Client::from_conf(b.build())
    })
    .await
}

/// A local path or an S3 object (or prefix): where a registry or a parquet source lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    Local(std::path::PathBuf),
    S3 { bucket: String, key: String },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// Splits `s3://bucket/key` into its parts.
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_string(), key.to_string()))
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

#[cfg(test)]
mod tests {
    #[test]
    fn s3_urls() {
        assert_eq!(super::parse_s3_url("s3://b/k/x.db"), Some(("b".into(), "k/x.db".into())));
        assert_eq!(super::parse_s3_url("s3://b"), Some(("b".into(), String::new())));
        assert_eq!(super::parse_s3_url("s3:///k"), None);
        assert_eq!(super::parse_s3_url("/local"), None);
    }
}
