//! Loading AWS settings the standard way — region, the credentials chain, `AWS_ENDPOINT_URL`
//! and the per-service `AWS_ENDPOINT_URL_<SERVICE>` — so that pointing Portico at an
//! emulator needs no switch of Portico's own.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Settings with Portico's retry policy (four attempts, exponential backoff with jitter)
/// and the given bound on one attempt and on the whole operation, retries included.
pub async fn sdk_config(attempt: Duration, operation: Duration) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(attempt)
                .operation_timeout(operation)
                .build(),
        )
        .load()
        .await
}
