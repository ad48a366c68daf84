//! The Cognito adapter against the AWS emulator (moto), which must run with
//! `MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP=true` (as `./tests/run` starts it) or it takes
//! any code: what a tenant's pool looks like, the sign-in from password through MFA setup
//! to tokens checked against the pool's keys, and what is refused on the way.

use std::time::Duration as StdDuration;

use aws_config::SdkConfig;
use aws_sdk_cognitoidentityprovider::types::{
    ExplicitAuthFlowsType, UserPoolMfaType, UsernameAttributeType,
};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use portico_infra::identity::cognito::{
    ChallengeKind, Cognito, CognitoError, InitialPassword, MfaMethod, PoolIds, SmsSettings, Step,
    Tokens,
};
use portico_platform::clock::{Clock, SystemClock};
use portico_platform::entropy::SystemEntropy;
use portico_platform::ids::TenantId;
use portico_platform::secret::Secret;
use portico_tests::moto;
use sha1::Sha1;

const PASSWORD: &str = "tangerine orchestra 42";
const TEMPORARY: &str = "provisional 7 lantern";

/// SDK settings for the shared emulator.
async fn sdk() -> SdkConfig {
    crate::fixture::emulator_sdk(
        &moto::shared_url(),
        StdDuration::from_secs(3),
        StdDuration::from_secs(10),
    )
    .await
}

async fn cognito() -> Cognito {
    Cognito::new(
        &sdk().await,
        SmsSettings {
            sns_caller_role_arn: moto::SMS_ROLE.to_owned(),
            external_id: "portico-sms".to_owned(),
        },
    )
    .unwrap()
}

fn tenant() -> TenantId {
    TenantId::generate(&SystemClock, &SystemEntropy)
}

/// A pool of a tenant of its own, so that tests do not see each other's users.
async fn pool(cognito: &Cognito) -> PoolIds {
    let tenant = tenant();
    cognito
        .provision_pool(tenant, &format!("t{}", tenant.as_uuid().simple()))
        .await
        .unwrap()
}

fn email() -> String {
    format!("patient.{}@example.org", tenant().as_uuid().simple())
}

fn now() -> DateTime<Utc> {
    SystemClock.now()
}

/// The RFC 6238 code (HMAC-SHA-1, 30 s, 6 digits) for a base32 secret at the current
/// step, waiting for the next step when this one is about to end: the emulator accepts
/// only the current step.
async fn totp(secret: &Secret<String>) -> String {
    if now().timestamp().rem_euclid(30) >= 27 {
        tokio::time::sleep(StdDuration::from_secs(4)).await;
    }
    let key = base32(secret.expose());
    let step = u64::try_from(now().timestamp() / 30).unwrap();
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).unwrap();
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;

    format!("{:06}", binary % 1_000_000)
}

/// A code that is certainly not the current one.
async fn wrong_totp(secret: &Secret<String>) -> String {
    let right: u32 = totp(secret).await.parse().unwrap();
    format!("{:06}", (right + 1) % 1_000_000)
}

/// RFC 4648 base32, any length (the emulator's secret is shorter than a real one).
fn base32(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .unwrap();
        buffer = (buffer << 5) | u32::try_from(value).unwrap();
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
        }
    }
    out
}

fn challenge(step: Step, kind: ChallengeKind) -> portico_infra::identity::cognito::Challenge {
    match step {
        Step::Challenge(challenge) if challenge.kind == kind => challenge,
        other => panic!("expected a {kind:?} challenge, got {other:?}"),
    }
}

fn tokens(step: Step) -> Tokens {
    match step {
        Step::Tokens(tokens) => tokens,
        other => panic!("expected tokens, got {other:?}"),
    }
}

/// A user with a permanent password whose authenticator app is set up and preferred;
/// returns the app's secret.
async fn user_with_totp(cognito: &Cognito, pool: &PoolIds, email: &str) -> Secret<String> {
    let password = InitialPassword::Permanent(Secret::new(PASSWORD.to_owned()));
    cognito
        .create_user(&pool.pool_id, email, &password)
        .await
        .unwrap();

    let step = cognito.sign_in(pool, email, PASSWORD).await.unwrap();
    let secret = match step {
        // Cognito asks a user without MFA to set it up during sign-in.
        Step::Challenge(challenge) => {
            let challenge = self::challenge(Step::Challenge(challenge), ChallengeKind::MfaSetup);
            let enrollment = cognito.associate_software_token(&challenge).await.unwrap();
            let code = totp(&enrollment.secret).await;
            tokens(
                cognito
                    .verify_software_token(pool, &enrollment, &code)
                    .await
                    .unwrap(),
            );
            enrollment.secret
        }
        // The emulator signs such a user straight in; the user then adds an app.
        Step::Tokens(tokens) => {
            let secret = cognito
                .associate_software_token_signed_in(&tokens.access_token)
                .await
                .unwrap();
            let code = totp(&secret).await;
            cognito
                .verify_software_token_signed_in(&tokens.access_token, &code)
                .await
                .unwrap();
            secret
        }
    };
    cognito
        .set_mfa_preference(&pool.pool_id, email, MfaMethod::SoftwareToken)
        .await
        .unwrap();

    secret
}

#[tokio::test]
async fn a_tenant_pool_requires_mfa_takes_nist_passwords_and_has_a_secret_client() {
    let cognito = cognito().await;
    let tenant = tenant();
    let slug = format!("t{}", tenant.as_uuid().simple());

    let ids = cognito.provision_pool(tenant, &slug).await.unwrap();

    let admin = aws_sdk_cognitoidentityprovider::Client::new(&sdk().await);
    let described = admin
        .describe_user_pool()
        .user_pool_id(&ids.pool_id.0)
        .send()
        .await
        .unwrap();
    let pool = described.user_pool().unwrap();
    assert_eq!(pool.name(), Some(format!("portico-{slug}").as_str()));
    assert_eq!(pool.mfa_configuration(), Some(&UserPoolMfaType::On));
    assert_eq!(pool.username_attributes(), [UsernameAttributeType::Email]);
    let policy = pool.policies().unwrap().password_policy().unwrap();
    assert_eq!(policy.minimum_length(), Some(8));
    assert!(!policy.require_lowercase() && !policy.require_uppercase());
    assert!(!policy.require_numbers() && !policy.require_symbols());
    let tags = pool.user_pool_tags().unwrap();
    assert_eq!(tags.get("portico:tenant_id"), Some(&tenant.to_string()));
    assert_eq!(tags.get("portico:tenant_slug"), Some(&slug));
    assert_eq!(
        pool.sms_configuration().unwrap().sns_caller_arn(),
        moto::SMS_ROLE
    );

    let mfa = admin
        .get_user_pool_mfa_config()
        .user_pool_id(&ids.pool_id.0)
        .send()
        .await
        .unwrap();
    assert_eq!(mfa.mfa_configuration(), Some(&UserPoolMfaType::On));
    assert!(mfa.software_token_mfa_configuration().unwrap().enabled());
    let sms = mfa.sms_mfa_configuration().unwrap();
    assert_eq!(
        sms.sms_configuration().unwrap().sns_caller_arn(),
        moto::SMS_ROLE
    );
    assert!(sms.sms_authentication_message().unwrap().contains("{####}"));

    let client = admin
        .describe_user_pool_client()
        .user_pool_id(&ids.pool_id.0)
        .client_id(&ids.client_id.0)
        .send()
        .await
        .unwrap();
    let client = client.user_pool_client().unwrap();
    assert_eq!(
        client.client_secret(),
        Some(ids.client_secret.expose().as_str())
    );
    assert!(!ids.client_secret.expose().is_empty());
    let mut flows = client.explicit_auth_flows().to_vec();
    flows.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(
        flows,
        [
            ExplicitAuthFlowsType::AllowRefreshTokenAuth,
            ExplicitAuthFlowsType::AllowUserPasswordAuth
        ]
    );
    assert!(!format!("{ids:?}").contains(ids.client_secret.expose().as_str()));

    cognito.delete_pool(&ids.pool_id).await.unwrap();
    assert!(matches!(
        cognito.delete_pool(&ids.pool_id).await,
        Err(CognitoError::NotFound)
    ));
}

#[tokio::test]
async fn a_new_user_replaces_the_temporary_password_sets_up_an_app_and_gets_verified_tokens() {
    let cognito = cognito().await;
    let pool = pool(&cognito).await;
    let email = email();
    let temporary = InitialPassword::Temporary(Secret::new(TEMPORARY.to_owned()));
    let sub = cognito
        .create_user(&pool.pool_id, &email, &temporary)
        .await
        .unwrap();

    let step = cognito.sign_in(&pool, &email, TEMPORARY).await.unwrap();
    let new_password = challenge(step, ChallengeKind::NewPasswordRequired);
    let step = cognito
        .respond_new_password(&pool, &new_password, PASSWORD)
        .await
        .unwrap();
    let setup = challenge(step, ChallengeKind::MfaSetup);
    let enrollment = cognito.associate_software_token(&setup).await.unwrap();
    assert!(!format!("{enrollment:?}").contains(enrollment.secret.expose().as_str()));

    let wrong = wrong_totp(&enrollment.secret).await;
    assert!(matches!(
        cognito
            .verify_software_token(&pool, &enrollment, &wrong)
            .await,
        Err(CognitoError::CodeMismatch)
    ));
    let code = totp(&enrollment.secret).await;
    let tokens = tokens(
        cognito
            .verify_software_token(&pool, &enrollment, &code)
            .await
            .unwrap(),
    );
    assert!(tokens.refresh_token.is_some());

    let subject = cognito.verify_tokens(&pool, &tokens, now()).await.unwrap();
    assert_eq!(subject.sub, sub);
    assert_eq!(subject.email, email);

    // From now on the app is asked for at every sign-in, and the old password is gone.
    assert!(matches!(
        cognito.sign_in(&pool, &email, TEMPORARY).await,
        Err(CognitoError::Invalid)
    ));
    let step = cognito.sign_in(&pool, &email, PASSWORD).await.unwrap();
    let mfa = challenge(step, ChallengeKind::SoftwareTokenMfa);
    let code = totp(&enrollment.secret).await;
    let tokens = self::tokens(cognito.respond_totp(&pool, &mfa, &code).await.unwrap());
    assert_eq!(
        cognito
            .verify_tokens(&pool, &tokens, now())
            .await
            .unwrap()
            .sub,
        sub
    );
}

#[tokio::test]
async fn a_user_with_an_app_preferred_is_asked_for_its_code_and_a_wrong_one_is_refused() {
    let cognito = cognito().await;
    let pool = pool(&cognito).await;
    let email = email();
    let secret = user_with_totp(&cognito, &pool, &email).await;

    let step = cognito.sign_in(&pool, &email, PASSWORD).await.unwrap();
    let mfa = challenge(step, ChallengeKind::SoftwareTokenMfa);
    let wrong = wrong_totp(&secret).await;
    let refused = cognito.respond_totp(&pool, &mfa, &wrong).await.unwrap_err();
    assert!(matches!(refused, CognitoError::CodeMismatch), "{refused:?}");
    assert!(!refused.to_string().contains(&wrong));

    let step = cognito.sign_in(&pool, &email, PASSWORD).await.unwrap();
    let mfa = challenge(step, ChallengeKind::SoftwareTokenMfa);
    let code = totp(&secret).await;
    let tokens = tokens(cognito.respond_totp(&pool, &mfa, &code).await.unwrap());

    let subject = cognito.verify_tokens(&pool, &tokens, now()).await.unwrap();
    assert_eq!(subject.email, email);
}

#[tokio::test]
async fn a_user_with_sms_preferred_is_asked_for_the_texted_code() {
    let cognito = cognito().await;
    let pool = pool(&cognito).await;
    let email = email();
    let password = InitialPassword::Permanent(Secret::new(PASSWORD.to_owned()));
    cognito
        .create_user(&pool.pool_id, &email, &password)
        .await
        .unwrap();
    cognito
        .set_mfa_preference(&pool.pool_id, &email, MfaMethod::Sms)
        .await
        .unwrap();

    let step = cognito.sign_in(&pool, &email, PASSWORD).await.unwrap();
    let sms = challenge(step, ChallengeKind::SmsMfa);
    // The emulator sends no text and takes any code: this proves the challenge and the
    // answer's shape, not the code check.
    let tokens = tokens(cognito.respond_sms(&pool, &sms, "123456").await.unwrap());

    cognito.verify_tokens(&pool, &tokens, now()).await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let cognito = cognito().await;
    let pool = pool(&cognito).await;
    let email = email();
    let password = InitialPassword::Permanent(Secret::new(PASSWORD.to_owned()));
    cognito
        .create_user(&pool.pool_id, &email, &password)
        .await
        .unwrap();

    let wrong_password = cognito
        .sign_in(&pool, &email, "not the password at all")
        .await
        .unwrap_err();
    let unknown = "nobody@example.org";
    let unknown_user = cognito.sign_in(&pool, unknown, PASSWORD).await.unwrap_err();

    assert!(matches!(wrong_password, CognitoError::Invalid));
    assert!(matches!(unknown_user, CognitoError::Invalid));
    assert_eq!(wrong_password.to_string(), unknown_user.to_string());
    for text in [
        format!("{wrong_password} {wrong_password:?}"),
        format!("{unknown_user} {unknown_user:?}"),
    ] {
        assert!(!text.contains("example.org") && !text.contains("password at all"));
    }
}

#[tokio::test]
async fn an_existing_user_and_a_short_password_are_refused() {
    let cognito = cognito().await;
    let pool = pool(&cognito).await;
    let email = email();
    let password = InitialPassword::Permanent(Secret::new(PASSWORD.to_owned()));
    cognito
        .create_user(&pool.pool_id, &email, &password)
        .await
        .unwrap();

    let again = cognito
        .create_user(&pool.pool_id, &email, &password)
        .await
        .unwrap_err();
    assert!(matches!(again, CognitoError::UserExists), "{again:?}");
    assert!(!format!("{again} {again:?}").contains(&email));

    let short = InitialPassword::Permanent(Secret::new("short".to_owned()));
    let other = self::email();
    let refused = cognito
        .create_user(&pool.pool_id, &other, &short)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CognitoError::PasswordRejected),
        "{refused:?}"
    );
    // Nothing is left behind of a user whose password was refused.
    let retried = InitialPassword::Permanent(Secret::new(PASSWORD.to_owned()));
    cognito
        .create_user(&pool.pool_id, &other, &retried)
        .await
        .unwrap();
}

#[tokio::test]
async fn tampered_expired_and_other_pools_tokens_are_refused() {
    let cognito = cognito().await;
    let pool = pool(&cognito).await;
    let other_pool = self::pool(&cognito).await;
    let email = email();
    let secret = user_with_totp(&cognito, &pool, &email).await;
    let step = cognito.sign_in(&pool, &email, PASSWORD).await.unwrap();
    let mfa = challenge(step, ChallengeKind::SoftwareTokenMfa);
    let code = totp(&secret).await;
    let tokens = tokens(cognito.respond_totp(&pool, &mfa, &code).await.unwrap());
    cognito.verify_tokens(&pool, &tokens, now()).await.unwrap();

    // A claim changed after signing: the signature no longer matches.
    let forged = replace_claim(tokens.id_token.expose(), &email, "mallory@example.org");
    let tampered = Tokens {
        id_token: Secret::new(forged),
        ..tokens.clone()
    };
    assert!(matches!(
        cognito.verify_tokens(&pool, &tampered, now()).await,
        Err(CognitoError::TokenInvalid("bad signature"))
    ));

    // A signature cut short.
    let mut cut = tokens.access_token.expose().clone();
    cut.truncate(cut.len() - 4);
    let cut = Tokens {
        access_token: Secret::new(cut),
        ..tokens.clone()
    };
    assert!(matches!(
        cognito.verify_tokens(&pool, &cut, now()).await,
        Err(CognitoError::TokenInvalid(_))
    ));

    // Another tenant's pool and client (the emulator signs every pool with the same key,
    // so issuer and audience are all that tell them apart).
    let refused = cognito.verify_tokens(&other_pool, &tokens, now()).await;
    assert!(
        matches!(refused, Err(CognitoError::TokenInvalid("wrong issuer"))),
        "{refused:?}"
    );
    let other_client = PoolIds {
        client_id: other_pool.client_id.clone(),
        ..pool.clone()
    };
    let refused = cognito.verify_tokens(&other_client, &tokens, now()).await;
    assert!(
        matches!(refused, Err(CognitoError::TokenInvalid("wrong audience"))),
        "{refused:?}"
    );

    // The ID and access tokens swapped.
    let swapped = Tokens {
        id_token: tokens.access_token.clone(),
        access_token: tokens.id_token.clone(),
        ..tokens.clone()
    };
    assert!(matches!(
        cognito.verify_tokens(&pool, &swapped, now()).await,
        Err(CognitoError::TokenInvalid(_))
    ));

    // Expiry is judged by the clock passed in.
    let later = now() + Duration::seconds(tokens.expires_in_secs + 1);
    assert!(matches!(
        cognito.verify_tokens(&pool, &tokens, later).await,
        Err(CognitoError::TokenInvalid("expired"))
    ));
}

#[tokio::test]
async fn global_sign_out_ends_the_users_cognito_sessions() {
    let cognito = cognito().await;
    let pool = pool(&cognito).await;
    let email = email();
    let secret = user_with_totp(&cognito, &pool, &email).await;
    let step = cognito.sign_in(&pool, &email, PASSWORD).await.unwrap();
    let mfa = challenge(step, ChallengeKind::SoftwareTokenMfa);
    let code = totp(&secret).await;
    let tokens = tokens(cognito.respond_totp(&pool, &mfa, &code).await.unwrap());
    let admin = aws_sdk_cognitoidentityprovider::Client::new(&sdk().await);
    let get_user = || {
        admin
            .get_user()
            .access_token(tokens.access_token.expose())
            .send()
    };
    get_user().await.unwrap();

    cognito
        .global_sign_out(&pool.pool_id, &email)
        .await
        .unwrap();

    let refused = get_user().await.unwrap_err();
    assert_eq!(
        aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata::code(&refused),
        Some("NotAuthorizedException")
    );
}

/// The token with `from` replaced by `to` in its payload, signature unchanged.
fn replace_claim(token: &str, from: &str, to: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert!(payload.contains(from));
    let payload = URL_SAFE_NO_PAD.encode(payload.replace(from, to));
    format!("{}.{payload}.{}", parts[0], parts[2])
}
