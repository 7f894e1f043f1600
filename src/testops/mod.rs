//! The Allure TestOps HTTP client (see shared/testops-api.md).

mod client;
mod error;

pub use client::{Download, ExportSelection, TestOpsClient, TestOpsSettings};
pub use error::TestOpsError;
