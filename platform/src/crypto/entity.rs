//! The tables behind the vault: each tenant's key reference and its wrapped data keys.
//! Both are tenant-owned, under row-level security.

pub(crate) mod tenant_keys {
    //! `tenant_keys`: which key in which key service is the tenant's own.
    use sea_orm::entity::prelude::*;

    use crate::db::TenantOwned;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenant_keys")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        pub provider: String,
        pub key_ref: String,
        pub state: String,
        pub deletion_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
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

pub(crate) mod data_keys {
    //! `data_keys`: data keys, wrapped under the tenant's key.
    use sea_orm::entity::prelude::*;

    use crate::db::TenantOwned;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "data_keys")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub key_ref: String,
        pub wrapped: Vec<u8>,
        pub created_at: DateTimeUtc,
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
