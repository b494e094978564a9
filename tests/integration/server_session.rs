//! Server sessions on MariaDB, as commit-outcome settlement uses them: a session is ended
//! only on the server that holds it. Attacked with forged names: the same connection id on
//! another server, and on the same server restarted since.

use crate::common::TestDb;
use custodian::diesel::RunQueryDsl;
use custodian::{BackendKind, Session};
use std::time::{Duration, Instant};

/// The session name of `s`'s connection.
fn name_of(s: &mut Session) -> String {
    let backend = s.backend();
    backend
        .server_session(s.connection())
        .expect("ask the session")
        .expect("MariaDB names its sessions")
}

/// Whether `s`'s connection still answers.
fn alive(s: &mut Session) -> bool {
    custodian::diesel::sql_query("SELECT 1")
        .execute(s.connection())
        .is_ok()
}

/// `name` with its server part (`host:port`) or start time replaced.
fn forged(name: &str, server: Option<&str>, started_by: i64) -> String {
    let parts: Vec<&str> = name.split(' ').collect();
    assert_eq!(parts.len(), 3, "id server started: {name}");
    let started: i64 = parts[2].parse().expect("a start time");
    format!(
        "{} {} {}",
        parts[0],
        server.unwrap_or(parts[1]),
        started + started_by
    )
}

/// The victim's connection id named on another server: ending it from here is refused (a
/// typed error, for settlement an unknown outcome), and the victim, which holds that id
/// here, keeps running. A name from before a restart of this server is a session gone with
/// the restart: ended without a `KILL`, and reported gone.
#[test]
fn a_session_is_ended_only_on_its_own_server() {
    let db = TestDb::new(BackendKind::Mysql);
    let mut victim = db.session().unwrap();
    let mut other = db.session().unwrap();
    let backend = other.backend();
    let name = name_of(&mut victim);

    let elsewhere = forged(&name, Some("elsewhere:3306"), 0);
    let ended = backend.end_server_session(other.connection(), &elsewhere);
    assert!(ended.is_err(), "ended {elsewhere} from another server");
    let exists = backend.server_session_exists(other.connection(), &elsewhere);
    assert!(exists.is_err(), "looked {elsewhere} up on another server");
    assert!(alive(&mut victim), "a session of this server was killed");

    let before_restart = forged(&name, None, -3_600);
    backend
        .end_server_session(other.connection(), &before_restart)
        .expect("a session of a restarted server");
    assert!(!backend
        .server_session_exists(other.connection(), &before_restart)
        .unwrap());
    assert!(alive(&mut victim), "killed by a name from before a restart");

    backend
        .end_server_session(other.connection(), &name)
        .expect("end the session on its own server");
    let started = Instant::now();
    while backend
        .server_session_exists(other.connection(), &name)
        .unwrap()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} not gone"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(&mut victim), "the named session still answers");
}
