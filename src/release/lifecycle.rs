//! The release lifecycle of docs/contracts.md: the statuses and the only transitions allowed between
//! them. Every status change in the ledger goes through `check`.

use std::fmt;
use std::str::FromStr;

/// A release status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Initiated,
    Building,
    StagingFailed,
    ManualTesting,
    ManualTestPassed,
    ManualTestFailed,
    Deploying,
    Deployed,
    ProductionFailed,
    Rollback,
    RollbackDone,
    RollbackFailed,
}

impl Status {
    pub const ALL: [Status; 12] = [
        Status::Initiated,
        Status::Building,
        Status::StagingFailed,
        Status::ManualTesting,
        Status::ManualTestPassed,
        Status::ManualTestFailed,
        Status::Deploying,
        Status::Deployed,
        Status::ProductionFailed,
        Status::Rollback,
        Status::RollbackDone,
        Status::RollbackFailed,
    ];

    /// The name stored in the ledger and used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initiated => "initiated",
            Status::Building => "building",
            Status::StagingFailed => "staging_failed",
            Status::ManualTesting => "manual_testing",
            Status::ManualTestPassed => "manual_test_passed",
            Status::ManualTestFailed => "manual_test_failed",
            Status::Deploying => "deploying",
            Status::Deployed => "deployed",
            Status::ProductionFailed => "production_failed",
            Status::Rollback => "rollback",
            Status::RollbackDone => "rollback_done",
            Status::RollbackFailed => "rollback_failed",
        }
    }

    /// The statuses this one may move to.
    pub fn next(self) -> &'static [Status] {
        use Status::*;
        match self {
            Initiated => &[Building],
            Building => &[ManualTesting, StagingFailed],
            ManualTesting => &[ManualTestPassed, ManualTestFailed],
            ManualTestPassed => &[Deploying],
            Deploying => &[Deployed, ProductionFailed],
            Deployed | ProductionFailed => &[Rollback],
            Rollback => &[RollbackDone, RollbackFailed],
            StagingFailed | ManualTestFailed | RollbackDone | RollbackFailed => &[],
        }
    }

    /// True when nothing can follow.
    pub fn is_final(self) -> bool {
        self.next().is_empty()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status `{s}`; statuses are: {}", all.join(", "))
            })
    }
}

/// A transition the lifecycle forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot move from {from} to {to}: {}", allowed_text(*.from))]
pub struct Forbidden {
    pub from: Status,
    pub to: Status,
}

fn allowed_text(from: Status) -> String {
    let next = from.next();
    if next.is_empty() {
        format!("{from} is final")
    } else {
        let names: Vec<_> = next.iter().map(|s| s.as_str()).collect();
        format!("from {from} only {} is allowed", names.join(" or "))
    }
}

/// Checks one transition.
pub fn check(from: Status, to: Status) -> Result<(), Forbidden> {
    if from.next().contains(&to) {
        Ok(())
    } else {
        Err(Forbidden { from, to })
    }
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_messages_say_what_is_allowed() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        let e = check(Status::ManualTesting, Status::Deployed)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cannot move from manual_testing to deployed: from manual_testing only manual_test_passed or manual_test_failed is allowed"
        );
        let e = check(Status::RollbackDone, Status::Rollback)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("rollback_done is final"), "{e}");
        assert!(
            "approved"
                .parse::<Status>()
                .unwrap_err()
                .contains("manual_test_passed")
        );
    }
}
