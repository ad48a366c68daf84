//! The AWS KMS adapter against the AWS emulator (moto): what a tenant's key looks like in
//! KMS, data keys under the encryption context, rotation, deletion, and an outage.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use aws_config::SdkConfig;
use chrono::Duration;
use portico_infra::keys::aws::AwsKms;
use portico_platform::crypto::cache::CacheLimits;
use portico_platform::crypto::keys::{
    EncryptionContext, KeyError, KeyPurpose, KeyService, KeyState,
};
use portico_platform::crypto::seal::Place;
use portico_platform::crypto::vault::VaultError;
use portico_platform::ids::TenantId;
use portico_tests::moto::{self, PrivateMoto};

use crate::fixture::Platform;

/// SDK settings for an emulator at `url`; short timeouts so an outage shows quickly.
async fn sdk(url: &str) -> SdkConfig {
    crate::fixture::emulator_sdk(
        url,
        StdDuration::from_millis(700),
        StdDuration::from_secs(2),
    )
    .await
}

async fn kms(url: &str) -> AwsKms {
    AwsKms::new(&sdk(url).await, moto::PLATFORM_ROLE).unwrap()
}

fn tenant() -> TenantId {
    let clock = portico_platform::clock::SystemClock;
    TenantId::generate(&clock, &portico_platform::entropy::SystemEntropy)
}

fn unique_slug() -> String {
    format!("t{}", tenant().as_uuid().simple())
}

#[tokio::test]
async fn a_tenant_key_is_tagged_aliased_rotating_and_usable_only_for_its_tenant() {
    let url = moto::shared_url();
    let keys = kms(&url).await;
    let tenant = tenant();
    let slug = unique_slug();

    let key = keys.create_tenant_key(tenant, &slug).await.unwrap();

    let admin = aws_sdk_kms::Client::new(&sdk(&url).await);
    let tags = admin
        .list_resource_tags()
        .key_id(&key.0)
        .send()
        .await
        .unwrap();
    let tag = |name: &str| {
        tags.tags()
            .iter()
            .find(|t| t.tag_key() == name)
            .map(|t| t.tag_value().to_owned())
    };
    assert_eq!(tag("portico:tenant_id"), Some(tenant.to_string()));
    assert_eq!(tag("portico:tenant_slug"), Some(slug.clone()));

    let aliases = admin.list_aliases().key_id(&key.0).send().await.unwrap();
    let names: Vec<_> = aliases
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .collect();
    assert_eq!(names, [format!("alias/portico/tenant/{slug}")]);

    let rotation = admin
        .get_key_rotation_status()
        .key_id(&key.0)
        .send()
        .await
        .unwrap();
    assert!(rotation.key_rotation_enabled());

    let policy = admin
        .get_key_policy()
        .key_id(&key.0)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let use_statement = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "PorticoUsesItForThisTenantOnly")
        .unwrap();
    assert_eq!(use_statement["Principal"]["AWS"], moto::PLATFORM_ROLE);
    assert_eq!(
        use_statement["Condition"]["StringEquals"]["kms:EncryptionContext:tenant_id"],
        tenant.to_string()
    );
    let admin_actions = policy["Statement"][0]["Action"].to_string();
    assert!(!admin_actions.contains("Decrypt") && !admin_actions.contains("GenerateDataKey"));
}

#[tokio::test]
async fn a_data_key_opens_only_with_its_own_context_and_bytes() {
    let keys = kms(&moto::shared_url()).await;
    let tenant = tenant();
    let key = keys
        .create_tenant_key(tenant, &unique_slug())
        .await
        .unwrap();
    let context = EncryptionContext::new(tenant, KeyPurpose::Phi);

    let generated = keys.generate_data_key(&key, &context).await.unwrap();
    let opened = keys
        .decrypt_data_key(&key, &generated.wrapped, &context)
        .await
        .unwrap();
    assert_eq!(opened.expose(), generated.plaintext.expose());

    let other = EncryptionContext::new(self::tenant(), KeyPurpose::Phi);
    let err = keys
        .decrypt_data_key(&key, &generated.wrapped, &other)
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::InvalidCiphertext), "{err:?}");

    let mut tampered = generated.wrapped.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x40;
    let err = keys
        .decrypt_data_key(&key, &tampered, &context)
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::InvalidCiphertext), "{err:?}");
}

#[tokio::test]
async fn rotation_and_rewrapping_keep_old_data_keys_readable() {
    let keys = kms(&moto::shared_url()).await;
    let tenant = tenant();
    let key = keys
        .create_tenant_key(tenant, &unique_slug())
        .await
        .unwrap();
    let context = EncryptionContext::new(tenant, KeyPurpose::Phi);
    let generated = keys.generate_data_key(&key, &context).await.unwrap();

    keys.rotate_tenant_key(&key).await.unwrap();
    let rewrapped = keys
        .rewrap_data_key(&key, &generated.wrapped, &context)
        .await
        .unwrap();

    for wrapped in [&generated.wrapped, &rewrapped] {
        let opened = keys
            .decrypt_data_key(&key, wrapped, &context)
            .await
            .unwrap();
        assert_eq!(opened.expose(), generated.plaintext.expose());
    }
}

#[tokio::test]
async fn deletion_is_scheduled_within_kms_bounds_and_described() {
    let keys = kms(&moto::shared_url()).await;
    let key = keys
        .create_tenant_key(tenant(), &unique_slug())
        .await
        .unwrap();

    // Portico's own bound: the emulator would accept a shorter window than KMS does.
    let err = keys.schedule_deletion(&key, 3).await.unwrap_err();
    assert!(matches!(err, KeyError::Invalid(_)), "{err:?}");

    let at = keys.schedule_deletion(&key, 7).await.unwrap();
    assert!(matches!(
        keys.describe(&key).await.unwrap(),
        KeyState::PendingDeletion { .. }
    ));
    assert!(at > chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap());
}

#[tokio::test]
async fn sealing_through_kms_survives_an_outage_while_cached_then_fails_closed_then_recovers() {
    let moto = PrivateMoto::start().await;
    let kms = Arc::new(kms(&moto.url).await);
    let p = Platform::with_keys(CacheLimits::default(), |_, _, _| kms).await;
    let sunrise = p.tenant("sunrise").await;
    let place = Place {
        tenant: sunrise.id,
        table: "messages",
        column: "body",
        row: "m1",
    };
    let tx = p.db.begin(sunrise.id).await.unwrap();
    let sealed = p
        .vault
        .seal(&tx, &place, b"Your biopsy is benign")
        .await
        .unwrap();

    moto.pause().await;
    let opened = p.vault.open(&tx, &place, &sealed).await.unwrap();
    assert_eq!(opened.as_slice(), b"Your biopsy is benign");

    p.clock.advance(Duration::minutes(5));
    let err = p.vault.open(&tx, &place, &sealed).await.unwrap_err();
    assert!(
        matches!(err, VaultError::KeyServiceUnavailable(_)),
        "{err:?}"
    );

    moto.resume().await;
    let opened = p.vault.open(&tx, &place, &sealed).await.unwrap();
    assert_eq!(opened.as_slice(), b"Your biopsy is benign");
}

#[tokio::test]
async fn a_key_service_that_is_gone_refuses_connections_and_sealing_fails_closed() {
    let mut moto = PrivateMoto::start().await;
    let kms = Arc::new(kms(&moto.url).await);
    let p = Platform::with_keys(CacheLimits::default(), |_, _, _| kms).await;
    let sunrise = p.tenant("sunrise").await;
    let harbor = p.tenant("harbor").await;
    let place = |tenant| Place {
        tenant,
        table: "messages",
        column: "body",
        row: "m1",
    };
    let tx = p.db.begin(sunrise.id).await.unwrap();
    let sealed = p
        .vault
        .seal(&tx, &place(sunrise.id), b"Your biopsy is benign")
        .await
        .unwrap();

    moto.kill().await;

    // What is cached keeps working; what needs the key service is refused, not crashed
    // and not served in the clear.
    let opened = p
        .vault
        .open(&tx, &place(sunrise.id), &sealed)
        .await
        .unwrap();
    assert_eq!(opened.as_slice(), b"Your biopsy is benign");
    let other = p.db.begin(harbor.id).await.unwrap();
    let err = p
        .vault
        .seal(&other, &place(harbor.id), b"new note")
        .await
        .unwrap_err();
    assert!(
        matches!(err, VaultError::KeyServiceUnavailable(_)),
        "{err:?}"
    );
    p.clock.advance(Duration::minutes(5));
    let err = p
        .vault
        .open(&tx, &place(sunrise.id), &sealed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VaultError::KeyServiceUnavailable(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_checkpoint_signing_key_is_an_hmac_key_that_kms_checks() {
    let url = moto::shared_url();
    let keys = kms(&url).await;
    let name = format!("audit-checkpoints-{}", unique_slug());

    let key = keys.create_mac_key(&name).await.unwrap();

    let admin = aws_sdk_kms::Client::new(&sdk(&url).await);
    let described = admin.describe_key().key_id(&key.0).send().await.unwrap();
    let metadata = described.key_metadata().unwrap();
    assert_eq!(
        metadata.key_spec(),
        Some(&aws_sdk_kms::types::KeySpec::Hmac256)
    );
    assert_eq!(
        metadata.key_usage(),
        Some(&aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
    );
    let aliases = admin.list_aliases().key_id(&key.0).send().await.unwrap();
    assert!(
        aliases
            .aliases()
            .iter()
            .any(|a| a.alias_name() == Some(&format!("alias/portico/platform/{name}")))
    );

    let mac = keys.generate_mac(&key, b"chain head 42").await.unwrap();
    assert_eq!(mac.len(), 32);
    assert!(keys.verify_mac(&key, b"chain head 42", &mac).await.unwrap());
    assert!(!keys.verify_mac(&key, b"chain head 43", &mac).await.unwrap());
    let mut forged = mac.clone();
    forged[0] ^= 1;
    assert!(
        !keys
            .verify_mac(&key, b"chain head 42", &forged)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn audit_checkpoints_are_signed_by_kms_and_verify() {
    use portico_platform::audit::checkpoint::Checkpointer;
    use portico_platform::audit::verify::Verifier;
    use portico_platform::audit::{Action, Actor, ActorKind, AuditTrail, NewEvent, Purpose};

    let keys = kms(&moto::shared_url()).await;
    let platform = Platform::with_keys(CacheLimits::default(), move |_, _, _| Arc::new(keys)).await;
    let tenant = platform.tenant(&unique_slug()).await;
    let trail = AuditTrail::new(platform.db.clone(), Arc::new(platform.clock.clone()));
    let event = NewEvent::new(
        Actor::new(ActorKind::Staff, "stf-1").unwrap(),
        Action::Read,
        "Observation",
        Purpose::Treatment,
    )
    .unwrap();
    trail.record(tenant.id, &[event]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = portico_infra::audit::local::LocalArchive::new(dir.path().join("a")).unwrap();
    let checkpointer = Checkpointer::new(trail, platform.keys.clone(), Arc::new(archive), None);

    let made = checkpointer.checkpoint(tenant.id).await.unwrap().unwrap();
    let report = Verifier::new(checkpointer.clone())
        .verify(tenant.id)
        .await
        .unwrap();

    // The tenant's creation, then the read.
    assert_eq!(made.seq, 2);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.checkpoints, 1);
}
