//! Starting the sandbox EHR (development and the demo), and wiring the demo clinic to it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use portico_platform::ids::PatientId;
use portico_platform::principal::Principal;
use portico_platform::records::ReleasePolicy;
use portico_platform::secret::Secret;
use portico_tenants::{Connector, ConnectorAuth, SigningAlgorithm, Tenant, TenantStatus, Vendor};
use url::Url;

use crate::config::Config;
use crate::sandbox::{self, Sandbox};
use crate::services::Services;

/// The sandbox's FHIR base and token URLs on this server.
fn urls(address: SocketAddr) -> anyhow::Result<(Url, Url)> {
    let origin = format!("http://127.0.0.1:{}", address.port());
    Ok((
        Url::parse(&format!("{origin}/sandbox/fhir"))?,
        Url::parse(&format!("{origin}/sandbox/auth/token"))?,
    ))
}

/// How often the sandbox picks up clinics newly connected to it (by `portico connector
/// sandbox` in another process, say).
const REGISTER_EVERY: Duration = Duration::from_secs(5);

/// Starts the sandbox: every active clinic whose connector names it is registered as a
/// client and subscribed to its notifications (its URLs moved to this server's port if the
/// port changed), now and every few seconds; and the finalizing task is started.
pub(super) async fn start(
    config: &Config,
    services: &Services,
    address: SocketAddr,
) -> anyhow::Result<Sandbox> {
    let sandbox = Sandbox::new(
        config.sandbox.patients,
        services.clock.clone(),
        services.entropy.clone(),
    );
    register_clinics(&sandbox, services, address).await?;
    let (registering, every) = (sandbox.clone(), services.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REGISTER_EVERY).await;
            if let Err(err) = register_clinics(&registering, &every, address).await {
                tracing::warn!(error = %err, "the sandbox EHR could not register clinics");
            }
        }
    });
    if config.sandbox.finalize_every_secs > 0 {
        tokio::spawn(
            sandbox
                .clone()
                .run(Duration::from_secs(config.sandbox.finalize_every_secs)),
        );
    }
    tracing::info!(
        sandbox.patients = config.sandbox.patients,
        "sandbox EHR at /sandbox/fhir"
    );
    Ok(sandbox)
}

async fn register_clinics(
    sandbox: &Sandbox,
    services: &Services,
    address: SocketAddr,
) -> anyhow::Result<()> {
    let (base_url, token_url) = urls(address)?;
    for tenant in services.tenants.list(&Principal::System).await? {
        if tenant.status != TenantStatus::Active {
            continue;
        }
        let Some(mut connector) = services
            .tenants
            .connector(&Principal::System, tenant.id)
            .await?
        else {
            continue;
        };
        if connector.vendor != Vendor::Sandbox {
            continue;
        }
        if connector.base_url != base_url || connector.token_url != token_url {
            connector.base_url = base_url.clone();
            connector.token_url = token_url.clone();
            services
                .tenants
                .set_connector(&Principal::Operator, tenant.id, &connector)
                .await
                .context("cannot move the sandbox connector to this port")?;
        }
        if let ConnectorAuth::BackendServices {
            client_id,
            private_key,
            ..
        } = &connector.auth
        {
            sandbox
                .register_client(client_id, private_key.expose())
                .with_context(|| format!("the sandbox connector of {}", tenant.slug))?;
        }
        let endpoint = Url::parse(&format!(
            "http://127.0.0.1:{}/t/{}/ehr/notifications",
            address.port(),
            tenant.slug
        ))?;
        sandbox.subscribe(endpoint, connector.notification_secret.clone());
    }
    Ok(())
}

/// Connects the demo clinic to the sandbox EHR, once.
pub(super) async fn connect_demo_clinic(
    config: &Config,
    services: &Services,
    tenant: &Tenant,
) -> anyhow::Result<()> {
    if services
        .tenants
        .connector(&Principal::System, tenant.id)
        .await?
        .is_none()
    {
        connect(config, services, tenant).await?;
    }
    Ok(())
}

/// Connects a clinic to the sandbox EHR (replacing any connector it had): a Backend
/// Services client with a new ES384 key, and a new notification secret, which is returned.
pub(super) async fn connect(
    config: &Config,
    services: &Services,
    tenant: &Tenant,
) -> anyhow::Result<Secret<String>> {
    let (base_url, token_url) = urls(config.http.listen)?;
    let notification_secret = super::connector::new_notification_secret(services);
    let connector = Connector {
        vendor: Vendor::Sandbox,
        base_url,
        token_url,
        scopes: "system/*.read".to_owned(),
        auth: ConnectorAuth::BackendServices {
            client_id: format!("portico-{}", tenant.slug),
            private_key: sandbox::generate_client_key()?,
            algorithm: SigningAlgorithm::ES384,
            key_id: None,
        },
        practice_id: None,
        poll_interval_secs: 60,
        notification_secret: notification_secret.clone(),
        release: ReleasePolicy::FinalAtOnce,
    };
    services
        .tenants
        .set_connector(&Principal::Operator, tenant.id, &connector)
        .await
        .context("cannot connect the clinic to the sandbox EHR")?;
    Ok(notification_secret)
}

/// Links a demo patient to their sandbox chart (which queues the backfill).
pub(super) async fn link_demo_patient(
    services: &Services,
    tenant: &Tenant,
    patient: PatientId,
    chart: usize,
) -> anyhow::Result<()> {
    services
        .sync
        .link(tenant.id, patient, &sandbox::patient_id(chart))
        .await
        .context("cannot link the demo patient to the sandbox EHR")?;
    Ok(())
}
