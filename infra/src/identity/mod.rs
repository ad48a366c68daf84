//! Identity provider adapters: Amazon Cognito user pools, one per tenant.

pub mod cognito;
pub mod provider;
