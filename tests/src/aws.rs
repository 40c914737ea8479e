//! AWS clients for tests to set up and inspect what moto_server holds, built the way a Larder
//! binary builds them (endpoints from `LARDER_*_ENDPOINT`, which the test sets first).

pub async fn s3() -> aws_sdk_s3::Client {
    larder::aws::Aws::new().s3().get().await.clone()
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    larder::aws::Aws::new().sqs().get().await.clone()
}

pub async fn kinesis() -> aws_sdk_kinesis::Client {
    larder::aws::Aws::new().kinesis().get().await.clone()
}

pub async fn secrets_manager() -> aws_sdk_secretsmanager::Client {
    larder::aws::Aws::new().secrets_manager().get().await.clone()
}
