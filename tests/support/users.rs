//! Real Unix users and groups for tests that need them (`odk_` names, test-only, created once
//! and kept). Creating them needs root: CI runs as root; elsewhere such tests say why they
//! skip.
#![allow(dead_code)]

use std::process::Command;

/// Runs a set-up command; "already exists" counts as done (another test binary made it).
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success() || String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this process may create users; prints why a test skips when not (CI must be root).
pub fn root(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run {what} as root"
    );
    eprintln!("skipped: {what} needs root, to create Unix users");
    false
}

/// Makes the groups, then each user (no home, `/bin/sh`) with its supplementary groups.
pub fn ensure(groups: &[&str], users: &[(&str, &str)]) {
    for g in groups {
        sh(&["groupadd", "-f", g]);
    }
    for (u, groups) in users {
        if nix::unistd::User::from_name(u).ok().flatten().is_none() {
            let mut args = vec!["useradd", "-M", "-s", "/bin/sh"];
            if !groups.is_empty() {
                args.extend(["-G", groups]);
            }
            args.push(u);
            sh(&args);
        }
    }
}

/// A copy of the opsdeck binary at `dir/opsdeck` that every user may run (the build's own
/// path sits under a directory other users cannot enter).
///
/// Waits until the copy can be executed: a test thread that forks while the copy is open for
/// writing hands the write descriptor to its child until that child calls exec, and exec of
/// the copy fails with "Text file busy" (ETXTBSY) meanwhile.
pub fn runnable_copy_of_opsdeck(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("opsdeck");
    std::fs::copy(env!("CARGO_BIN_EXE_opsdeck"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Command::new(&bin).arg("--version").output() {
            Ok(out) => {
                assert!(out.status.success(), "the copy of opsdeck does not run");
                return bin;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{}: {e}",
                    bin.display()
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{}: {e}", bin.display()),
        }
    }
}
