//! The entity cache across processes, attacked on every backend: a writer here, readers in
//! child processes, invalidation through Redis. In sync mode (the default) not one read that
//! starts after the writer's commit returned may see the old row: 10 000 write-then-read
//! rounds, a second reader joining mid-run, a reader whose Redis connection stalls, a reader
//! process stopped with SIGSTOP (the writer gives up after the timeout, and the reader must not
//! serve its stale cache when it resumes), and Redis going away and coming back. In async mode
//! the measured staleness is printed.

use crate::cache::Item;
use crate::common::{count_statements, TestDb};
use crate::observe_capture::Counts;
use crate::proxy::Proxy;
use custodian::cache::Invalidation;
use custodian::BackendKind;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable telling a child process to serve reads: see [`Spec`].
const CHILD: &str = "CUSTODIAN_CACHE_CHILD";
/// The Redis server the suite uses (shared: every test uses channels of its own).
const REDIS: &str = "127.0.0.1:6379";
/// Write-then-read rounds in sync mode, per backend (the acceptance).
const SYNC_ROUNDS: i64 = 10_000;
/// Rounds in async mode, whose staleness is measured and printed.
const ASYNC_ROUNDS: i64 = 1_000;
/// The acknowledgement timeout of the attacks, each of which waits it out.
const SHORT_ACK_MS: u64 = 300;
/// The metric counting invalidations that did not reach every process in time.
const INCOMPLETE: &str = "custodian_cache_invalidation_incomplete_total";

/// Fails with the command to start Redis when it is not reachable.
fn redis_up() {
    if std::net::TcpStream::connect(REDIS).is_err() {
        panic!(
            "Redis is required for the cross-process cache tests at {REDIS}. Start it with: \
             redis-server --daemonize yes"
        );
    }
}

/// How a process opens its cache: `url|channel|redis host:port|sync or async|ack ms`.
struct Spec {
    url: String,
    channel: String,
    redis: String,
    invalidation: Invalidation,
    ack_ms: u64,
}

impl Spec {
    /// A spec with a channel of its own (the database URL is set once it exists).
    fn new(kind: BackendKind, what: &str, invalidation: Invalidation, ack_ms: u64) -> Spec {
        Spec {
            url: String::new(),
            channel: format!("custodian-test-{}-{kind}-{what}", std::process::id()),
            redis: REDIS.into(),
            invalidation,
            ack_ms,
        }
    }

    fn via(&self, redis: &str) -> Spec {
        Spec {
            redis: redis.into(),
            channel: self.channel.clone(),
            url: self.url.clone(),
            ..*self
        }
    }

    fn encode(&self) -> String {
        let mode = match self.invalidation {
            Invalidation::Sync => "sync",
            Invalidation::Async => "async",
        };
        format!(
            "{}|{}|{}|{mode}|{}",
            self.url, self.channel, self.redis, self.ack_ms
        )
    }

    fn decode(text: &str) -> Spec {
        let parts: Vec<&str> = text.split('|').collect();
        Spec {
            url: parts[0].into(),
            channel: parts[1].into(),
            redis: parts[2].into(),
            invalidation: if parts[3] == "sync" {
                Invalidation::Sync
            } else {
                Invalidation::Async
            },
            ack_ms: parts[4].parse().unwrap(),
        }
    }

    fn apply(&self, cfg: &mut custodian::DatabaseConfig) {
        cfg.cache.redis = Some(format!("redis://{}", self.redis));
        cfg.cache.channel = self.channel.clone();
        cfg.cache.invalidation = self.invalidation;
        cfg.cache.ack_timeout_ms = self.ack_ms;
    }
}

/// The writer's database (this process) with row 1 of `Item` at value 0; `spec` gets its URL.
fn writer(kind: BackendKind, spec: &mut Spec) -> TestDb {
    let db = TestDb::with(kind, |c| spec.apply(c));
    spec.url = db.url.clone();
    db.create_table::<Item>().unwrap();
    db.session()
        .unwrap()
        .insert(Item { id: 1, value: 0 })
        .unwrap();
    db
}

/// Runs the reader child when this process is one; `true` then (the test body is skipped).
fn in_child() -> bool {
    match std::env::var(CHILD) {
        Ok(spec) => {
            child_main(&Spec::decode(&spec));
            true
        }
        Err(_) => false,
    }
}

/// The child: its own `Db` (and cache) on the writer's database, reading row 1 of `Item` on
/// command. `get N`: reads until it sees `N` (at most 5 s) and answers `fresh` (the first
/// read saw it), `stale <µs since epoch when it saw it>` or `never`. `probe`: the fewest
/// statements one of three `get`s sent (0: served from the cache).
fn child_main(spec: &Spec) {
    let mut cfg = custodian::DatabaseConfig::from_url(&spec.url).unwrap();
    cfg.audit.key = Some(crate::common::AUDIT_KEY.into());
    spec.apply(&mut cfg);
    let db = custodian::open(cfg).unwrap();
    let mut s = db.session().unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "CACHE-CHILD ready").unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let answer = if let Some(n) = line.strip_prefix("get ") {
            let want: i64 = n.parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut first = true;
            loop {
                let seen = s.get::<Item>(&1).unwrap().value;
                if seen == want {
                    break if first {
                        "fresh".to_string()
                    } else {
                        format!("stale {}", micros_now())
                    };
                }
                if Instant::now() > deadline {
                    break "never".to_string();
                }
                first = false;
                std::thread::sleep(Duration::from_micros(50));
            }
        } else if line == "probe" {
            // A late invalidation may evict the row just cached (evicting too much is
            // allowed): the next read caches it again.
            let mut n = usize::MAX;
            for _ in 0..3 {
                n = n.min(count_statements(&mut s, |s| s.get::<Item>(&1).map(|_| ())).1);
                std::thread::sleep(Duration::from_millis(20));
            }
            format!("probe {n}")
        } else {
            break;
        };
        writeln!(out, "CACHE-CHILD {answer}").unwrap();
        out.flush().unwrap();
    }
}

fn micros_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// A reader child process; killed when dropped.
struct Reader {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
}

impl Reader {
    /// Starts a reader running `test` (this test's own path) as `spec` says; its `ready` is
    /// read by the first [`Reader::ask`].
    fn start(test: &str, spec: &Spec) -> Reader {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--test-threads=1", "--nocapture", "-q"])
            .env(CHILD, spec.encode())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the reader process");
        let to = child.stdin.take().unwrap();
        let from = BufReader::new(child.stdout.take().unwrap());
        Reader { child, to, from }
    }

    /// A reader that is ready and has row 1 at `value` cached.
    fn ready(test: &str, spec: &Spec, value: i64) -> Reader {
        let mut r = Reader::start(test, spec);
        assert_eq!(r.ask(""), "ready");
        assert_eq!(r.ask(&format!("get {value}")), "fresh");
        r.wait_cached();
        r
    }

    /// Sends `cmd` (none when empty) and returns the child's next answer.
    fn ask(&mut self, cmd: &str) -> String {
        if !cmd.is_empty() {
            self.send(cmd);
        }
        self.answer()
    }

    /// Sends `cmd` without waiting for the answer.
    fn send(&mut self, cmd: &str) {
        writeln!(self.to, "{cmd}").unwrap();
        self.to.flush().unwrap();
    }

    /// The child's next answer.
    fn answer(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = self.from.read_line(&mut line).unwrap();
            assert!(n > 0, "the reader process ended");
            if let Some(answer) = line.trim_end().strip_prefix("CACHE-CHILD ") {
                return answer.to_string();
            }
        }
    }

    /// Waits (at most 10 s) until the reader serves row 1 from its cache.
    fn wait_cached(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ask("probe") != "probe 0" {
            assert!(
                Instant::now() < deadline,
                "the reader does not use its cache"
            );
        }
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal}");
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of this file's test `group` on `kind`, which a child runs.
fn test_path(group: &str, kind: BackendKind) -> String {
    let backend = match kind {
        BackendKind::Postgres => "postgres",
        BackendKind::Mysql => "mariadb",
        _ => "sqlite",
    };
    format!("cache_processes::{group}::{backend}")
}

/// The acceptance test: writes here, reads in a child, sync invalidation through Redis; a
/// second reader starts while the writer keeps writing and joins. Every read made after the
/// writer's commit returned must see it: not one stale read.
fn sync_rounds(kind: BackendKind) {
    if in_child() {
        return;
    }
    redis_up();
    let mut spec = Spec::new(kind, "sync", Invalidation::Sync, 1000);
    let db = writer(kind, &mut spec);
    let test = test_path("sync_rounds", kind);
    let mut w = db.session().unwrap();
    let mut a = Reader::ready(&test, &spec, 0);
    let (join_at, joined_at) = (SYNC_ROUNDS / 2, SYNC_ROUNDS / 2 + 20);
    let (mut late, mut b) = (None, None);
    let (mut stale, mut reads) = (Vec::new(), 0u64);
    let started = Instant::now();
    for i in 1..=SYNC_ROUNDS {
        if i == join_at {
            // Starts (opens its Db, subscribes) while the next rounds are written.
            late = Some(Reader::start(&test, &spec));
        }
        if i == joined_at {
            let mut r = late.take().unwrap();
            assert_eq!(r.ask(""), "ready");
            b = Some(r);
        }
        w.update(&mut Item { id: 1, value: i }).unwrap();
        for r in std::iter::once(&mut a).chain(b.as_mut()) {
            let answer = r.ask(&format!("get {i}"));
            reads += 1;
            if answer.starts_with("stale") {
                stale.push(i);
            } else {
                assert_eq!(answer, "fresh", "round {i}: the reader never saw the write");
            }
        }
        if i % 1000 == 0 {
            for r in std::iter::once(&mut a).chain(b.as_mut()) {
                assert_eq!(
                    r.ask("probe"),
                    "probe 0",
                    "round {i}: a reader stopped caching"
                );
            }
        }
    }
    println!(
        "cache across processes, sync ({kind}): {SYNC_ROUNDS} rounds, {reads} reads in two \
         readers (the second from round {joined_at}), {} stale, {:.1} s",
        stale.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        stale.is_empty(),
        "{kind}: {} stale reads, in rounds {:?}..",
        stale.len(),
        &stale[..stale.len().min(20)]
    );
}

/// Async mode: the reader's first read may come before the invalidation; how often and how
/// long after the commit it saw the write is printed (the measured staleness bound). A write
/// never seen fails.
fn async_rounds(kind: BackendKind) {
    if in_child() {
        return;
    }
    redis_up();
    let mut spec = Spec::new(kind, "async", Invalidation::Async, 1000);
    let db = writer(kind, &mut spec);
    let mut w = db.session().unwrap();
    let mut r = Reader::ready(&test_path("async_rounds", kind), &spec, 0);
    let (mut stale, mut bound) = (0, Vec::new());
    for i in 1..=ASYNC_ROUNDS {
        w.update(&mut Item { id: 1, value: i }).unwrap();
        let committed = micros_now();
        let answer = r.ask(&format!("get {i}"));
        if let Some(at) = answer.strip_prefix("stale ") {
            stale += 1;
            bound.push(at.parse::<u128>().unwrap().saturating_sub(committed));
        } else {
            assert_eq!(answer, "fresh", "round {i}: the reader never saw the write");
        }
    }
    bound.sort_unstable();
    println!(
        "cache across processes, async ({kind}): {ASYNC_ROUNDS} rounds, {stale} where the \
         reader's first read came before the invalidation; staleness after commit: max {} µs, \
         median {} µs",
        bound.last().copied().unwrap_or(0),
        bound.get(bound.len() / 2).copied().unwrap_or(0),
    );
}

/// A reader that cannot apply an invalidation: first its Redis connection stalls (a proxy
/// holds back everything Redis sends it), then its process is stopped (SIGSTOP). Each time the
/// writer's commit gives up after the timeout (counted), and the reader's first read after the
/// commit returned sees the write: the documented guarantee after a timeout.
fn stuck_reader(kind: BackendKind) {
    if in_child() {
        return;
    }
    redis_up();
    let proxy = Proxy::start(REDIS);
    let mut spec = Spec::new(kind, "stuck", Invalidation::Sync, SHORT_ACK_MS);
    let db = writer(kind, &mut spec);
    let mut w = db.session().unwrap();
    let mut r = Reader::ready(
        &test_path("stuck_reader", kind),
        &spec.via(&proxy.addr()),
        0,
    );
    let counts = Counts::default();
    let mut write = |value: i64| {
        let started = Instant::now();
        metrics::with_local_recorder(&counts, || w.update(&mut Item { id: 1, value })).unwrap();
        // A bounded wait, not a timing target: the writer must not hang on the reader.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the writer hung on a stuck reader"
        );
    };

    proxy.hold(true);
    write(1);
    assert_eq!(
        counts.total(INCOMPLETE),
        1,
        "the missing acknowledgement is counted"
    );
    assert_eq!(
        r.ask("get 1"),
        "fresh",
        "{kind}: a reader that had not applied the invalidation served its cache after the \
         writer's commit returned"
    );
    proxy.hold(false);
    r.wait_cached();

    r.signal("-STOP");
    write(2);
    assert_eq!(
        counts.total(INCOMPLETE),
        2,
        "the missing acknowledgement is counted"
    );
    // The read waits in the pipe, so that on resuming the reader races its own subscriber.
    r.send("get 2");
    r.signal("-CONT");
    assert_eq!(
        r.answer(),
        "fresh",
        "{kind}: a stopped reader served its cache"
    );
    r.wait_cached();
    write(3);
    assert_eq!(counts.total(INCOMPLETE), 2, "a live reader acknowledges");
    assert_eq!(r.ask("get 3"), "fresh");
}

/// Redis goes away (every connection cut, new ones refused) for 20 rounds and comes back: no
/// round reads the old row (the reader bypasses its cache while it cannot hear from Redis),
/// the lost publications are counted, and afterwards the reader caches again.
fn redis_lost(kind: BackendKind) {
    if in_child() {
        return;
    }
    redis_up();
    let proxy = Proxy::start(REDIS);
    let mut spec = Spec::new(kind, "lost", Invalidation::Sync, SHORT_ACK_MS);
    spec = spec.via(&proxy.addr());
    let db = writer(kind, &mut spec);
    let mut w = db.session().unwrap();
    let mut r = Reader::ready(&test_path("redis_lost", kind), &spec, 0);
    let counts = Counts::default();
    let mut stale = Vec::new();
    for i in 1..=80 {
        if i == 30 {
            proxy.refuse(true);
            proxy.cut_all();
        }
        if i == 50 {
            proxy.refuse(false);
        }
        metrics::with_local_recorder(&counts, || w.update(&mut Item { id: 1, value: i })).unwrap();
        let answer = r.ask(&format!("get {i}"));
        if answer.starts_with("stale") {
            stale.push(i);
        } else {
            assert_eq!(answer, "fresh", "round {i}: the reader never saw the write");
        }
    }
    assert!(stale.is_empty(), "{kind}: stale reads in rounds {stale:?}");
    assert!(
        counts.total(INCOMPLETE) >= 1,
        "invalidations lost while Redis was away are counted"
    );
    r.wait_cached();
    w.update(&mut Item { id: 1, value: 81 }).unwrap();
    assert_eq!(r.ask("get 81"), "fresh");
}

macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn postgres() {
                super::$name(custodian::BackendKind::Postgres);
            }
            #[test]
            fn mariadb() {
                super::$name(custodian::BackendKind::Mysql);
            }
            #[test]
            fn sqlite() {
                super::$name(custodian::BackendKind::Sqlite);
            }
        }
    )*};
}

per_backend!(sync_rounds, async_rounds, stuck_reader, redis_lost);
