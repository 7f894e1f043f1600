//! The `:` command line, as in k9s and vim: `:releases`, `:logs api`, `:export UI`,
//! `:rollback 42 v1.4.0`, `:q`. Parsing and completion are pure functions of the text and
//! the state; `app::run_command` carries a parsed command out through the same checks and
//! dialogs as the keys.

use tui_input::Input;

use super::app::App;
use super::keymap::Action;
use super::tab::Tab;

/// One command as the help and the completion list it.
pub struct Spec {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
    /// It changes something: hidden and refused in read-only mode.
    pub acts: bool,
    /// The most words it reads after its name (`None`: any number); more are refused.
    pub most: Option<usize>,
}

const fn spec(name: &'static str, args: &'static str, help: &'static str, acts: bool) -> Spec {
    Spec {
        name,
        args,
        help,
        acts,
        most: None,
    }
}

impl Spec {
    /// Reads at most `n` words after its name.
    const fn most(self, n: usize) -> Spec {
        Spec {
            most: Some(n),
            ..self
        }
    }
}

/// Every command, in the order the help lists them.
pub const COMMANDS: &[Spec] = &[
    spec("exports", "", "the Exports tab", false).most(0),
    spec("schedules", "", "the Schedules tab", false).most(0),
    spec(
        "releases",
        "[SERVICE]",
        "the Releases tab, at SERVICE",
        false,
    )
    .most(1),
    spec("logs", "[SOURCE]", "the Logs tab, on SOURCE", false),
    spec(
        "filter",
        "TEXT",
        "filter this tab's list (empty: clear)",
        false,
    ),
    spec("export", "GROUP|all", "export now", true),
    spec("approve", "ID", "approve a release (asks)", true).most(1),
    spec(
        "reject",
        "ID",
        "reject a release (asks for the reason)",
        true,
    )
    .most(1),
    spec("rollback", "ID [TAG]", "roll a release back (asks)", true).most(2),
    spec(
        "deploy",
        "ID",
        "deploy an approved release again (asks)",
        true,
    )
    .most(1),
    spec(
        "cancel",
        "ID",
        "cancel a queued or running deploy (asks)",
        true,
    )
    .most(1),
    spec("help", "", "the keys and commands", false).most(0),
    spec("quit", "", "quit (also :q)", false).most(0),
];

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Tab(Tab),
    /// The Releases tab, at a service's first release.
    Releases(Option<String>),
    /// The Logs tab, on a source.
    Logs(Option<String>),
    Filter(String),
    Export(Vec<String>),
    /// A release action by id: approve, reject, rollback (to a tag), deploy, cancel.
    Release {
        action: Action,
        id: i64,
        tag: Option<String>,
    },
    Help,
    Quit,
}

/// The command line while it is open.
#[derive(Debug, Clone, Default)]
pub struct CommandLine {
    pub input: Input,
    /// What Tab offered last (shown after the text).
    pub candidates: Vec<String>,
    /// Why Enter did not run the text.
    pub error: Option<String>,
    /// Position in the history while Up/Down walk it.
    pub recall: Option<usize>,
}

/// The spec `word` names: itself, an alias, or a prefix of exactly one.
fn lookup(word: &str) -> Result<&'static Spec, String> {
    let word = match word {
        "q" | "q!" | "qa" | "exit" => "quit",
        "e" => "exports",
        "s" => "schedules",
        "r" | "rel" => "releases",
        "l" | "log" => "logs",
        "?" | "h" => "help",
        w => w,
    };
    if let Some(s) = COMMANDS.iter().find(|s| s.name == word) {
        return Ok(s);
    }
    let matches: Vec<&Spec> = COMMANDS
        .iter()
        .filter(|s| s.name.starts_with(word))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no command `{}` · Tab lists them, :help explains them",
            crate::sanitize::clean_max(word, 40)
        )),
        many => Err(format!(
            "`{word}` could be {}",
            many.iter().map(|s| s.name).collect::<Vec<_>>().join(" or ")
        )),
    }
}

/// Parses the text after `:`.
pub fn parse(app: &App, line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&first, args)) = words.split_first() else {
        return Err("type a command; Tab completes, Esc closes".into());
    };
    let spec = lookup(first)?;
    if app.readonly && spec.acts {
        return Err(format!("read-only: :{} is off", spec.name));
    }
    // Words past what the command reads are refused, not ignored (`:q now` did quit).
    if let Some(most) = spec.most
        && args.len() > most
    {
        let takes = if spec.args.is_empty() {
            "nothing after it".to_string()
        } else {
            spec.args.to_string()
        };
        return Err(format!(
            "`{}` is too much: :{} takes {takes}",
            crate::sanitize::clean_max(&args[most..].join(" "), 40),
            spec.name
        ));
    }
    let id = |what: &str| -> Result<i64, String> {
        let raw = args
            .first()
            .ok_or_else(|| format!(":{what} needs a release id (:{what} ID)"))?;
        raw.trim_start_matches('#')
            .parse::<i64>()
            .map_err(|_| format!("`{raw}` is not a release id"))
    };
    let release = |action: Action, tag: Option<String>| -> Result<Command, String> {
        Ok(Command::Release {
            action,
            id: id(spec.name)?,
            tag,
        })
    };
    match spec.name {
        "exports" => Ok(Command::Tab(Tab::Exports)),
        "schedules" => Ok(Command::Tab(Tab::Schedules)),
        "releases" => Ok(Command::Releases(args.first().map(|s| s.to_string()))),
        "logs" => Ok(Command::Logs((!args.is_empty()).then(|| args.join(" ")))),
        "filter" => Ok(Command::Filter(args.join(" "))),
        "export" => match args {
            [] => Err(format!(
                ":export needs a group or all: {}",
                group_names(app).join(", ")
            )),
            ["all"] => Ok(Command::Export(group_names(app))),
            groups => {
                let known = group_names(app);
                let unknown: Vec<&str> = groups
                    .iter()
                    .copied()
                    .filter(|g| !known.iter().any(|k| k == g))
                    .collect();
                if unknown.is_empty() {
                    // Each group once, in the order given (`:export API API` exports once).
                    let mut once: Vec<String> = Vec::new();
                    for g in groups {
                        if !once.iter().any(|o| o == g) {
                            once.push(g.to_string());
                        }
                    }
                    Ok(Command::Export(once))
                } else {
                    Err(format!(
                        "no group {}: the groups are {}",
                        unknown.join(", "),
                        known.join(", ")
                    ))
                }
            }
        },
        "approve" => release(Action::Approve, None),
        "reject" => release(Action::Reject, None),
        "rollback" => release(Action::Rollback, args.get(1).map(|s| s.to_string())),
        "deploy" => release(Action::Deploy, None),
        "cancel" => release(Action::CancelDeploy, None),
        "help" => Ok(Command::Help),
        _ => Ok(Command::Quit),
    }
}

fn group_names(app: &App) -> Vec<String> {
    app.exports.groups.iter().map(|g| g.name.clone()).collect()
}

/// What may follow `words` (the words typed before the one being completed).
fn candidates(app: &App, words: &[&str]) -> Vec<String> {
    let Some((&first, args)) = words.split_first() else {
        return COMMANDS
            .iter()
            .filter(|s| !(app.readonly && s.acts))
            .map(|s| s.name.to_string())
            .collect();
    };
    let Ok(spec) = lookup(first) else {
        return Vec::new();
    };
    let ids = |ok: &dyn Fn(crate::release::Status) -> bool| -> Vec<String> {
        app.releases
            .list
            .iter()
            .filter(|r| ok(r.status))
            .map(|r| r.id.to_string())
            .collect()
    };
    use crate::release::Status;
    match (spec.name, args.len()) {
        ("export", _) => {
            let mut g = group_names(app);
            g.push("all".into());
            g
        }
        ("logs", 0) => app.logs.sources.iter().map(|s| s.name.clone()).collect(),
        ("releases", 0) => {
            let mut s: Vec<String> = app
                .releases
                .list
                .iter()
                .map(|r| r.service_name.clone())
                .collect();
            s.extend(app.releases.services.iter().map(|s| s.service.clone()));
            s.sort();
            s.dedup();
            s
        }
        ("approve" | "reject", 0) => ids(&|s| s == Status::ManualTesting),
        ("deploy", 0) => ids(&|s| s == Status::ManualTestPassed),
        ("cancel", 0) => ids(&|s| matches!(s, Status::ManualTestPassed | Status::Deploying)),
        ("rollback", 0) => ids(&|s| matches!(s, Status::Deployed | Status::ProductionFailed)),
        ("rollback", 1) => {
            let id: Option<i64> = args[0].trim_start_matches('#').parse().ok();
            app.releases
                .list
                .iter()
                .find(|r| Some(r.id) == id)
                .map(|r| {
                    app.releases
                        .rollback_targets(r)
                        .into_iter()
                        .map(|t| t.tag)
                        .collect()
                })
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// Tab: completes the last word to the longest prefix its candidates share (and a space
/// when only one fits); returns the new text and the candidates left.
pub fn complete(app: &App, line: &str) -> (String, Vec<String>) {
    let (before, word) = match line.rfind(' ') {
        Some(i) => (&line[..=i], &line[i + 1..]),
        None => ("", line),
    };
    let words: Vec<&str> = before.split_whitespace().collect();
    let mut fits: Vec<String> = candidates(app, &words)
        .into_iter()
        .filter(|c| c.starts_with(word))
        .collect();
    fits.dedup();
    match fits.as_slice() {
        [] => (line.to_string(), fits),
        [one] => (format!("{before}{one} "), Vec::new()),
        many => {
            let common = many.iter().skip(1).fold(many[0].clone(), |acc, c| {
                acc.chars()
                    .zip(c.chars())
                    .take_while(|(a, b)| a == b)
                    .map(|(a, _)| a)
                    .collect()
            });
            (format!("{before}{common}"), fits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixture;

    #[test]
    fn names_aliases_and_unique_prefixes_parse_and_the_rest_say_why() {
        let app = fixture::app_on_releases((80, 24));
        assert_eq!(parse(&app, "q"), Ok(Command::Quit));
        assert_eq!(parse(&app, "rel"), Ok(Command::Releases(None)));
        assert_eq!(parse(&app, "sched"), Ok(Command::Tab(Tab::Schedules)));
        assert_eq!(
            parse(&app, "logs api"),
            Ok(Command::Logs(Some("api".into())))
        );
        assert_eq!(
            parse(&app, "rollback 6 v1.3.2"),
            Ok(Command::Release {
                action: Action::Rollback,
                id: 6,
                tag: Some("v1.3.2".into())
            })
        );
        assert_eq!(
            parse(&app, "approve #9"),
            Ok(Command::Release {
                action: Action::Approve,
                id: 9,
                tag: None
            })
        );
        let err = parse(&app, "re").unwrap_err();
        assert!(err.contains("releases or reject"), "{err}");
        assert!(
            parse(&app, "bogus")
                .unwrap_err()
                .contains("no command `bogus`")
        );
        assert!(
            parse(&app, "approve x")
                .unwrap_err()
                .contains("`x` is not a release id")
        );
        assert!(
            parse(&app, "approve")
                .unwrap_err()
                .contains("needs a release id")
        );
        assert!(
            parse(&app, "export NOPE")
                .unwrap_err()
                .contains("no group NOPE")
        );
    }

    #[test]
    fn tab_completes_commands_ids_and_tags() {
        let mut app = fixture::app_on_releases((80, 24));
        assert_eq!(complete(&app, "rollb"), ("rollback ".to_string(), vec![]));
        let (line, c) = complete(&app, "re");
        assert_eq!(line, "re");
        assert_eq!(c, ["releases", "reject"]);
        // Deployed releases for a rollback; waiting ones for approve.
        assert_eq!(complete(&app, "rollback ").1, ["7", "6", "3"]);
        assert_eq!(complete(&app, "approve ").1, ["9", "5"]);
        assert_eq!(complete(&app, "approve 9").0, "approve 9 ");
        // A rollback's tags: the service's other deployed tags.
        assert_eq!(complete(&app, "rollback 6 ").0, "rollback 6 v1.3.2 ");
        // Read-only leaves out what acts.
        app.readonly = true;
        assert_eq!(complete(&app, "rollb").0, "rollb");
        assert!(parse(&app, "rollback 6").unwrap_err().contains("read-only"));
    }
}
