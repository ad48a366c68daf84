//! The `Notifier` port: text messages and e-mails to patients and staff, which carry a
//! practice name, a code or a link, and a time — never anything clinical (ARCHITECTURE.md
//! rule 4).
//!
//! The types make that the only thing that can be sent: a [`Message`] is one of a closed
//! set of templates, each built from a practice name and a code, so no caller can put a
//! diagnosis, a result or a name into an SMS. Where a message goes ([`Contact`]) is
//! personal data and prints as `***`.

use std::fmt;

use async_trait::async_trait;

use crate::ids::TenantId;
use crate::secret::Secret;

/// Where a message goes: a phone number for SMS, or an e-mail address.
#[derive(Clone, PartialEq, Eq)]
pub enum Contact {
    /// A mobile number in E.164 form (`+15555550123`).
    Sms(String),
    /// An e-mail address.
    Email(String),
}

impl Contact {
    /// The channel's name, for logs and the outbox (`sms` or `email`).
    pub fn channel(&self) -> &'static str {
        match self {
            Self::Sms(_) => "sms",
            Self::Email(_) => "email",
        }
    }

    /// The number or address itself, for the adapter that delivers.
    pub fn address(&self) -> &str {
        match self {
            Self::Sms(number) | Self::Email(number) => number,
        }
    }
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Contact({}, ***)", self.channel())
    }
}

/// What can be sent. Every variant is a practice name, a code and how long it lasts.
#[derive(Debug)]
pub enum Message {
    /// A code that proves the person holds the contact details the clinic has on file
    /// (self-enrollment).
    VerificationCode {
        /// The clinic's name as patients know it.
        practice: String,
        /// The code.
        code: Secret<String>,
        /// Minutes it lasts.
        minutes: i64,
    },
    /// A code texted as the second step of sign-in.
    SignInCode {
        /// The clinic's name as patients know it.
        practice: String,
        /// The code.
        code: Secret<String>,
        /// Minutes it lasts.
        minutes: i64,
    },
    /// An invitation to a staff account at the clinic.
    StaffInvitation {
        /// The clinic's name.
        practice: String,
        /// The invitation code.
        code: Secret<String>,
        /// Days it lasts.
        days: i64,
    },
    /// A code to reset a forgotten password.
    PasswordReset {
        /// The clinic's name as patients know it.
        practice: String,
        /// The code.
        code: Secret<String>,
        /// Minutes it lasts.
        minutes: i64,
    },
}

impl Message {
    /// The template's name, for logs and the outbox.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::VerificationCode { .. } => "verification_code",
            Self::SignInCode { .. } => "sign_in_code",
            Self::StaffInvitation { .. } => "staff_invitation",
            Self::PasswordReset { .. } => "password_reset",
        }
    }

    /// The text as delivered. A secret: it holds the code.
    pub fn text(&self) -> Secret<String> {
        Secret::new(match self {
            Self::VerificationCode {
                practice,
                code,
                minutes,
            } => format!(
                "{practice}: your verification code is {}. It expires in {minutes} minutes. \
                 The clinic will never ask you for it.",
                code.expose()
            ),
            Self::SignInCode {
                practice,
                code,
                minutes,
            } => format!(
                "{practice}: your sign-in code is {}. It expires in {minutes} minutes. \
                 Never share it; the clinic will not ask you for it.",
                code.expose()
            ),
            Self::StaffInvitation {
                practice,
                code,
                days,
            } => format!(
                "{practice} has invited you to its Portico staff account. Your invitation \
                 code is {}; it expires in {days} days. Accept it at the clinic's portal \
                 address with this e-mail address. If you did not expect this, ignore it.",
                code.expose()
            ),
            Self::PasswordReset {
                practice,
                code,
                minutes,
            } => format!(
                "{practice}: your password reset code is {}. It expires in {minutes} minutes. \
                 If you did not ask to reset your password, ignore this message.",
                code.expose()
            ),
        })
    }
}

/// Why a message was not accepted for delivery.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The delivery service is unreachable or refused the message; try again later.
    #[error("the message could not be sent")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An error with its sources, for the one log line where a failed send is handled.
pub fn describe(err: &NotifyError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Delivers messages: the outbox by default, SNS and e-mail in production.
#[async_trait]
pub trait Notifier: Send + Sync + fmt::Debug {
    /// Accepts `message` for delivery to `to`, on behalf of `tenant`.
    async fn send(
        &self,
        tenant: TenantId,
        to: &Contact,
        message: &Message,
    ) -> Result<(), NotifyError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_names_the_practice_and_the_code_and_nothing_else() {
        let message = Message::VerificationCode {
            practice: "Sunrise Family Clinic".to_owned(),
            code: Secret::new("482913".to_owned()),
            minutes: 10,
        };
        let text = message.text();

        assert!(text.expose().starts_with("Sunrise Family Clinic: "));
        assert!(text.expose().contains("482913"));
        assert!(!format!("{message:?}").contains("482913"));
    }

    #[test]
    fn a_contact_never_prints_its_address() {
        let contact = Contact::Sms("+15555550123".to_owned());
        assert_eq!(format!("{contact:?}"), "Contact(sms, ***)");
    }
}
