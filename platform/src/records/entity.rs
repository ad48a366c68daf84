//! The record store's tables (see the `m20261204_000010_records` migration).

pub(crate) mod ehr_links {
    //! `ehr_links`: which EHR patient a Portico patient is.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ehr_links")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub patient_id: Uuid,
        pub ehr_patient_id: String,
        pub linked_at: DateTimeUtc,
        pub backfilled_at: Option<DateTimeUtc>,
        pub last_synced_at: Option<DateTimeUtc>,
        pub last_polled_at: Option<DateTimeUtc>,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod health_records {
    //! `health_records`: one row per EHR resource, its FHIR JSON sealed.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "health_records")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub patient_id: Uuid,
        pub resource_type: String,
        pub fhir_id: String,
        pub version: String,
        pub category: String,
        pub status: String,
        pub release: String,
        pub effective_at: Option<DateTimeUtc>,
        pub ehr_updated_at: Option<DateTimeUtc>,
        pub finalized_at: Option<DateTimeUtc>,
        pub released_at: Option<DateTimeUtc>,
        pub first_viewed_at: Option<DateTimeUtc>,
        pub withheld_until: Option<DateTimeUtc>,
        pub body: Vec<u8>,
        pub stored_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod record_errors {
    //! `record_errors`: resources that could not be stored, and why (never their content).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "record_errors")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub patient_id: Option<Uuid>,
        pub resource_type: String,
        pub fhir_id: Option<String>,
        pub problem: String,
        pub at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod withholdings {
    //! `withholdings`: one item held back under an information-blocking exception.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "withholdings")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub record_id: Uuid,
        pub patient_id: Uuid,
        pub exception: String,
        pub reason: Vec<u8>,
        pub until: DateTimeUtc,
        pub withheld_by: String,
        pub withheld_at: DateTimeUtc,
        pub released_by: Option<String>,
        pub released_at: Option<DateTimeUtc>,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod sync_jobs {
    //! `sync_jobs`: the sync queue every node shares.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sync_jobs")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub patient_id: Uuid,
        pub kind: String,
        pub focus: Option<String>,
        pub state: String,
        pub due_at: DateTimeUtc,
        pub lease_until: Option<DateTimeUtc>,
        pub attempts: i32,
        pub done: i32,
        pub total: i32,
        pub stored: i32,
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod sync_cursors {
    //! `sync_cursors`: how far each patient's record of each type has been read.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sync_cursors")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub patient_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub resource_type: String,
        pub since: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}
