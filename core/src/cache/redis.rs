//! Invalidation across processes through Redis pub/sub: a publisher that sends what a commit
//! evicted (and, in sync mode, waits until every subscriber applied it), and a subscriber
//! thread per [`Db`](crate::Db) that evicts the same here and acknowledges.
//!
//! The protocol, on the configured channel `C`:
//! - An invalidation is one message on `C`: a line `from <origin>` (async) or
//!   `from <origin> <id>` (sync), then one line per eviction, `<table>\t<key image>` (`*` for
//!   the whole table). A process does not evict its own messages (it evicted before sending).
//! - A subscriber that evicted a sync message publishes `<id> <its origin>` on
//!   `C.ack.<sender's origin>`, to which the sender's subscriber is subscribed. The sender
//!   waits until as many distinct processes acknowledged as `PUBLISH` said received the
//!   message (its own subscriber counts itself), or `ack_timeout` passed.
//! - Every subscriber sends `PING` every quarter of `ack_timeout`. Redis answers in order, so
//!   the answer proves that every message published before the `PING` was sent has been
//!   applied; the cache is used only while the last such proof is younger than `ack_timeout`
//!   (the *lease*, see [`Store::is_live`]). A sender that gave up waiting after `ack_timeout`
//!   therefore knows that a process that did not apply its message serves nothing from its
//!   cache until it has.

use super::resp::{command, connect, Conn, Frame, Reader, IO_TIMEOUT};
use super::store::Store;
use super::Touched;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An unanswered `PING` this old means the connection is dead: the subscriber reconnects.
const DEAD: Duration = Duration::from_secs(5);
/// Pause before connecting again after the connection failed.
const BACKOFF: Duration = Duration::from_millis(200);

/// The channel on which the process `origin` receives acknowledgements.
fn ack_channel(channel: &str, origin: &str) -> String {
    format!("{channel}.ack.{origin}")
}

/// The acknowledgements sync publishers of one process wait for, fed by its subscriber.
#[derive(Default)]
struct Acks {
    /// Message id -> the origins that applied it.
    waiting: Mutex<HashMap<u64, HashSet<String>>>,
    arrived: Condvar,
}

impl Acks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, HashSet<String>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts collecting acknowledgements of `id` (before it is published: they may arrive
    /// before `PUBLISH` answers).
    fn expect(&self, id: u64) {
        self.lock().insert(id, HashSet::new());
    }

    /// Records that the process `from` applied `id`.
    fn ack(&self, id: u64, from: &str) {
        if let Some(set) = self.lock().get_mut(&id) {
            set.insert(from.to_string());
            self.arrived.notify_all();
        }
    }

    /// Waits until `n` processes acknowledged `id` or `deadline` passed; stops collecting
    /// and returns how many did.
    fn wait(&self, id: u64, n: usize, deadline: Instant) -> usize {
        let mut waiting = self.lock();
        loop {
            let got = waiting.get(&id).map_or(0, HashSet::len);
            let now = Instant::now();
            if got >= n || now >= deadline {
                waiting.remove(&id);
                return got;
            }
            waiting = self
                .arrived
                .wait_timeout(waiting, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Stops collecting acknowledgements of `id`.
    fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// Publishes evictions; one connection, opened again after a failure.
pub(crate) struct Publisher {
    channel: String,
    origin: String,
    conn: Mutex<Conn>,
    /// Sync mode: how long to wait for acknowledgements.
    sync: Option<Duration>,
    next_id: AtomicU64,
    acks: Arc<Acks>,
}

impl Publisher {
    /// The message telling the other processes what was evicted; `id` asks for
    /// acknowledgements.
    fn message(&self, id: Option<u64>, touched: &[Touched]) -> String {
        let mut message = format!("from {}", self.origin);
        if let Some(id) = id {
            message.push_str(&format!(" {id}"));
        }
        message.push('\n');
        for t in touched {
            message.push_str(&t.table);
            message.push('\t');
            message.push_str(t.key.as_deref().unwrap_or("*"));
            message.push('\n');
        }
        message
    }

    /// `PUBLISH`es `message`; how many subscribers received it.
    fn send(&self, message: &str, retrying: bool) -> io::Result<usize> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let parts: [&[u8]; 3] = [b"PUBLISH", self.channel.as_bytes(), message.as_bytes()];
        let answer = if retrying {
            conn.request_retrying(&parts)
        } else {
            conn.request(&parts)
        };
        match answer? {
            Frame::Integer(n) => Ok(usize::try_from(n).unwrap_or(0)),
            other => Err(io::Error::other(format!("PUBLISH answered {other:?}"))),
        }
    }

    /// Tells the other processes what was evicted. In sync mode, returns once every process
    /// that received the message applied it, or after the acknowledgement timeout (when the
    /// lease of a process that did not apply it has run out). A failure is counted and
    /// logged, not returned: the transaction has committed.
    pub(crate) fn publish(&self, touched: &[Touched]) {
        let Some(timeout) = self.sync else {
            if let Err(e) = self.send(&self.message(None, touched), true) {
                crate::observe::cache_invalidation_incomplete("publish");
                warn_unpublished(&e);
            }
            return;
        };
        // Retried on fresh connections until the timeout; each attempt has its own id, so
        // acknowledgements of an attempt whose answer was lost are not counted for another.
        let give_up = Instant::now() + timeout;
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            self.acks.expect(id);
            match self.send(&self.message(Some(id), touched), false) {
                Ok(receivers) => {
                    // From the answer on: a process whose lease began before it has the
                    // message, or its lease runs out by the deadline.
                    let got = self.acks.wait(id, receivers, Instant::now() + timeout);
                    if got < receivers {
                        crate::observe::cache_invalidation_incomplete("ack");
                        tracing::warn!(
                            target: "custodian::cache",
                            receivers,
                            acknowledged = got,
                            "cache invalidation not acknowledged by every process in time; \
                             those that did not acknowledge bypass their cache until they \
                             catch up"
                        );
                    }
                    return;
                }
                Err(e) => {
                    self.acks.forget(id);
                    let now = Instant::now();
                    if now >= give_up {
                        crate::observe::cache_invalidation_incomplete("publish");
                        warn_unpublished(&e);
                        return;
                    }
                    std::thread::sleep((give_up - now).min(Duration::from_millis(20)));
                }
            }
        }
    }
}

fn warn_unpublished(e: &io::Error) {
    tracing::warn!(
        target: "custodian::cache",
        error = %e,
        "cache invalidation could not be published; processes still connected to Redis see \
         the write when their entries expire"
    );
}

/// A message on the invalidation channel.
#[derive(Debug, PartialEq, Eq)]
struct Message {
    origin: String,
    id: Option<u64>,
    evictions: Vec<Touched>,
}

impl Message {
    fn parse(payload: &str) -> Option<Message> {
        let mut lines = payload.lines();
        let mut head = lines.next()?.strip_prefix("from ")?.split(' ');
        let origin = head.next()?.to_string();
        let id = match head.next() {
            Some(id) => Some(id.parse().ok()?),
            None => None,
        };
        let evictions = lines
            .filter_map(|l| l.split_once('\t'))
            .map(|(table, key)| Touched {
                table: table.to_string(),
                key: (key != "*").then(|| key.to_string()),
            })
            .collect();
        Some(Message {
            origin,
            id,
            evictions,
        })
    }
}

/// The subscriber thread of one `Db`: stopped and joined when dropped.
pub(crate) struct Subscriber {
    stop: Arc<AtomicBool>,
    current: Arc<Mutex<Option<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(s) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the subscriber thread works with.
struct Context {
    address: String,
    channel: String,
    acks_on: String,
    origin: String,
    store: Arc<Store>,
    acks: Arc<Acks>,
    /// Publishes this process's acknowledgements.
    acker: Conn,
    /// Time between `PING`s.
    beat: Duration,
    stop: Arc<AtomicBool>,
    current: Arc<Mutex<Option<TcpStream>>>,
}

/// How invalidation across processes runs.
pub(crate) struct Settings {
    /// `host:port` of the Redis server.
    pub address: String,
    /// The invalidation channel.
    pub channel: String,
    /// Whether commits wait for acknowledgements.
    pub sync: bool,
    /// The acknowledgement timeout, which is also the lease (see the module doc).
    pub ack_timeout: Duration,
}

/// Starts invalidation across processes: the publisher, and the subscriber thread, once it
/// is subscribed (or after `wait` if it cannot connect; the cache stays bypassed until it
/// does).
pub(crate) fn start(
    settings: Settings,
    store: Arc<Store>,
    wait: Duration,
) -> (Publisher, Subscriber) {
    let origin = uuid::Uuid::new_v4().simple().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let current = Arc::new(Mutex::new(None));
    let acks = Arc::new(Acks::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut context = Context {
        address: settings.address.clone(),
        channel: settings.channel.clone(),
        acks_on: ack_channel(&settings.channel, &origin),
        origin: origin.clone(),
        store,
        acks: acks.clone(),
        acker: Conn::new(settings.address.clone(), IO_TIMEOUT),
        beat: (settings.ack_timeout / 4).max(Duration::from_millis(1)),
        stop: stop.clone(),
        current: current.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("custodian-cache-subscriber".into())
        .spawn(move || {
            let mut ready = Some(ready_tx);
            while !context.stop.load(Ordering::Acquire) {
                let outcome = subscribe(&mut context, &mut ready);
                context.store.set_live(false);
                *context.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
                if let Err(e) = outcome {
                    if !context.stop.load(Ordering::Acquire) {
                        tracing::warn!(
                            target: "custodian::cache",
                            error = %e,
                            "cache invalidation subscriber lost Redis; the cache is bypassed \
                             until it reconnects"
                        );
                    }
                }
                std::thread::sleep(BACKOFF);
            }
        })
        .ok();
    if thread.is_some() {
        let _ = ready_rx.recv_timeout(wait);
    }
    // A sync commit's attempts to publish must fit its timeout, but an answer that takes a
    // few milliseconds on a loaded machine must not count as a failure.
    let step = if settings.sync {
        settings
            .ack_timeout
            .clamp(Duration::from_millis(50), IO_TIMEOUT)
    } else {
        IO_TIMEOUT
    };
    let publisher = Publisher {
        channel: settings.channel,
        origin,
        conn: Mutex::new(Conn::new(settings.address, step)),
        sync: settings.sync.then_some(settings.ack_timeout),
        next_id: AtomicU64::new(0),
        acks,
    };
    (
        publisher,
        Subscriber {
            stop,
            current,
            thread,
        },
    )
}

/// One connection's life: subscribe to the invalidation channel and this process's
/// acknowledgement channel, go live, apply and acknowledge what other processes publish,
/// ping every beat. Returns when the connection fails or the subscriber stops.
fn subscribe(cx: &mut Context, ready: &mut Option<std::sync::mpsc::Sender<()>>) -> io::Result<()> {
    let stream = connect(&cx.address, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(cx.beat))?;
    {
        let mut slot = cx.current.lock().unwrap_or_else(|e| e.into_inner());
        if cx.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        *slot = Some(stream.try_clone()?);
    }
    let mut reader = Reader::new(stream);
    let asked = Instant::now();
    reader.stream.write_all(&command(&[
        b"SUBSCRIBE",
        cx.channel.as_bytes(),
        cx.acks_on.as_bytes(),
    ]))?;
    let mut live = false;
    // When each unanswered PING was sent, oldest first.
    let mut pings: VecDeque<Instant> = VecDeque::new();
    let mut last_ping = asked;
    loop {
        let now = Instant::now();
        if live && pings.is_empty() && now.duration_since(last_ping) >= cx.beat {
            reader.stream.write_all(&command(&[b"PING"]))?;
            pings.push_back(now);
            last_ping = now;
        }
        let waiting_since = if live { pings.front() } else { Some(&asked) };
        if waiting_since.is_some_and(|t| now.duration_since(*t) > DEAD) {
            return Err(io::Error::other("Redis did not answer in time"));
        }
        let Some(frame) = reader.next()? else {
            continue;
        };
        let items = match frame {
            Frame::Array(items) => items,
            Frame::Error(e) => return Err(io::Error::other(format!("Redis: {e}"))),
            _ => continue,
        };
        let text = |i: usize| match items.get(i) {
            Some(Frame::Bulk(Some(b))) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        match text(0).as_deref() {
            // Subscribed to both channels: nothing published from now on is missed, and
            // what was missed before is cleared.
            Some("subscribe") if items.get(2) == Some(&Frame::Integer(2)) => {
                live = true;
                cx.store.synced(asked);
                cx.store.set_live(true);
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
            Some("pong") => {
                if let Some(sent) = pings.pop_front() {
                    cx.store.synced(sent);
                }
            }
            Some("message") => {
                let (Some(channel), Some(payload)) = (text(1), text(2)) else {
                    continue;
                };
                if channel == cx.acks_on {
                    let mut parts = payload.split(' ');
                    if let (Some(Ok(id)), Some(from)) =
                        (parts.next().map(str::parse::<u64>), parts.next())
                    {
                        cx.acks.ack(id, from);
                    }
                } else if let Some(message) = Message::parse(&payload) {
                    apply(cx, message);
                }
            }
            _ => {}
        }
    }
}

/// Applies an invalidation: evicts (unless it is this process's own), then acknowledges.
fn apply(cx: &mut Context, message: Message) {
    if message.origin == cx.origin {
        if let Some(id) = message.id {
            cx.acks.ack(id, &cx.origin);
        }
        return;
    }
    cx.store.evict(&message.evictions);
    let Some(id) = message.id else {
        return;
    };
    let to = ack_channel(&cx.channel, &message.origin);
    let ack = format!("{id} {}", cx.origin);
    if let Err(e) = cx
        .acker
        .request_retrying(&[b"PUBLISH", to.as_bytes(), ack.as_bytes()])
    {
        // The sender waits out its timeout; this process has evicted.
        tracing::debug!(target: "custodian::cache", error = %e, "cache invalidation not acknowledged");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_tables_keys_and_an_id() {
        let got = Message::parse("from other 7\nt1\t[1]\ns.t2\t*\n").unwrap();
        assert_eq!(
            got,
            Message {
                origin: "other".into(),
                id: Some(7),
                evictions: vec![
                    Touched {
                        table: "t1".into(),
                        key: Some("[1]".into())
                    },
                    Touched {
                        table: "s.t2".into(),
                        key: None
                    },
                ]
            }
        );
        let unacked = Message::parse("from me\nt1\t[1]\n").unwrap();
        assert_eq!((unacked.origin.as_str(), unacked.id), ("me", None));
        assert_eq!(Message::parse("nonsense\nt1\t[1]\n"), None);
        assert_eq!(Message::parse("from me x\n"), None);
    }

    #[test]
    fn acks_count_distinct_processes_and_time_out() {
        let acks = Acks::default();
        acks.expect(1);
        acks.ack(1, "a");
        acks.ack(1, "a");
        acks.ack(2, "b");
        let soon = Instant::now() + Duration::from_millis(30);
        assert_eq!(acks.wait(1, 2, soon), 1, "a repeated ack counts once");
        assert!(Instant::now() >= soon);
        acks.expect(3);
        acks.ack(3, "a");
        acks.ack(3, "b");
        assert_eq!(acks.wait(3, 2, Instant::now() + Duration::from_secs(60)), 2);
        assert!(acks.lock().is_empty(), "nothing left waiting");
    }
}
