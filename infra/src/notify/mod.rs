//! Notifier adapters: the embedded outbox (the default) — SNS for SMS comes with the AWS
//! identity work.

pub mod outbox;
