//! Host and slug resolution, and how its cache learns of changes.

use std::sync::Arc;

use chrono::Duration;
use portico_platform::principal::Principal;
use portico_tenants::{DomainName, NewTenant, Resolution, TenantResolver, TenantService};

use crate::fixture::Platform;

struct Fixture {
    platform: Platform,
    service: TenantService,
    resolver: TenantResolver,
}

async fn fixture() -> Fixture {
    let platform = Platform::new(Default::default()).await;
    let service = platform.tenants.clone();
    let new = NewTenant {
        slug: "sunrise".parse().unwrap(),
        display_name: "Sunrise Family Clinic".into(),
        domains: vec!["portal.sunrise.example".parse().unwrap()],
    };
    service.create(&Principal::Operator, new).await.unwrap();
    let base: DomainName = "portico.example".parse().unwrap();
    let resolver = TenantResolver::new(
        service.clone(),
        base,
        Duration::seconds(30),
        Arc::new(platform.clock.clone()),
    );

    Fixture {
        platform,
        service,
        resolver,
    }
}

fn host(name: &str) -> DomainName {
    name.parse().unwrap()
}

fn slug_of(resolution: &Resolution) -> Option<&str> {
    match resolution {
        Resolution::Active(tenant) => Some(tenant.slug.as_str()),
        _ => None,
    }
}

#[tokio::test]
async fn a_tenant_is_found_by_subdomain_custom_domain_and_slug() {
    let f = fixture().await;

    let by_subdomain = f
        .resolver
        .resolve_host(&host("sunrise.portico.example"))
        .await
        .unwrap();
    let by_domain = f
        .resolver
        .resolve_host(&host("portal.sunrise.example"))
        .await
        .unwrap();
    let by_slug = f.resolver.resolve_slug("sunrise").await.unwrap();

    assert_eq!(slug_of(&by_subdomain), Some("sunrise"));
    assert_eq!(slug_of(&by_domain), Some("sunrise"));
    assert_eq!(slug_of(&by_slug), Some("sunrise"));
}

#[tokio::test]
async fn the_base_domain_deeper_names_and_unknown_names_find_nothing() {
    let f = fixture().await;

    for name in [
        "portico.example",
        "a.sunrise.portico.example",
        "harbor.portico.example",
        "sunrise.example",
    ] {
        let resolution = f.resolver.resolve_host(&host(name)).await.unwrap();
        assert_eq!(resolution, Resolution::NotFound, "{name}");
    }
}

#[tokio::test]
async fn a_change_through_the_same_service_is_seen_at_once() {
    let f = fixture().await;
    let sunrise = host("sunrise.portico.example");
    assert!(matches!(
        f.resolver.resolve_host(&sunrise).await.unwrap(),
        Resolution::Active(_)
    ));

    f.service
        .suspend(&Principal::Operator, &"sunrise".parse().unwrap())
        .await
        .unwrap();

    assert!(matches!(
        f.resolver.resolve_host(&sunrise).await.unwrap(),
        Resolution::Suspended(_)
    ));
}

#[tokio::test]
async fn a_change_made_elsewhere_is_seen_once_the_cache_entry_expires() {
    let f = fixture().await;
    let sunrise = host("sunrise.portico.example");
    assert!(matches!(
        f.resolver.resolve_host(&sunrise).await.unwrap(),
        Resolution::Active(_)
    ));

    let elsewhere = f.platform.other_process().await;
    elsewhere
        .suspend(&Principal::Operator, &"sunrise".parse().unwrap())
        .await
        .unwrap();

    f.platform.clock.advance(Duration::seconds(29));
    assert!(matches!(
        f.resolver.resolve_host(&sunrise).await.unwrap(),
        Resolution::Active(_)
    ));
    f.platform.clock.advance(Duration::seconds(1));
    assert!(matches!(
        f.resolver.resolve_host(&sunrise).await.unwrap(),
        Resolution::Suspended(_)
    ));
}

#[tokio::test]
async fn only_operators_manage_the_registry() {
    let f = fixture().await;
    let anonymous = Principal::Anonymous {
        request: portico_platform::ids::RequestId::from_uuid(Default::default()),
    };

    assert!(f.service.list(&anonymous).await.is_err());
    assert!(
        f.service
            .suspend(&anonymous, &"sunrise".parse().unwrap())
            .await
            .is_err()
    );
    let resolution = f.resolver.resolve_slug("sunrise").await.unwrap();
    assert_eq!(
        slug_of(&resolution),
        Some("sunrise"),
        "a refused change must change nothing"
    );
}
