//! `opsdeck demo`: the dashboard against a simulated TestOps on 127.0.0.1, a temporary export
//! directory holding 30 days of plausible exports, and a run history to match. Works with no
//! config, no network and no Docker; pressing `e` exports for real over HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Duration as Days, TimeZone, Utc};

use crate::config::Config;
use crate::export::{ExportName, RunHistory};
use crate::testops_sim::{Body, SimOptions, SimTestOps};

/// Project id of the demo's groups.
pub const PROJECT: u64 = 17;
/// The demo's groups: name, TestOps group id, test cases 30 days ago.
pub const GROUPS: [(&str, u64, usize); 2] = [("API", 26961091, 180), ("UI", 26961092, 95)];

/// A running demo: keep it alive as long as the dashboard runs; dropping it removes its files.
pub struct Demo {
    pub sim: SimTestOps,
    pub root: tempfile::TempDir,
    pub config: Config,
}

impl Demo {
    pub fn export_dir(&self) -> PathBuf {
        self.root.path().join("exports")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }
}

/// The CSV of a demo group on day `day` (0 = 30 days ago): cases are added most days, a few
/// change status or owner, one is removed now and then, so diffs and trends have a story.
/// Returns the CSV and its number of test cases.
pub fn group_csv(group: &str, base_rows: usize, day: u32) -> (String, u64) {
    let statuses = ["Active", "Draft", "Review", "Outdated"];
    let owners = ["anna", "boris", "chen", "dmitry"];
    let mut out =
        String::from("allure_id;name;full_name;automated;status;scenario;tag;Owner;Epic\n");
    let rows = base_rows + day as usize * 3;
    let mut count = 0;
    for i in 0..rows {
        // Every 41st case was removed on day i % 30.
        if i % 41 == 7 && (day as usize) > (i % 30) {
            continue;
        }
        let id = 40_000 + i;
        let drift = (i as u32 + day).is_multiple_of(11);
        let status = statuses[(i + if drift { day as usize } else { 0 }) % 4];
        let owner = owners[(i / 13 + usize::from(drift && day.is_multiple_of(3))) % 4];
        out.push_str(&format!(
            "{id};\"{group}: проверка сценария {i}\";{}.suite{}.case{i};{};{status};\"1. open the page\n2. check case {i}\";\"smoke,{}\";{owner};\"Epic {}\"\n",
            group.to_lowercase(),
            i % 9,
            i % 3 != 0,
            group.to_lowercase(),
            i % 6,
        ));
        count += 1;
    }
    (out, count)
}

/// Starts the simulation and fills a temporary export dir and history.
pub async fn start() -> anyhow::Result<Demo> {
    let root = tempfile::Builder::new().prefix("opsdeck-demo-").tempdir()?;
    let sim = SimTestOps::start(SimOptions {
        api_token: "demo-token".into(),
        not_ready_polls: 2,
        chunk_size: 8 * 1024,
        chunk_delay: Some(Duration::from_millis(40)),
        ..SimOptions::default()
    })
    .await?;
    for (name, id, base) in GROUPS {
        sim.set_body(id, Body::Bytes(Bytes::from(group_csv(name, base, 30).0)));
    }
    let export_dir = root.path().join("exports");
    let data_dir = root.path().join("data");
    std::fs::create_dir_all(&export_dir)?;
    std::fs::create_dir_all(&data_dir)?;
    let now = Utc::now();
    seed(&export_dir, &data_dir.join(crate::paths::HISTORY_DB), now)?;

    let mut text = format!(
        "# opsdeck demo configuration (temporary)\n[testops]\nbase_url = \"{}\"\ntoken = \"demo-token\"\nproject_id = {PROJECT}\ntree_id = 937\npoll_interval = \"500ms\"\n",
        sim.base_url()
    );
    for (name, id, _) in GROUPS {
        text.push_str(&format!(
            "\n[[testops.groups]]\nname = \"{name}\"\nid = {id}\n"
        ));
    }
    text.push_str(&format!(
        "\n[export]\ndir = \"{}\"\nschedule = \"0 7 * * *\"\nretention_days = 30\nretry_delays = [\"10s\"]\n",
        export_dir.display()
    ));
    text.push_str(DEMO_RELEASES);
    let config_path = root.path().join("config.toml");
    // It holds a token (the simulator's): private, as a user's config should be.
    {
        use std::io::Write;
        crate::private::options()
            .write(true)
            .create_new(true)
            .open(&config_path)?
            .write_all(text.as_bytes())?;
    }
    let config = Config::from_parts(Some(&config_path), &text, &|_| None)?;
    seed_releases(&data_dir.join("releases.db"), &config.releases)?;
    Ok(Demo { sim, root, config })
}

/// The demo's services and its simulated deployer: a script that talks like a Swarm update.
const DEMO_RELEASES: &str = include_str!("../../assets/demo/services.toml");

/// The seed ledger's releases (`assets/demo/releases.toml`).
#[derive(serde::Deserialize)]
struct SeedFile {
    release: Vec<SeedRelease>,
}

#[derive(serde::Deserialize)]
struct SeedRelease {
    service: String,
    tag: String,
    run: u32,
    path: Vec<crate::release::Status>,
    note: Option<String>,
}

/// Sample releases in every section of the Releases tab.
fn seed_releases(path: &Path, releases: &crate::config::ReleasesConfig) -> anyhow::Result<()> {
    use crate::release::{Actor, Ledger, NewRelease, Status};
    let seed: SeedFile = toml::from_str(include_str!("../../assets/demo/releases.toml"))?;
    // Each release names its service's repository, as `release create` stores it: the dialogs
    // show the image the deploy will run.
    let repository = |service: &str| releases.service(service).and_then(|s| s.repository.clone());
    let mut ledger = Ledger::open(path)?;
    let ci = Actor {
        user: "ci".into(),
        sudo_user: None,
        ssh_client: Some("10.0.4.12".into()),
    };
    let qa = Actor {
        user: "olga".into(),
        sudo_user: None,
        ssh_client: Some("10.0.9.31".into()),
    };
    for s in seed.release {
        let r = ledger.create(
            &NewRelease {
                service_name: s.service.clone(),
                release_tag: s.tag.clone(),
                initiated_by: Some("github-actions".into()),
                github_run_id: Some(s.run.to_string()),
                github_action_link: Some(format!(
                    "https://github.com/shop/{}/actions/runs/{}",
                    s.service, s.run
                )),
                github_ref: Some(format!("refs/tags/{}", s.tag)),
                image: repository(&s.service),
                ..Default::default()
            },
            &ci,
        )?;
        for (i, to) in s.path.iter().enumerate() {
            let who = if i < 2 { &ci } else { &qa };
            let note = match to {
                Status::ManualTestFailed | Status::ProductionFailed => s.note.as_deref(),
                _ => None,
            };
            ledger.transition(r.id, *to, who, note, None)?;
        }
    }
    Ok(())
}

/// 30 days of daily 07:00 exports for every group, with a matching run history; all within
/// the retention period, so none is deleted at start.
fn seed(export_dir: &Path, history_path: &Path, now: DateTime<Utc>) -> anyhow::Result<()> {
    let history = RunHistory::open(history_path)?;
    let mut latest =
        Utc.from_utc_datetime(&now.date_naive().and_hms_opt(7, 0, 0).unwrap_or_default());
    if latest > now {
        latest -= Days::days(1);
    }
    for day in 0..30u32 {
        let at = latest - Days::days(i64::from(29 - day));
        let mut saved = Vec::new();
        for (name, _, base) in GROUPS {
            let (csv, rows) = group_csv(name, base, day);
            let file = export_dir.join(ExportName::file_name(PROJECT, name, at));
            std::fs::write(&file, &csv)?;
            saved.push((name, rows, csv.len() as u64, file.display().to_string()));
        }
        let took = Days::seconds(4 + i64::from(day % 5));
        let rows: Vec<(&str, u64, u64, &str)> = saved
            .iter()
            .map(|(n, r, b, f)| (*n, *r, *b, f.as_str()))
            .collect();
        history.record_past_run("export", at, took, &rows)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::release::{Ledger, Status};

    /// The seed data in `assets/demo/` makes a ledger with a release in every section, the
    /// failures with their notes, and 30 days of exports.
    #[tokio::test]
    async fn the_demo_starts_with_its_seed_ledger_and_exports() {
        let demo = super::start().await.unwrap();
        let ledger = Ledger::open(&demo.data_dir().join("releases.db")).unwrap();
        let all = ledger.list(None, None).unwrap();
        assert_eq!(all.len(), 9);
        let failed = all
            .iter()
            .find(|r| r.service_name == "web" && r.release_tag == "2.2.0")
            .unwrap();
        assert_eq!(failed.status, Status::ManualTestFailed);
        let audit = ledger.audit(failed.id).unwrap();
        assert_eq!(
            audit.last().and_then(|a| a.note.clone()).as_deref(),
            Some("checkout button missing on mobile")
        );
        assert_eq!(
            all.iter()
                .filter(|r| r.status == Status::ManualTesting)
                .count(),
            2
        );
        assert_eq!(demo.config.releases.services.len(), 3);
        // Every release holds the image its deploy runs (the config's repository).
        for r in &all {
            let svc = demo
                .config
                .releases
                .services
                .iter()
                .find(|s| s.name == r.service_name)
                .unwrap();
            assert_eq!(
                crate::tui::tabs::releases::release_image(r),
                crate::release::desk::image_of(svc, r.image.as_deref(), &r.release_tag)
            );
            assert!(
                r.image
                    .as_deref()
                    .unwrap()
                    .starts_with("registry.example.com/shop/")
            );
        }
        let files = std::fs::read_dir(demo.export_dir()).unwrap().count();
        assert_eq!(files, 60, "30 days of API and UI");
        assert!(ledger.verify().is_ok());
    }
}
