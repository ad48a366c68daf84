//! Enrollment, activation codes, staff invitations and password reset.
//!
//! Enrollment ends like the password step of sign-in: a session cookie that reaches
//! nothing until `verifyTotp` confirms the new authenticator with its first code. The
//! authenticator secret, its `otpauth://` URI, a QR code of it (server-rendered SVG) and the
//! recovery codes are in the answer, once.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::NaiveDate;
use portico_platform::crypto::phi::Phi;
use portico_platform::identity::enrollment::Enrolled;
use portico_platform::identity::invitation::NewInvitation;
use portico_platform::identity::local::{LocalIdentity, NewAccount};
use portico_platform::identity::registry::Demographics;
use portico_platform::identity::reset::{PasswordReset, SecondFactor};
use portico_platform::identity::role::Role;
use portico_platform::ids::PatientId;
use portico_platform::secret::Secret;

use crate::RequestContext;
use crate::error::{self, ErrorCode};
use crate::mutation::cookie;
use crate::query::request_context;

/// Enrollment, activation codes and password reset.
#[derive(Debug, Default)]
pub struct EnrollmentMutation;

/// A new account, waiting for its authenticator's first code (`verifyTotp`).
#[derive(Debug, SimpleObject)]
pub struct Enrollment {
    /// `TOTP`: confirm the authenticator app with `verifyTotp`.
    next: String,
    /// The authenticator secret, base32, for typing into the app. Shown once.
    totp_secret: String,
    /// The `otpauth://` URI the QR code carries.
    otpauth_uri: String,
    /// A QR code of the URI, as an SVG document, to scan with the app.
    qr_code_svg: String,
    /// Ten single-use recovery codes, for a lost authenticator. Shown once.
    recovery_codes: Vec<String>,
}

/// A verification in progress: pass the ticket back with the code that was sent.
#[derive(Debug, SimpleObject)]
pub struct VerificationTicket {
    /// Opaque; send it back with the code.
    ticket: String,
    /// What to tell the person (the same whether or not a record was found).
    message: String,
}

/// A staff role, for an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum StaffRole {
    /// A clinician who treats patients.
    Provider,
    /// A nurse.
    Nurse,
    /// Reception: scheduling and check-in.
    FrontDesk,
    /// Billing staff.
    Billing,
    /// The clinic's administrator.
    TenantAdmin,
}

impl From<StaffRole> for Role {
    fn from(role: StaffRole) -> Self {
        match role {
            StaffRole::Provider => Self::Provider,
            StaffRole::Nurse => Self::Nurse,
            StaffRole::FrontDesk => Self::FrontDesk,
            StaffRole::Billing => Self::Billing,
            StaffRole::TenantAdmin => Self::TenantAdmin,
        }
    }
}

/// An invitation sent by e-mail.
#[derive(Debug, SimpleObject)]
pub struct InvitationSent {
    /// The role offered (provider, nurse, front_desk, billing, tenant_admin).
    role: String,
    /// When the code stops working, RFC 3339 (UTC).
    expires_at: String,
}

/// An activation code for a patient, to hand over once.
#[derive(Debug, SimpleObject)]
pub struct ActivationCode {
    /// The code the patient types, with their date of birth.
    code: String,
    /// When it stops working, RFC 3339 (UTC).
    expires_at: String,
}

#[Object]
impl EnrollmentMutation {
    /// Enrolls with the activation code the clinic gave you and your date of birth
    /// (YYYY-MM-DD).
    async fn enroll_with_activation_code(
        &self,
        ctx: &Context<'_>,
        code: String,
        birth_date: String,
        email: String,
        password: String,
    ) -> Result<Enrollment> {
        let request = request_context(ctx)?;
        let birth_date = date(&birth_date)?;
        let password = Secret::new(password);
        let enrolled = ctx
            .data::<LocalIdentity>()?
            .enroll_with_code(
                request.tenant.id,
                &code,
                birth_date,
                patient_account(request, &email, &password),
                &request.client,
            )
            .await
            .map_err(error::from_enrollment)?;

        Ok(answer(ctx, request, &email, enrolled))
    }

    /// Starts self-enrollment: if the clinic has exactly one patient with these details, a
    /// code goes to the phone or e-mail it has on file. Finish with `completeEnrollment`.
    async fn start_enrollment(
        &self,
        ctx: &Context<'_>,
        given_name: String,
        family_name: String,
        birth_date: String,
        zip: String,
    ) -> Result<VerificationTicket> {
        let request = request_context(ctx)?;
        let who = Demographics {
            given: Phi::new(given_name),
            family: Phi::new(family_name),
            birth_date: date(&birth_date)?,
            postal_code: Phi::new(zip),
        };
        let ticket = ctx
            .data::<LocalIdentity>()?
            .start_self_enrollment(
                request.tenant.id,
                &who,
                &request.tenant.display_name,
                &request.client,
            )
            .await
            .map_err(error::from_enrollment)?;

        Ok(VerificationTicket {
            ticket: ticket.expose().clone(),
            message: "If the clinic's records match, we sent a code to the phone or e-mail \
                      address the clinic has on file. It expires in 10 minutes."
                .to_owned(),
        })
    }

    /// Finishes self-enrollment with the code that was sent.
    async fn complete_enrollment(
        &self,
        ctx: &Context<'_>,
        ticket: String,
        code: String,
        email: String,
        password: String,
    ) -> Result<Enrollment> {
        let request = request_context(ctx)?;
        let password = Secret::new(password);
        let enrolled = ctx
            .data::<LocalIdentity>()?
            .complete_self_enrollment(
                request.tenant.id,
                &ticket,
                &code,
                patient_account(request, &email, &password),
                &request.client,
            )
            .await
            .map_err(error::from_enrollment)?;

        Ok(answer(ctx, request, &email, enrolled))
    }

    /// Issues an activation code for one of the clinic's patients (front desk, nurse,
    /// provider, clinic admin).
    async fn create_activation_code(
        &self,
        ctx: &Context<'_>,
        patient_id: ID,
    ) -> Result<ActivationCode> {
        let request = request_context(ctx)?;
        let patient: PatientId = patient_id
            .parse()
            .map_err(|_| ErrorCode::ValidationFailed.error("`patientId` is not a patient id."))?;
        let issued = ctx
            .data::<LocalIdentity>()?
            .issue_activation_code(&request.principal, request.tenant.id, patient)
            .await
            .map_err(error::from_enrollment)?;

        Ok(ActivationCode {
            code: issued.code.expose().clone(),
            expires_at: issued
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }

    /// Invites a person to a staff role at this clinic (clinic admins only). The code goes
    /// to the address by e-mail and lasts 7 days; they accept it with `acceptInvitation`.
    async fn invite_staff(
        &self,
        ctx: &Context<'_>,
        email: String,
        role: StaffRole,
    ) -> Result<InvitationSent> {
        let request = request_context(ctx)?;
        let sent = ctx
            .data::<LocalIdentity>()?
            .invite_staff(
                &request.principal,
                request.tenant.id,
                NewInvitation {
                    email: &email,
                    role: role.into(),
                    practice: &request.tenant.display_name,
                },
            )
            .await
            .map_err(error::from_enrollment)?;

        Ok(InvitationSent {
            role: sent.role.code().to_owned(),
            expires_at: sent
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }

    /// Accepts a staff invitation with its code, the address it was sent to and a new
    /// password; then confirm the new authenticator with `verifyTotp`, as at enrollment.
    async fn accept_invitation(
        &self,
        ctx: &Context<'_>,
        code: String,
        email: String,
        password: String,
    ) -> Result<Enrollment> {
        let request = request_context(ctx)?;
        let password = Secret::new(password);
        let enrolled = ctx
            .data::<LocalIdentity>()?
            .accept_invitation(
                request.tenant.id,
                &code,
                patient_account(request, &email, &password),
                &request.client,
            )
            .await
            .map_err(error::from_enrollment)?;

        Ok(answer(ctx, request, &email, enrolled))
    }

    /// Sends a password reset code to the contact on file for this address, if there is
    /// an account. The answer is the same either way.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> Result<VerificationTicket> {
        let request = request_context(ctx)?;
        let ticket = ctx
            .data::<LocalIdentity>()?
            .request_password_reset(
                request.tenant.id,
                &email,
                &request.tenant.display_name,
                &request.client,
            )
            .await
            .map_err(error::from_reset)?;

        Ok(VerificationTicket {
            ticket: ticket.expose().clone(),
            message: "If there is an account with this address, we sent a code to the phone \
                      or e-mail address on file. It expires in 10 minutes."
                .to_owned(),
        })
    }

    /// Sets a new password with the code that was sent and your second factor: a code
    /// from the authenticator app, or a recovery code. Every session of the account ends.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        ticket: String,
        code: String,
        new_password: String,
        totp_code: Option<String>,
        recovery_code: Option<String>,
    ) -> Result<bool> {
        let request = request_context(ctx)?;
        let second = match (&totp_code, &recovery_code) {
            (Some(totp), None) => SecondFactor::Totp(totp),
            (None, Some(recovery)) => SecondFactor::RecoveryCode(recovery),
            (None, None) => SecondFactor::Neither,
            (Some(_), Some(_)) => {
                return Err(ErrorCode::ValidationFailed
                    .error("Give either `totpCode` or `recoveryCode`, not both."));
            }
        };
        let password = Secret::new(new_password);
        ctx.data::<LocalIdentity>()?
            .reset_password(
                request.tenant.id,
                &PasswordReset {
                    ticket: &ticket,
                    code: &code,
                    password: &password,
                    second,
                },
                (&request.tenant.display_name, request.tenant.slug.as_str()),
                &request.client,
            )
            .await
            .map_err(error::from_reset)?;

        Ok(true)
    }
}

/// An account at the request's clinic: enrollment supplies the patient, an invitation the
/// staff role.
fn patient_account<'a>(
    request: &'a RequestContext,
    email: &'a str,
    password: &'a Secret<String>,
) -> NewAccount<'a> {
    NewAccount {
        email,
        password,
        role: Role::Patient,
        patient: None,
        clinic_name: &request.tenant.display_name,
        clinic_slug: request.tenant.slug.as_str(),
    }
}

/// Sets the pending session's cookie and shows the new factor, once.
fn answer(
    ctx: &Context<'_>,
    request: &RequestContext,
    email: &str,
    enrolled: Enrolled,
) -> Enrollment {
    ctx.append_http_header("set-cookie", cookie(enrolled.session.token.expose()));
    let totp = &enrolled.created.totp;
    let uri = totp.uri(&request.tenant.display_name, email);

    Enrollment {
        next: "TOTP".to_owned(),
        totp_secret: totp.base32().as_str().to_owned(),
        otpauth_uri: uri.as_str().to_owned(),
        qr_code_svg: qr_svg(uri.as_str()),
        recovery_codes: enrolled
            .created
            .recovery_codes
            .iter()
            .map(|code| code.expose().clone())
            .collect(),
    }
}

/// A QR code of `text` as an SVG document: dark modules on white, with a quiet zone, and
/// a title for screen readers.
pub fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build()
            .replacen(
                "<svg ",
                "<svg role=\"img\" aria-label=\"QR code for your authenticator app\" ",
                1,
            ),
        // An otpauth URI is far below a QR code's capacity; say so rather than panic.
        Err(_) => String::new(),
    }
}

fn date(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        ErrorCode::ValidationFailed.error("`birthDate` must be a date in the form YYYY-MM-DD.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_accessible_svg() {
        let svg = qr_svg("otpauth://totp/Sunrise:ana%40example.org?secret=JBSWY3DPEHPK3PXP");
        assert!(svg.contains("<svg role=\"img\" aria-label="), "{svg:.200}");
        assert!(svg.contains("<rect") || svg.contains("<path"));
    }
}
