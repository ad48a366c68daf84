//! S3 with Object Lock: the audit archive in AWS mode.
//!
//! Every object is written with a retention in COMPLIANCE mode for [`RETENTION_DAYS`]
//! (HIPAA, 45 CFR 164.316(b)(2)(i): documentation is kept six years), which no one can
//! shorten or lift before it ends — not Portico, not the account's root user. Writes are
//! conditional (`If-None-Match: *`), so a name that exists is never given a second
//! version by Portico.
//!
//! Portico never creates or changes the bucket: Terraform does, with Object Lock on, and
//! [`S3Archive::check`] refuses a bucket without it. Its role needs `s3:GetObject`,
//! `s3:PutObject`, `s3:PutObjectRetention`, `s3:GetBucketObjectLockConfiguration` and
//! `s3:ListBucket` (without which S3 answers 403 rather than 404 for a missing object).
//! Object Lock does not stop a `DeleteObject` without a version id from adding a delete
//! marker, which hides an object from `get` and `list` while its locked version survives;
//! the bucket policy should deny `s3:DeleteObject` to everyone.
//!
//! AWS settings load the standard way (region, credentials chain, `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_S3`). Addressing is path-style (`https://host/bucket/key`), which both
//! S3 and emulators on `127.0.0.1` understand.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockEnabled, ObjectLockMode};
use chrono::TimeDelta;
use portico_platform::audit::archive::{ArchiveError, ArchiveSink};
use portico_platform::clock::Clock;

use super::{check_name, prefix_folder};

/// How long each object is locked: six years, counting the leap days they may span.
pub const RETENTION_DAYS: i64 = 2192;

/// The archive in an S3 bucket with Object Lock.
#[derive(Debug, Clone)]
pub struct S3Archive {
    client: Client,
    bucket: String,
    prefix: String,
    clock: Arc<dyn Clock>,
    page_size: Option<i32>,
}

impl S3Archive {
    /// Loads AWS settings from the environment and the standard credentials chain.
    pub async fn from_environment(bucket: String, prefix: String, clock: Arc<dyn Clock>) -> Self {
        // Longer attempts than for KMS: a segment can be megabytes.
        let sdk = crate::aws::sdk_config(Duration::from_secs(30), Duration::from_secs(90)).await;

        Self::new(&sdk, bucket, prefix, clock)
    }

    /// An archive on settings already loaded. Objects are named `<prefix>/<name>`; an
    /// empty prefix puts them at the top of the bucket.
    pub fn new(sdk: &SdkConfig, bucket: String, prefix: String, clock: Arc<dyn Clock>) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build();
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            trimmed => format!("{trimmed}/"),
        };

        Self {
            client: Client::from_conf(config),
            bucket,
            prefix,
            clock,
            page_size: None,
        }
    }

    /// Lists at most `keys` objects a request instead of S3's 1,000, so that tests can
    /// reach a second page with a handful of objects.
    pub fn with_page_size(mut self, keys: i32) -> Self {
        self.page_size = Some(keys);
        self
    }

    /// Refuses a bucket without Object Lock, where objects could be overwritten or
    /// deleted; a missing bucket or a refused permission is refused too.
    pub async fn check(&self) -> Result<(), ArchiveError> {
        let answer = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await;
        let enabled = match answer {
            Ok(output) => output
                .object_lock_configuration()
                .and_then(|config| config.object_lock_enabled())
                .is_some_and(|enabled| *enabled == ObjectLockEnabled::Enabled),
            Err(err) if err.code() == Some("ObjectLockConfigurationNotFoundError") => false,
            Err(err) => return Err(self.s3_error("GetObjectLockConfiguration", err)),
        };

        if enabled {
            Ok(())
        } else {
            Err(ArchiveError::Other(format!(
                "the S3 bucket {} does not have Object Lock enabled; the audit archive \
                 needs a bucket created with Object Lock, which Portico does not create",
                self.bucket
            )))
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `None` if there is no object of that key, else its length if S3 gave one.
    async fn head(&self, key: &str) -> Result<Option<Option<i64>>, ArchiveError> {
        let answer = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;

        match answer {
            Ok(output) => Ok(Some(output.content_length())),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(HeadObjectError::is_not_found) =>
            {
                Ok(None)
            }
            Err(err) => Err(self.s3_error("HeadObject", err)),
        }
    }

    /// The object's bytes, or `None` if there is no object of that key.
    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        let answer = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(GetObjectError::is_no_such_key) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(self.s3_error("GetObject", err)),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|err| ArchiveError::Unavailable(Box::new(err)))?;

        Ok(Some(body.into_bytes().to_vec()))
    }

    /// Compares what the bucket holds under `key` with `body`.
    async fn same_or_exists(&self, name: &str, key: &str, body: &[u8]) -> Result<(), ArchiveError> {
        match self.read(key).await? {
            Some(existing) if existing == body => Ok(()),
            Some(_) => Err(ArchiveError::Exists(name.to_owned())),
            // Seen a moment ago and gone now: hidden by a delete marker. Writing again
            // would put a second version beside the locked one.
            None => Err(ArchiveError::Other(format!(
                "s3://{}/{key} disappeared while it was being written; look for a delete marker",
                self.bucket
            ))),
        }
    }

    /// Sorts an S3 failure into what the audit trail acts on: retry later, or stop and
    /// tell the operator. Only the error code and S3's message go into the latter; the
    /// full error goes to the log as the source of `Unavailable`.
    fn s3_error<E>(&self, operation: &str, err: SdkError<E, HttpResponse>) -> ArchiveError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)
        ) {
            return ArchiveError::Unavailable(Box::new(err));
        }
        let status = err.raw_response().map(|response| response.status());
        let transient = matches!(
            err.code(),
            Some(
                "SlowDown"
                    | "Throttling"
                    | "ThrottlingException"
                    | "RequestTimeout"
                    | "InternalError"
                    | "ServiceUnavailable"
                    | "OperationAborted"
                    | "ConditionalRequestConflict"
            )
        );
        if transient || status.is_some_and(|status| status.is_server_error()) {
            return ArchiveError::Unavailable(Box::new(err));
        }

        let code = match (err.code(), status) {
            (Some(code), _) => code.to_owned(),
            (None, Some(status)) => format!("HTTP {}", status.as_u16()),
            // Never sent (no region, say): the SDK's own account of why.
            (None, None) => DisplayErrorContext(&err).to_string(),
        };
        let message = err.message().map(|m| format!(": {m}")).unwrap_or_default();
        ArchiveError::Other(format!(
            "{operation} on s3://{}/{} failed: {code}{message}",
            self.bucket, self.prefix
        ))
    }
}

#[async_trait]
impl ArchiveSink for S3Archive {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn put(&self, name: &str, body: &[u8]) -> Result<(), ArchiveError> {
        check_name(name)?;
        let key = self.key(name);

        match self.head(&key).await? {
            Some(Some(length)) if usize::try_from(length).ok() != Some(body.len()) => {
                return Err(ArchiveError::Exists(name.to_owned()));
            }
            Some(_) => return self.same_or_exists(name, &key, body).await,
            None => {}
        }

        let until = self
            .clock
            .now()
            .checked_add_signed(TimeDelta::days(RETENTION_DAYS))
            .ok_or_else(|| ArchiveError::Other("the retention date is out of range".to_owned()))?;
        let answer = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(content_type(name))
            .body(ByteStream::from(body.to_vec()))
            // S3 refuses Object Lock writes without an integrity checksum.
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(DateTime::from_secs(until.timestamp()))
            // Another writer may have come between HeadObject and here.
            .if_none_match("*")
            .send()
            .await;

        match answer {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("PreconditionFailed") => {
                self.same_or_exists(name, &key, body).await
            }
            Err(err) => Err(self.s3_error("PutObject", err)),
        }
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        check_name(name)?;

        self.read(&self.key(name)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        prefix_folder(prefix)?;
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key(prefix))
            .set_max_keys(self.page_size)
            .into_paginator()
            .send();

        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.s3_error("ListObjectsV2", err))?;
            let keys = page.contents().iter().filter_map(|object| object.key());
            // Keys that are no archive name (put there by something else) are no objects.
            names.extend(
                keys.filter_map(|key| key.strip_prefix(&self.prefix))
                    .filter(|name| check_name(name).is_ok())
                    .map(str::to_owned),
            );
        }
        names.sort();

        Ok(names)
    }
}

/// What the port's names hold: checkpoints are JSON, segments NDJSON.
fn content_type(name: &str) -> &'static str {
    if name.ends_with(".ndjson") {
        "application/x-ndjson"
    } else if name.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use portico_platform::clock::SystemClock;

    use super::*;

    fn archive(prefix: &str) -> S3Archive {
        let sdk = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        S3Archive::new(
            &sdk,
            "audit-bucket".to_owned(),
            prefix.to_owned(),
            Arc::new(SystemClock),
        )
    }

    #[test]
    fn the_prefix_is_one_folder_however_it_is_written() {
        for prefix in ["portico", "/portico", "portico/", "/portico/"] {
            let archive = archive(prefix);
            assert_eq!(archive.key("a/b.json"), "portico/a/b.json");
            assert_eq!(archive.describe(), "s3://audit-bucket/portico/");
        }
        assert_eq!(archive("").key("a/b.json"), "a/b.json");
        assert_eq!(archive("/").describe(), "s3://audit-bucket/");
    }

    #[test]
    fn objects_carry_their_media_type() {
        assert_eq!(content_type("a/1.json"), "application/json");
        assert_eq!(content_type("a/1-2.ndjson"), "application/x-ndjson");
        assert_eq!(content_type("a/1"), "application/octet-stream");
    }
}
