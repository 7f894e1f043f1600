//! The Allure TestOps HTTP client (see docs/testops-api.md).

mod client;
mod error;
mod limits;

pub use client::{Download, ExportSelection, TestOpsClient, TestOpsSettings};
pub use error::TestOpsError;
