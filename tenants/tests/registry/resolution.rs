//! Host and slug resolution, and how its cache learns of changes.

use std::sync::Arc;

use chrono::{DateTime, Duration};
use portico_platform::clock::ManualClock;
use portico_platform::db::Db;
use portico_platform::entropy::SeededEntropy;
use portico_platform::principal::Principal;
use portico_tenants::{DomainName, NewTenant, Resolution, TenantResolver, TenantService};
use portico_tests::TestDatabase;

struct Fixture {
    _database: TestDatabase,
    clock: ManualClock,
    service: TenantService,
    resolver: TenantResolver,
}

async fn fixture() -> Fixture {
    let database = TestDatabase::migrated().await;
    let clock = ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    let service = service(&database, &clock).await;
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
        Arc::new(clock.clone()),
    );

    Fixture {
        _database: database,
        clock,
        service,
        resolver,
    }
}

/// A registry of its own over the same database, as another process would have.
async fn service(database: &TestDatabase, clock: &ManualClock) -> TenantService {
    let db = Db::new(database.connect_as_server().await);
    TenantService::new(db, Arc::new(clock.clone()), Arc::new(SeededEntropy::new(3)))
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

    let elsewhere = service(&f._database, &f.clock).await;
    elsewhere
        .suspend(&Principal::Operator, &"sunrise".parse().unwrap())
        .await
        .unwrap();

    f.clock.advance(Duration::seconds(29));
    assert!(matches!(
        f.resolver.resolve_host(&sunrise).await.unwrap(),
        Resolution::Active(_)
    ));
    f.clock.advance(Duration::seconds(1));
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
