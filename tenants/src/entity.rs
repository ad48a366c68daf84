//! The tables behind the registry, as sea-orm entities. Private to this crate: other crates
//! see [`crate::Tenant`], never a row.

pub(crate) mod tenants {
    //! `tenants`: one row per clinic. Platform-level, not tenant-owned.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub slug: String,
        pub display_name: String,
        pub status: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod tenant_domains {
    //! `tenant_domains`: verified custom domains. Platform-level: read before a tenant is
    //! known.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenant_domains")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub domain: String,
        pub tenant_id: Uuid,
        pub verified_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod tenant_settings {
    //! `tenant_settings`: a clinic's own settings. Tenant-owned, under row-level security.
    use portico_platform::db::TenantOwned;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenant_settings")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        pub default_locale: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl TenantOwned for Entity {
        fn tenant_column() -> Column {
            Column::TenantId
        }
    }
}

pub(crate) mod tenant_connectors {
    //! `tenant_connectors`: a clinic's EHR connector, sealed; vendor and base URL in the clear.
    use portico_platform::db::TenantOwned;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenant_connectors")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        pub vendor: String,
        pub base_url: String,
        pub config: Vec<u8>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl TenantOwned for Entity {
        fn tenant_column() -> Column {
            Column::TenantId
        }
    }
}

pub(crate) mod tenant_branding {
    //! `tenant_branding`: a clinic's colours, support line and logo. Not PHI.
    use portico_platform::db::TenantOwned;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenant_branding")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        pub primary_color: String,
        pub accent_color: String,
        pub support_phone: Option<String>,
        pub support_hours: Option<String>,
        pub logo_type: Option<String>,
        pub logo: Option<Vec<u8>>,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl TenantOwned for Entity {
        fn tenant_column() -> Column {
            Column::TenantId
        }
    }
}
