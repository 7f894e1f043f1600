//! The one key map. Key handling looks actions up here and the `?` overlay is drawn from the
//! same table, so help never drifts from behaviour.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::tab::{Scope, Tab};

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    ForceQuit,
    NextTab,
    PrevTab,
    GoTab(usize),
    Down,
    Up,
    PageDown,
    PageUp,
    Top,
    Bottom,
    Left,
    Right,
    Filter,
    /// `:`: the command line.
    Command,
    Help,
    Close,
    // Exports
    Export,
    ExportAll,
    Open,
    Diff,
    Delete,
    Pager,
    Copy,
    // Schedules
    RunNow,
    Pause,
    EditCron,
    // Releases
    Approve,
    Reject,
    Rollback,
    /// `opsdeck release deploy ID`: an approved release.
    Deploy,
    /// `opsdeck release cancel ID`: a queued or deploying release (server only).
    CancelDeploy,
    NextService,
    PrevService,
    /// Scroll the details pane.
    ScrollDown,
    ScrollUp,
    // Logs
    OnlyMatching,
    LevelCycle,
    NextError,
    PrevError,
    Wrap,
    Save,
    Follow,
    Merge,
    Timestamps,
    Fold,
    Pretty,
    Format,
    MatchList,
    // Preview
    Search,
    NextMatch,
    PrevMatch,
}

/// A key (or keys) bound to an action, with the words the help overlay shows.
pub struct Binding {
    pub keys: &'static [Key],
    pub label: &'static str,
    pub help: &'static str,
    pub action: Action,
    pub scope: Scope,
}

/// A key as the table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Ctrl(char),
    Code(KeyCode),
}

impl Key {
    fn matches(self, ev: &KeyEvent) -> bool {
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        match self {
            Key::Char(c) => !ctrl && ev.code == KeyCode::Char(c),
            Key::Ctrl(c) => ctrl && ev.code == KeyCode::Char(c),
            Key::Code(code) => ev.code == code,
        }
    }
}

use Key::{Char, Code, Ctrl};
use KeyCode::{
    BackTab, Down as KDown, End, Enter, Esc, Home, Left as KLeft, PageDown as KPgDn,
    PageUp as KPgUp,
};

const EXPORTS: Scope = Scope::Tab(Tab::Exports);
const SCHEDULES: Scope = Scope::Tab(Tab::Schedules);
const RELEASES: Scope = Scope::Tab(Tab::Releases);
const LOGS: Scope = Scope::Tab(Tab::Logs);

/// Every binding, in the order the help overlay lists them.
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[Char('1'), Char('2'), Char('3'), Char('4')],
        label: "1-4",
        help: "switch tab",
        action: Action::GoTab(0),
        scope: Scope::Global,
    },
    Binding {
        keys: &[Code(KeyCode::Tab)],
        label: "Tab",
        help: "next tab",
        action: Action::NextTab,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Code(BackTab)],
        label: "Shift-Tab",
        help: "previous tab",
        action: Action::PrevTab,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Char('j'), Code(KDown)],
        label: "j/↓",
        help: "down",
        action: Action::Down,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Char('k'), Code(KeyCode::Up)],
        label: "k/↑",
        help: "up",
        action: Action::Up,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Code(KPgDn), Ctrl('d')],
        label: "PgDn",
        help: "page down",
        action: Action::PageDown,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Code(KPgUp), Ctrl('u')],
        label: "PgUp",
        help: "page up",
        action: Action::PageUp,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Char('g'), Code(Home)],
        label: "g",
        help: "first row",
        action: Action::Top,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Char('G'), Code(End)],
        label: "G",
        help: "last row",
        action: Action::Bottom,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Char('/')],
        label: "/",
        help: "filter the list",
        action: Action::Filter,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Char(':')],
        label: ":",
        help: "command line (:releases, :logs api; Tab completes)",
        action: Action::Command,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Char('?')],
        label: "?",
        help: "this help",
        action: Action::Help,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Code(Esc)],
        label: "Esc",
        help: "close / clear filter",
        action: Action::Close,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Char('q')],
        label: "q",
        help: "quit (asks while an export runs)",
        action: Action::Quit,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Ctrl('c')],
        label: "Ctrl-C",
        help: "quit now",
        action: Action::ForceQuit,
        scope: Scope::Global,
    },
    Binding {
        keys: &[Char('h'), Code(KLeft)],
        label: "h/←",
        help: "groups pane",
        action: Action::Left,
        scope: EXPORTS,
    },
    Binding {
        keys: &[Char('l'), Code(KeyCode::Right)],
        label: "l/→",
        help: "files pane",
        action: Action::Right,
        scope: EXPORTS,
    },
    Binding {
        keys: &[Char('e')],
        label: "e",
        help: "export the selected group now",
        action: Action::Export,
        scope: EXPORTS,
    },
    Binding {
        keys: &[Char('E')],
        label: "E",
        help: "export all groups now",
        action: Action::ExportAll,
        scope: EXPORTS,
    },
    Binding {
        keys: &[Code(Enter)],
        label: "Enter",
        help: "preview the selected file",
        action: Action::Open,
        scope: EXPORTS,
    },
    Binding {
        keys: &[Char('D')],
        label: "D",
        help: "diff with the group's previous export",
        action: Action::Diff,
        scope: EXPORTS,
    },
    Binding {
        keys: &[Char('d')],
        label: "d",
        help: "delete the selected file (asks)",
        action: Action::Delete,
        scope: EXPORTS,
    },
    Binding {
        keys: &[Char('o')],
        label: "o",
        help: "open in $PAGER",
        action: Action::Pager,
        scope: EXPORTS,
    },
    Binding {
        keys: &[Char('y')],
        label: "y",
        help: "copy the full path (OSC 52, works over SSH)",
        action: Action::Copy,
        scope: EXPORTS,
    },
    Binding {
        keys: &[Char('r')],
        label: "r",
        help: "run the selected job now",
        action: Action::RunNow,
        scope: SCHEDULES,
    },
    Binding {
        keys: &[Char('p')],
        label: "p",
        help: "pause / resume the job (kept across restarts)",
        action: Action::Pause,
        scope: SCHEDULES,
    },
    Binding {
        keys: &[Char('c')],
        label: "c",
        help: "edit the cron expression",
        action: Action::EditCron,
        scope: SCHEDULES,
    },
    Binding {
        keys: &[Code(KLeft), Char('[')],
        label: "←/[",
        help: "previous source",
        action: Action::Left,
        scope: LOGS,
    },
    Binding {
        keys: &[Code(KeyCode::Right), Char(']')],
        label: "→/]",
        help: "next source",
        action: Action::Right,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('/')],
        label: "/",
        help: "search (regex, smart case)",
        action: Action::Search,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('n')],
        label: "n",
        help: "next match",
        action: Action::NextMatch,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('N')],
        label: "N",
        help: "previous match",
        action: Action::PrevMatch,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('&')],
        label: "&",
        help: "only lines matching the search (toggle)",
        action: Action::OnlyMatching,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('l')],
        label: "l",
        help: "cycle the minimum level: all, ERROR, WARN, INFO, DEBUG",
        action: Action::LevelCycle,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('e')],
        label: "e",
        help: "next error",
        action: Action::NextError,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('E')],
        label: "E",
        help: "previous error",
        action: Action::PrevError,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('w')],
        label: "w",
        help: "wrap long lines (toggle)",
        action: Action::Wrap,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('F'), Code(End)],
        label: "F/End",
        help: "follow again (scrolling up pauses)",
        action: Action::Follow,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('m')],
        label: "m",
        help: "merge all sources by timestamp (toggle)",
        action: Action::Merge,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('t')],
        label: "t",
        help: "show or hide the lines' timestamps",
        action: Action::Timestamps,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('z')],
        label: "z",
        help: "fold or unfold multi-line messages (stack traces)",
        action: Action::Fold,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('J')],
        label: "J",
        help: "pretty-print JSON lines (toggle)",
        action: Action::Pretty,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('f')],
        label: "f",
        help: "the source's format: detected, each known one, plain",
        action: Action::Format,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('M')],
        label: "M",
        help: "list of the whole file's matches; Enter opens one in its file, Esc back",
        action: Action::MatchList,
        scope: LOGS,
    },
    Binding {
        keys: &[Code(Enter)],
        label: "Enter",
        help: "in the match list: open the match in its file",
        action: Action::Open,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('s')],
        label: "s",
        help: "save the shown (filtered) lines to a file",
        action: Action::Save,
        scope: LOGS,
    },
    Binding {
        keys: &[Char('a')],
        label: "a",
        help: "approve the selected release (then y)",
        action: Action::Approve,
        scope: RELEASES,
    },
    Binding {
        keys: &[Char('x')],
        label: "x",
        help: "reject it, with a reason",
        action: Action::Reject,
        scope: RELEASES,
    },
    Binding {
        keys: &[Char('r')],
        label: "r",
        help: "roll it back (pick a tag, type the service name)",
        action: Action::Rollback,
        scope: RELEASES,
    },
    Binding {
        keys: &[Char('d')],
        label: "d",
        help: "deploy an approved release (manual_test_passed; then y)",
        action: Action::Deploy,
        scope: RELEASES,
    },
    Binding {
        keys: &[Char('c')],
        label: "c",
        help: "cancel its queued or running deploy (server; then y)",
        action: Action::CancelDeploy,
        scope: RELEASES,
    },
    Binding {
        keys: &[Char(']')],
        label: "]",
        help: "next service",
        action: Action::NextService,
        scope: RELEASES,
    },
    Binding {
        keys: &[Char('[')],
        label: "[",
        help: "previous service",
        action: Action::PrevService,
        scope: RELEASES,
    },
    Binding {
        keys: &[Char('J')],
        label: "J",
        help: "scroll the details pane down (audit notes in full)",
        action: Action::ScrollDown,
        scope: RELEASES,
    },
    Binding {
        keys: &[Char('K')],
        label: "K",
        help: "scroll the details pane up",
        action: Action::ScrollUp,
        scope: RELEASES,
    },
    Binding {
        keys: &[Code(Enter)],
        label: "Enter",
        help: "details: audit trail and deploy log (j/k/PgDn/PgUp/g/G scroll, Esc closes)",
        action: Action::Open,
        scope: RELEASES,
    },
    Binding {
        keys: &[Char('h'), Code(KLeft)],
        label: "h/←",
        help: "scroll left",
        action: Action::Left,
        scope: Scope::Preview,
    },
    Binding {
        keys: &[Char('l'), Code(KeyCode::Right)],
        label: "l/→",
        help: "scroll right",
        action: Action::Right,
        scope: Scope::Preview,
    },
    Binding {
        keys: &[Char('/')],
        label: "/",
        help: "search",
        action: Action::Search,
        scope: Scope::Preview,
    },
    Binding {
        keys: &[Char('n')],
        label: "n",
        help: "next match",
        action: Action::NextMatch,
        scope: Scope::Preview,
    },
    Binding {
        keys: &[Char('N')],
        label: "N",
        help: "previous match",
        action: Action::PrevMatch,
        scope: Scope::Preview,
    },
];

/// The action a key asks for in `scope` (scoped bindings win over global ones).
/// The server's name for what a key asks (a key of `whoami`'s `refusals`), for the keys whose
/// action the server may refuse.
/// Whether `a` changes something (a file, a schedule, a release): what `--readonly` hides.
pub fn acts(a: Action) -> bool {
    server_action(a).is_some() || a == Action::Delete
}

pub fn server_action(a: Action) -> Option<&'static str> {
    match a {
        Action::Approve => Some("approve"),
        Action::Reject => Some("reject"),
        Action::Rollback => Some("rollback"),
        Action::Deploy => Some("deploy"),
        Action::CancelDeploy => Some("cancel"),
        Action::Export | Action::ExportAll => Some("export"),
        Action::RunNow | Action::Pause | Action::EditCron => Some("schedule"),
        _ => None,
    }
}

pub fn action_for(scope: Scope, ev: &KeyEvent) -> Option<Action> {
    let lookup = |s: Scope| {
        BINDINGS
            .iter()
            .filter(|b| b.scope == s)
            .find_map(|b| b.keys.iter().position(|k| k.matches(ev)).map(|i| (b, i)))
    };
    let (b, i) = lookup(scope).or_else(|| {
        if scope == Scope::Global {
            None
        } else {
            lookup(Scope::Global)
        }
    })?;
    Some(match b.action {
        Action::GoTab(_) => Action::GoTab(i),
        a => a,
    })
}

/// The bindings the help overlay lists for a scope: its own, then the global ones.
pub fn help_for(scope: Scope) -> Vec<&'static Binding> {
    let own: Vec<&Binding> = BINDINGS
        .iter()
        .filter(|b| b.scope == scope && scope != Scope::Global)
        .collect();
    // A global key the scope takes over (`/` searches the Logs) is listed once, as the
    // scope's.
    let shadowed = |g: &Binding| {
        g.keys
            .iter()
            .all(|k| own.iter().any(|b| b.keys.contains(k)))
    };
    let global = BINDINGS
        .iter()
        .filter(|b| b.scope == Scope::Global && !shadowed(b));
    own.iter().copied().chain(global).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn the_help_lists_a_key_once_with_the_meaning_it_has_in_the_scope() {
        let logs = help_for(LOGS);
        let slash: Vec<&str> = logs
            .iter()
            .filter(|b| b.keys.contains(&Key::Char('/')))
            .map(|b| b.help)
            .collect();
        assert_eq!(slash.len(), 1, "{slash:?}");
        assert_eq!(
            action_for(LOGS, &key(KeyCode::Char('/'))),
            Some(
                logs.iter()
                    .find(|b| b.keys.contains(&Key::Char('/')))
                    .unwrap()
                    .action
            )
        );
        // Where no scope takes it over, the global key is listed.
        assert!(help_for(EXPORTS).iter().any(|b| b.action == Action::Filter));
    }

    #[test]
    fn scoped_keys_win_and_tabs_map_by_position() {
        assert_eq!(
            action_for(EXPORTS, &key(KeyCode::Char('e'))),
            Some(Action::Export)
        );
        assert_eq!(action_for(SCHEDULES, &key(KeyCode::Char('e'))), None);
        assert_eq!(
            action_for(Scope::Preview, &key(KeyCode::Char('/'))),
            Some(Action::Search)
        );
        assert_eq!(
            action_for(EXPORTS, &key(KeyCode::Char('/'))),
            Some(Action::Filter)
        );
        assert_eq!(
            action_for(EXPORTS, &key(KeyCode::Char('3'))),
            Some(Action::GoTab(2))
        );
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action_for(SCHEDULES, &ctrl_c), Some(Action::ForceQuit));
    }

    #[test]
    fn every_action_of_a_tab_is_in_its_help() {
        let help = help_for(EXPORTS);
        for a in [
            Action::Export,
            Action::ExportAll,
            Action::Diff,
            Action::Copy,
            Action::Quit,
        ] {
            assert!(
                help.iter().any(|b| b.action == a),
                "{a:?} missing from help"
            );
        }
    }
}
