//! The identity tables, all tenant-owned under row-level security.

pub(crate) mod accounts {
    //! `accounts`: who can sign in at a clinic.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub role: String,
        pub patient_id: Option<Uuid>,
        pub email_index: Vec<u8>,
        pub email: Vec<u8>,
        pub password_hash: String,
        pub provider_subject: Option<String>,
        pub status: String,
        pub failed_sign_ins: i32,
        pub throttled_until: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod totp_factors {
    //! `totp_factors`: an account's authenticator app secret, sealed.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "totp_factors")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: Uuid,
        pub tenant_id: Uuid,
        pub secret: Vec<u8>,
        pub last_step: Option<i64>,
        pub confirmed_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod recovery_codes {
    //! `recovery_codes`: single-use codes that stand in for the second factor.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "recovery_codes")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub lookup: String,
        pub hash: String,
        pub used_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod sessions {
    //! `sessions`: Portico's own sessions, by the SHA-256 of their token.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Vec<u8>,
        pub tenant_id: Uuid,
        pub account_id: Uuid,
        pub stage: String,
        pub csrf_hash: Vec<u8>,
        pub created_at: DateTimeUtc,
        pub last_seen_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub revoked_at: Option<DateTimeUtc>,
        pub provider_state: Option<Vec<u8>>,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod throttles {
    //! `sign_in_throttles`: failures per client address and per account (or address typed).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sign_in_throttles")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub client: String,
        pub failures: i32,
        pub throttled_until: Option<DateTimeUtc>,
        pub updated_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod patients {
    //! `patients`: the clinic's registry, demographics sealed, found by a blind index.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "patients")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub match_index: Vec<u8>,
        pub record: Vec<u8>,
        pub created_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod activation_codes {
    //! `activation_codes`: clinic-issued, single-use, bound to one patient.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "activation_codes")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub lookup: String,
        pub hash: String,
        pub patient_id: Uuid,
        pub failures: i32,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod verifications {
    //! `verifications`: one-time codes sent to the contact on file, by the SHA-256 of the
    //! ticket that the person holds.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "verifications")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Vec<u8>,
        pub tenant_id: Uuid,
        pub purpose: String,
        pub patient_id: Option<Uuid>,
        pub account_id: Option<Uuid>,
        pub code_hash: Option<Vec<u8>>,
        pub failures: i32,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod invitations {
    //! `invitations`: a staff role offered to an e-mail address, by a code stored hashed.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "invitations")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub lookup: String,
        pub hash: String,
        pub email_index: Vec<u8>,
        pub email: Vec<u8>,
        pub role: String,
        pub invited_by: Option<Uuid>,
        pub failures: i32,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod sms_codes {
    //! `sms_codes`: a sign-in code texted to the number on file, one per waiting session.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sms_codes")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub session_id: Vec<u8>,
        pub tenant_id: Uuid,
        pub account_id: Uuid,
        pub code_hash: Vec<u8>,
        pub sends: i32,
        pub failures: i32,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod identity_directories {
    //! `identity_directories`: a clinic's user directory at an external provider.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_directories")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        pub provider: String,
        pub directory_id: String,
        pub client_id: String,
        pub created_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod passkeys {
    //! `passkeys`: registered passkeys' public keys and counters, by credential id.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "passkeys")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub account_id: Uuid,
        pub credential_id: Vec<u8>,
        pub rp_id: String,
        pub credential: String,
        pub name: String,
        pub created_at: DateTimeUtc,
        pub last_used_at: Option<DateTimeUtc>,
    }

    crate::db::tenant_owned_entity!();
}

pub(crate) mod passkey_ceremonies {
    //! `passkey_ceremonies`: a passkey registration or sign-in in progress, per session.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "passkey_ceremonies")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub session_id: Vec<u8>,
        pub tenant_id: Uuid,
        pub purpose: String,
        pub state: Vec<u8>,
        pub expires_at: DateTimeUtc,
        pub created_at: DateTimeUtc,
    }

    crate::db::tenant_owned_entity!();
}
