//! What production really runs: each configured service's live state read from the engine
//! (`read`), kept current by its events stream (`watch`), and compared with the ledger
//! (`drift`).

pub mod drift;
pub mod live;
pub mod read;
pub mod watch;

pub use drift::Drift;
pub use live::{ServiceLive, TaskLive};
pub use watch::ServicesWatch;
