//! The tabs and the scopes of key bindings: plain values that `app`, the tabs, the key table
//! and the layout all name, so none of them imports another for them.

/// The four tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tab {
    Exports,
    Schedules,
    Releases,
    Logs,
}

impl Tab {
    /// In the order of the tab bar (and of the keys 1 to 4).
    pub const ALL: [Tab; 4] = [Tab::Exports, Tab::Schedules, Tab::Releases, Tab::Logs];

    /// The name on the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Exports => "Exports",
            Tab::Schedules => "Schedules",
            Tab::Releases => "Releases",
            Tab::Logs => "Logs",
        }
    }

    /// The position on the tab bar.
    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Tab(Tab),
    Preview,
}
