//! A throwaway PostgreSQL cluster for the tests: `initdb` and `pg_ctl` in a temporary
//! directory, listening on a Unix socket in that directory and on a free port of 127.0.0.1.
//!
//! One cluster per test binary, started on first use; every test gets a database of its own
//! (`Cluster::database`). The server runs as the `postgres` user when the tests run as root
//! (PostgreSQL refuses to run as root; CI runs as root), else as the current user. A small
//! watchdog process stops the cluster and deletes its directory once the test binary has
//! exited, however it ended.
//!
//! Roles: `opsdeck_test` (the superuser, trust over the socket and loopback) and `opsdeck_pw`,
//! which must give its password (`PASSWORD`) over TCP (scram-sha-256).
//!
//! When no cluster can start, `cluster()` prints why and returns `None` (the test skips),
//! unless `OPSDECK_REQUIRE_POSTGRES=1`, when it panics with the reason (CI sets it).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The password of the `opsdeck_pw` role.
pub const PASSWORD: &str = "pw-Zq8-never-logged";

/// A running cluster.
pub struct Cluster {
    pub dir: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// Run the server tools as this user (`Some("postgres")` when we are root).
    as_user: Option<String>,
}

/// A database of one test, owned by the superuser role `opsdeck_test`.
pub struct Database {
    pub name: String,
    /// A `postgres://` URL over the Unix socket (trust).
    pub url: String,
    pub cluster: &'static Cluster,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The cluster of this test binary, or `None` (with the reason printed) when it cannot start.
pub fn cluster() -> Option<&'static Cluster> {
    match CLUSTER.get_or_init(Cluster::start) {
        Ok(c) => Some(c),
        Err(why) => {
            if std::env::var("OPSDECK_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("PostgreSQL is required (OPSDECK_REQUIRE_POSTGRES=1) but: {why}");
            }
            eprintln!("skipping: no PostgreSQL for this test: {why}");
            None
        }
    }
}

/// A fresh database, or `None` (the reason printed) when no cluster can start.
pub fn database() -> Option<Database> {
    cluster().map(Cluster::database)
}

/// The directory of `initdb` and `pg_ctl`: `OPSDECK_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(d) = std::env::var("OPSDECK_PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    match Command::new("pg_config").arg("--bindir").output() {
        Ok(o) if o.status.success() => Ok(PathBuf::from(
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )),
        _ => Err(
            "no initdb under /usr/lib/postgresql/*/bin and no pg_config on PATH \
                  (apt-get install postgresql, or set OPSDECK_PG_BIN)"
                .into(),
        ),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(54329)
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let bin = bin_dir()?;
        let as_user = nix::unistd::geteuid()
            .is_root()
            .then(|| "postgres".to_string());
        let dir = tempfile::Builder::new()
            .prefix("opsdeck-pg-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?
            .keep();
        if let Some(user) = &as_user {
            let u = nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    format!("running as root and there is no `{user}` user to run PostgreSQL as")
                })?;
            nix::unistd::chown(&dir, Some(u.uid), Some(u.gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let mut c = Cluster {
            socket_dir: dir.clone(),
            dir,
            port: 0,
            bin,
            as_user,
        };
        c.watchdog();
        let data = c.dir.join("data");
        c.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "opsdeck_test",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             host all opsdeck_pw 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n",
        )
        .map_err(|e| format!("pg_hba.conf: {e}"))?;
        // A port taken between free_port and the start: try another.
        let mut last = String::new();
        for _ in 0..3 {
            c.port = free_port();
            let opts = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=200",
                c.port,
                c.socket_dir.display()
            );
            let log = c.dir.join("server.log");
            match c.run(
                "pg_ctl",
                &[
                    "-D",
                    path(&data),
                    "-l",
                    path(&log),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    &opts,
                    "start",
                ],
            ) {
                Ok(()) => {
                    let admin = c.connect("postgres")?;
                    c.setup(admin)?;
                    return Ok(c);
                }
                Err(e) => {
                    last = format!(
                        "{e}; server log: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )
                }
            }
        }
        Err(last)
    }

    fn setup(&self, mut admin: postgres::Client) -> Result<(), String> {
        admin
            .batch_execute(&format!(
                "CREATE ROLE opsdeck_pw LOGIN PASSWORD '{PASSWORD}'"
            ))
            .map_err(|e| format!("create role: {e}"))
    }

    /// Runs one of the cluster's tools (as the `postgres` user when we are root).
    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        // The tools look for their config relative to the working dir's permissions.
        cmd.args(args).current_dir(&self.dir).stdin(Stdio::null());
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Stops the cluster and deletes its directory once this process has exited.
    fn watchdog(&self) {
        let stop = format!(
            "{}{} -D {} stop -m immediate",
            match &self.as_user {
                Some(u) => format!("runuser -u {u} -- "),
                None => String::new(),
            },
            self.bin.join("pg_ctl").display(),
            self.dir.join("data").display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        use std::os::unix::process::CommandExt;
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
    }

    /// A `postgres://` URL for `db` as `opsdeck_test` over the Unix socket.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres:///{db}?host={}&port={}&user=opsdeck_test",
            self.socket_dir.display(),
            self.port
        )
    }

    /// A connection to `db` as the superuser.
    pub fn connect(&self, db: &str) -> Result<postgres::Client, String> {
        postgres::Client::connect(&self.url(db), postgres::NoTls)
            .map_err(|e| format!("connect to {db}: {e}"))
    }

    /// A new empty database.
    pub fn database(&'static self) -> Database {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = self.connect("postgres").expect("the test cluster answers");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        Database {
            url: self.url(&name),
            name,
            cluster: self,
        }
    }

    /// A new database owned by `opsdeck_pw`, and its URL over TCP without the password.
    pub fn password_database(&'static self) -> (Database, String) {
        let db = self.database();
        let mut admin = self.connect("postgres").expect("the test cluster answers");
        admin
            .batch_execute(&format!("ALTER DATABASE {} OWNER TO opsdeck_pw", db.name))
            .expect("alter database");
        let mut c = db.connect();
        c.batch_execute("ALTER SCHEMA public OWNER TO opsdeck_pw")
            .expect("alter schema");
        let url = format!("postgres://opsdeck_pw@127.0.0.1:{}/{}", self.port, db.name);
        (db, url)
    }
}

impl Database {
    /// A superuser connection to this database: a foreign writer, as `psql` would be.
    pub fn connect(&self) -> postgres::Client {
        self.cluster
            .connect(&self.name)
            .expect("the test database answers")
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}
