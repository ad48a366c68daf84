//! The S3 audit archive against the AWS emulator (moto): the Object Lock check, what a
//! written object's retention looks like, write-once puts, listing across pages, and the
//! failures the audit trail tells apart.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use aws_config::SdkConfig;
use aws_sdk_s3::types::ObjectLockMode;
use chrono::TimeDelta;
use portico_infra::audit::S3Archive;
use portico_infra::audit::s3::RETENTION_DAYS;
use portico_platform::audit::archive::{ArchiveError, ArchiveSink};
use portico_platform::clock::{Clock, ManualClock, SystemClock};
use portico_platform::entropy::SystemEntropy;
use portico_platform::ids::TenantId;
use portico_tests::moto;

const CHECKPOINT: &str = "audit/t1/checkpoints/00000000000000000007.json";

/// SDK settings for an emulator at `url`; short timeouts so an outage shows quickly.
async fn sdk(url: &str) -> SdkConfig {
    crate::fixture::emulator_sdk(url, StdDuration::from_secs(2), StdDuration::from_secs(5)).await
}

/// What Terraform does in AWS: the client a test uses to make and inspect buckets.
async fn admin(url: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk(url).await)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn unique_bucket() -> String {
    let id = TenantId::generate(&SystemClock, &SystemEntropy);
    format!("portico-audit-{}", id.as_uuid().simple())
}

/// A fresh bucket, with or without Object Lock.
async fn bucket(url: &str, object_lock: bool) -> String {
    let name = unique_bucket();
    admin(url)
        .await
        .create_bucket()
        .bucket(&name)
        .object_lock_enabled_for_bucket(object_lock)
        .send()
        .await
        .unwrap();
    name
}

/// A clock stopped at the current second.
fn clock() -> ManualClock {
    let now = SystemClock.now();
    ManualClock::new(now - TimeDelta::nanoseconds(i64::from(now.timestamp_subsec_nanos())))
}

async fn archive(url: &str, bucket: &str, prefix: &str, clock: ManualClock) -> S3Archive {
    S3Archive::new(
        &sdk(url).await,
        bucket.to_owned(),
        prefix.to_owned(),
        Arc::new(clock),
    )
}

#[tokio::test]
async fn a_bucket_with_object_lock_passes_the_check() {
    let url = moto::shared_url();
    let bucket = bucket(&url, true).await;

    archive(&url, &bucket, "portico", clock())
        .await
        .check()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bucket_without_object_lock_or_no_bucket_at_all_is_refused() {
    let url = moto::shared_url();
    let plain = bucket(&url, false).await;
    let missing = unique_bucket();

    for bucket in [&plain, &missing] {
        let err = archive(&url, bucket, "portico", clock())
            .await
            .check()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Other(message) if message.contains(bucket.as_str())),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn an_object_is_locked_in_compliance_mode_for_six_years_from_the_clock() {
    let url = moto::shared_url();
    let bucket = bucket(&url, true).await;
    let clock = clock();
    clock.advance(TimeDelta::days(3));
    let archive = archive(&url, &bucket, "portico", clock.clone()).await;

    archive.put(CHECKPOINT, br#"{"seq":7}"#).await.unwrap();

    // HeadObject, not GetObjectRetention: the emulator answers the latter with the object.
    let head = admin(&url)
        .await
        .head_object()
        .bucket(&bucket)
        .key(format!("portico/{CHECKPOINT}"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    let expected = clock.now() + TimeDelta::days(RETENTION_DAYS);
    assert_eq!(
        head.object_lock_retain_until_date().unwrap().secs(),
        expected.timestamp()
    );
    assert_eq!(head.content_type(), Some("application/json"));
    let got = archive.get(CHECKPOINT).await.unwrap();
    assert_eq!(got.as_deref(), Some(&br#"{"seq":7}"#[..]));
}

#[tokio::test]
async fn a_locked_object_survives_an_attempt_to_delete_its_version() {
    let url = moto::shared_url();
    let bucket = bucket(&url, true).await;
    let archive = archive(&url, &bucket, "", clock()).await;
    archive.put(CHECKPOINT, b"signed head").await.unwrap();
    let admin = admin(&url).await;
    let head = admin
        .head_object()
        .bucket(&bucket)
        .key(CHECKPOINT)
        .send()
        .await
        .unwrap();

    let deleted = admin
        .delete_object()
        .bucket(&bucket)
        .key(CHECKPOINT)
        .version_id(head.version_id().unwrap())
        .send()
        .await;

    let err = deleted.unwrap_err();
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&err),
        Some("AccessDenied"),
        "{err:?}"
    );
    let got = archive.get(CHECKPOINT).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"signed head"[..]));
}

#[tokio::test]
async fn the_same_bytes_again_succeed_and_different_bytes_are_refused() {
    let url = moto::shared_url();
    let bucket = bucket(&url, true).await;
    let archive = archive(&url, &bucket, "portico", clock()).await;
    archive.put(CHECKPOINT, b"first").await.unwrap();

    archive.put(CHECKPOINT, b"first").await.unwrap();
    // Same length and a different length: compared by bytes, and by size alone.
    for other in [&b"fir5t"[..], b"second"] {
        let err = archive.put(CHECKPOINT, other).await.unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Exists(name) if name == CHECKPOINT),
            "{err:?}"
        );
    }

    let versions = admin(&url)
        .await
        .list_object_versions()
        .bucket(&bucket)
        .prefix(format!("portico/{CHECKPOINT}"))
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1);
    let got = archive.get(CHECKPOINT).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"first"[..]));
}

#[tokio::test]
async fn a_missing_object_is_none() {
    let url = moto::shared_url();
    let bucket = bucket(&url, true).await;
    let archive = archive(&url, &bucket, "portico", clock()).await;

    assert_eq!(archive.get(CHECKPOINT).await.unwrap(), None);
}

#[tokio::test]
async fn listing_is_sorted_without_the_prefix_and_crosses_pages() {
    let url = moto::shared_url();
    let bucket = bucket(&url, true).await;
    let archive = archive(&url, &bucket, "portico/", clock())
        .await
        .with_page_size(2);
    let neighbour = self::archive(&url, &bucket, "elsewhere", clock()).await;
    for seq in [12, 3, 40, 1, 7] {
        let name = format!("audit/t1/checkpoints/{seq:020}.json");
        archive.put(&name, b"{}").await.unwrap();
    }
    archive
        .put("audit/t2/checkpoints/00000000000000000001.json", b"{}")
        .await
        .unwrap();
    neighbour
        .put("audit/t1/checkpoints/x.json", b"{}")
        .await
        .unwrap();

    let names = archive.list("audit/t1/checkpoints/").await.unwrap();

    let expected: Vec<_> = [1, 3, 7, 12, 40]
        .iter()
        .map(|seq| format!("audit/t1/checkpoints/{seq:020}.json"))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(archive.list("audit/").await.unwrap().len(), 6);
    assert!(archive.list("audit/t3/").await.unwrap().is_empty());
    assert_eq!(archive.describe(), format!("s3://{bucket}/portico/"));
}

#[tokio::test]
async fn names_outside_the_archive_are_refused_before_reaching_s3() {
    let url = moto::shared_url();
    let bucket = bucket(&url, true).await;
    let archive = archive(&url, &bucket, "portico", clock()).await;

    for name in ["../escape", "/audit/x.json", "audit//x.json"] {
        let err = archive.put(name, b"{}").await.unwrap_err();
        assert!(matches!(err, ArchiveError::Other(_)), "{name}: {err:?}");
    }
    assert!(archive.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_and_a_missing_bucket_is_not() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let down = archive(&closed, "portico-audit", "portico", clock()).await;

    for err in [
        down.put(CHECKPOINT, b"{}").await.unwrap_err(),
        down.get(CHECKPOINT).await.unwrap_err(),
        down.list("audit/").await.unwrap_err(),
        down.check().await.unwrap_err(),
    ] {
        assert!(matches!(err, ArchiveError::Unavailable(_)), "{err:?}");
    }

    let url = moto::shared_url();
    let nowhere = archive(&url, &unique_bucket(), "portico", clock()).await;
    let err = nowhere.put(CHECKPOINT, b"{}").await.unwrap_err();
    assert!(matches!(err, ArchiveError::Other(_)), "{err:?}");
}
