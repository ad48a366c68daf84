//! Roles: what an account may do at its clinic. Checked in platform services; the GraphQL
//! guards only translate refusals.

use std::fmt;

/// An account's role at its clinic. The vendor's operators are not accounts of any clinic
/// (see `Principal::Operator`) and can never read PHI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A patient, reaching their own record.
    Patient,
    /// A clinician who treats patients.
    Provider,
    /// A nurse.
    Nurse,
    /// Reception: scheduling and check-in.
    FrontDesk,
    /// Billing staff.
    Billing,
    /// The clinic's administrator: staff, branding, connections.
    TenantAdmin,
}

impl Role {
    /// Every role.
    pub const ALL: [Self; 6] = [
        Self::Patient,
        Self::Provider,
        Self::Nurse,
        Self::FrontDesk,
        Self::Billing,
        Self::TenantAdmin,
    ];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Provider => "provider",
            Self::Nurse => "nurse",
            Self::FrontDesk => "front_desk",
            Self::Billing => "billing",
            Self::TenantAdmin => "tenant_admin",
        }
    }

    /// Reads a stored code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.code() == code)
    }

    /// Whether this is a clinic staff role.
    pub fn is_staff(self) -> bool {
        self != Self::Patient
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_reads_back_and_only_patients_are_not_staff() {
        for role in Role::ALL {
            assert_eq!(Role::from_code(role.code()), Some(role));
            assert_eq!(role.is_staff(), role != Role::Patient);
        }
        assert_eq!(Role::from_code("operator"), None);
    }
}
