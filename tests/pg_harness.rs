//! The throwaway PostgreSQL of `tests/support/postgres.rs` itself: it starts, each test's
//! database is its own, and the password role is refused without its password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/postgres.rs"]
mod pg;

#[test]
fn each_database_is_separate_and_the_server_is_recent_enough() {
    let Some(a) = pg::database() else { return };
    let b = pg::database().unwrap();
    assert_ne!(a.name, b.name);
    let mut ca = a.connect();
    ca.batch_execute("CREATE TABLE only_in_a (x int)").unwrap();
    let mut cb = b.connect();
    let n: i64 = cb
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let version: i32 = ca
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    assert!(version >= 130000, "{version}");
    let db: String = ca
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    assert_eq!(db, a.name);
}

#[test]
fn the_password_role_needs_its_password_over_tcp() {
    let Some(c) = pg::cluster() else { return };
    let (_db, url) = c.password_database();
    let e = postgres::Client::connect(&url, postgres::NoTls)
        .err()
        .expect("no password: refused");
    let e = opsdeck::storage::pg::describe(&e);
    assert!(e.contains("password missing"), "{e}");
    let mut wrong: postgres::Config = url.parse().unwrap();
    wrong.password("not-it");
    assert!(wrong.connect(postgres::NoTls).is_err());
    let mut right: postgres::Config = url.parse().unwrap();
    right.password(pg::PASSWORD);
    let mut conn = right.connect(postgres::NoTls).unwrap();
    let who: String = conn.query_one("SELECT current_user", &[]).unwrap().get(0);
    assert_eq!(who, "opsdeck_pw");
}
