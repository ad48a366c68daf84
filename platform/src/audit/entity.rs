//! The audit tables. All are tenant-owned, under row-level security; events, checkpoints
//! and segments are append-only (see the migration).

pub(crate) mod heads {
    //! `audit_heads`: the newest event of each tenant's chain; appends lock it.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_heads")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        pub seq: i64,
        pub hash: Vec<u8>,
        pub updated_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod events {
    //! `audit_events`: the chain.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub at: DateTimeUtc,
        pub actor_kind: String,
        pub actor_id: String,
        pub action: String,
        pub resource_type: String,
        pub resource_id: Option<String>,
        pub patient_id: Option<Uuid>,
        pub outcome: String,
        pub client: Option<String>,
        pub purpose: String,
        pub prev_hash: Vec<u8>,
        pub hash: Vec<u8>,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod checkpoints {
    //! `audit_checkpoints`: signed chain heads, also written to the archive.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_checkpoints")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub hash: Vec<u8>,
        pub at: DateTimeUtc,
        pub key_ref: String,
        pub mac: Vec<u8>,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod segments {
    //! `audit_segments`: ranges of events copied to the archive as NDJSON.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_segments")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub first_seq: i64,
        pub last_seq: i64,
        pub name: String,
        pub digest: Vec<u8>,
        pub at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod actors {
    //! `audit_actors`: how to name an actor to a patient (names live here, never in events).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_actors")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub actor_id: String,
        pub display_name: String,
        pub role: Option<String>,
        pub updated_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}
