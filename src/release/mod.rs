//! Releases: the lifecycle, the ledger, who may act, and the deployers that act on the Swarm
//! or run the team's deploy command.

pub mod actor;
pub mod deploy;
pub mod desk;
pub mod engine;
pub mod ledger;
pub mod lifecycle;
pub mod targets;
pub mod watcher;

pub use actor::{Actor, may_act, valid_tag};
pub use desk::{DeskError, ReleaseDesk};
pub use ledger::{
    AuditEntry, AuditKind, Ledger, LedgerChange, LedgerError, NewRelease, Release, Tamper,
    Verified, VerifyError,
};
pub use lifecycle::Status;
