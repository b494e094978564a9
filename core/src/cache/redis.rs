//! Invalidation across processes through Redis pub/sub: a publisher that sends what a commit
//! evicted, and a subscriber thread per [`Db`](crate::Db) that evicts the same here.
//!
//! Only `PUBLISH`, `SUBSCRIBE` and `PING` are needed, so this speaks RESP over a
//! `std::net::TcpStream` itself instead of pulling in a client crate and its async runtime.
//! A message is one line `from <origin>` then one line per eviction, `<table>\t<key image>`
//! (`*` for the whole table); a process skips its own messages.

use super::store::Store;
use super::Touched;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long connecting, and each write, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// A subscriber with nothing to read for this long pings the server (a dead server is found
/// within about twice this).
const IDLE: Duration = Duration::from_secs(5);
/// Pause before connecting again after the connection failed.
const BACKOFF: Duration = Duration::from_millis(200);

/// One RESP value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Frame>),
}

/// A command as a RESP array of bulk strings.
fn command(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The first complete frame of `buf` and its length; `Ok(None)` while incomplete.
fn parse(buf: &[u8]) -> io::Result<Option<(Frame, usize)>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("RESP: {what}"));
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, rest)) = buf[..end].split_first() else {
        return Err(bad("empty line"));
    };
    let line = std::str::from_utf8(rest).map_err(|_| bad("line is not UTF-8"))?;
    let number = || line.parse::<i64>().map_err(|_| bad("bad length"));
    let after = end + 2;
    Ok(match kind {
        b'+' => Some((Frame::Simple(line.into()), after)),
        b'-' => Some((Frame::Error(line.into()), after)),
        b':' => Some((Frame::Integer(number()?), after)),
        b'$' => {
            let n = number()?;
            if n < 0 {
                return Ok(Some((Frame::Bulk(None), after)));
            }
            let n = usize::try_from(n).map_err(|_| bad("bad length"))?;
            if buf.len() < after + n + 2 {
                return Ok(None);
            }
            let data = buf[after..after + n].to_vec();
            Some((Frame::Bulk(Some(data)), after + n + 2))
        }
        b'*' => {
            let n = number()?;
            let mut at = after;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                match parse(&buf[at..])? {
                    Some((item, used)) => {
                        items.push(item);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            Some((Frame::Array(items), at))
        }
        _ => return Err(bad("unknown type")),
    })
}

fn connect(address: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads frames off a stream, keeping partial ones across timeouts.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Reader {
    /// The next frame; `Ok(None)` when nothing complete arrived within the read timeout.
    fn next(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some((frame, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(frame));
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Publishes evictions; one connection, opened again after a failure.
pub(crate) struct Publisher {
    address: String,
    channel: String,
    origin: String,
    conn: Mutex<Option<Reader>>,
}

impl Publisher {
    fn send(&self, message: &[u8]) -> io::Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // A connection that failed before is opened again; one retry on a fresh connection
        // covers a server that closed an idle one.
        for attempt in 0..2 {
            if conn.is_none() {
                let stream = connect(&self.address)?;
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                *conn = Some(Reader {
                    stream,
                    buf: Vec::new(),
                });
            }
            let Some(reader) = conn.as_mut() else {
                continue;
            };
            let sent = reader
                .stream
                .write_all(&command(&[b"PUBLISH", self.channel.as_bytes(), message]))
                .and_then(|()| reader.next());
            match sent {
                Ok(Some(Frame::Integer(_))) => return Ok(()),
                Ok(other) => {
                    *conn = None;
                    if attempt == 1 {
                        return Err(io::Error::other(format!("PUBLISH answered {other:?}")));
                    }
                }
                Err(e) => {
                    *conn = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Tells the other processes what was evicted. A failure is logged, not returned: the
    /// transaction has committed; the other processes see the write within the TTL.
    pub(crate) fn publish(&self, touched: &[Touched]) {
        let mut message = format!("from {}\n", self.origin);
        for t in touched {
            message.push_str(&t.table);
            message.push('\t');
            message.push_str(t.key.as_deref().unwrap_or("*"));
            message.push('\n');
        }
        if let Err(e) = self.send(message.as_bytes()) {
            tracing::warn!(
                target: "custodian::cache",
                error = %e,
                "cache invalidation could not be published; other processes see the write \
                 when their entries expire"
            );
        }
    }
}

/// The evictions a message carries, unless it came from `origin` (this process).
fn evictions(payload: &str, origin: &str) -> Vec<Touched> {
    let mut lines = payload.lines();
    if lines.next().and_then(|l| l.strip_prefix("from ")) == Some(origin) {
        return Vec::new();
    }
    lines
        .filter_map(|l| l.split_once('\t'))
        .map(|(table, key)| Touched {
            table: table.to_string(),
            key: (key != "*").then(|| key.to_string()),
        })
        .collect()
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

/// Starts invalidation through the Redis server at `address` on `channel`: the publisher,
/// and the subscriber thread, once it is subscribed (or after `wait` if it cannot connect;
/// the cache stays bypassed until it does).
pub(crate) fn start(
    address: String,
    channel: String,
    store: Arc<Store>,
    wait: Duration,
) -> (Publisher, Subscriber) {
    let origin = uuid::Uuid::new_v4().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let current = Arc::new(Mutex::new(None));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = {
        let (address, channel, origin) = (address.clone(), channel.clone(), origin.clone());
        let (stop, current) = (stop.clone(), current.clone());
        std::thread::Builder::new()
            .name("custodian-cache-subscriber".into())
            .spawn(move || {
                let mut ready = Some(ready_tx);
                while !stop.load(Ordering::Acquire) {
                    let outcome = subscribe(
                        &address, &channel, &origin, &store, &stop, &current, &mut ready,
                    );
                    store.set_live(false);
                    *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    if let Err(e) = outcome {
                        if !stop.load(Ordering::Acquire) {
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
            .ok()
    };
    if thread.is_some() {
        let _ = ready_rx.recv_timeout(wait);
    }
    let publisher = Publisher {
        address,
        channel,
        origin,
        conn: Mutex::new(None),
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

/// One connection's life: subscribe, go live, evict what other processes publish, ping when
/// idle. Returns when the connection fails or the subscriber stops.
fn subscribe(
    address: &str,
    channel: &str,
    origin: &str,
    store: &Store,
    stop: &AtomicBool,
    current: &Mutex<Option<TcpStream>>,
    ready: &mut Option<std::sync::mpsc::Sender<()>>,
) -> io::Result<()> {
    let stream = connect(address)?;
    stream.set_read_timeout(Some(IDLE))?;
    {
        let mut slot = current.lock().unwrap_or_else(|e| e.into_inner());
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        *slot = Some(stream.try_clone()?);
    }
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
    };
    reader
        .stream
        .write_all(&command(&[b"SUBSCRIBE", channel.as_bytes()]))?;
    let mut pinged = false;
    loop {
        let frame = match reader.next()? {
            Some(frame) => frame,
            None if pinged => return Err(io::Error::other("Redis did not answer a PING")),
            None => {
                reader.stream.write_all(&command(&[b"PING"]))?;
                pinged = true;
                continue;
            }
        };
        pinged = false;
        let Frame::Array(items) = frame else {
            if let Frame::Error(e) = frame {
                return Err(io::Error::other(format!("Redis: {e}")));
            }
            continue;
        };
        match items.first() {
            Some(Frame::Bulk(Some(kind))) if kind == b"subscribe" => {
                store.set_live(true);
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
            Some(Frame::Bulk(Some(kind))) if kind == b"message" => {
                if let Some(Frame::Bulk(Some(payload))) = items.get(2) {
                    let payload = String::from_utf8_lossy(payload);
                    store.evict(&evictions(&payload, origin));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_frames_parse_whole_or_not_at_all() {
        let msg = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n";
        let (frame, used) = parse(msg).unwrap().unwrap();
        assert_eq!(used, msg.len());
        assert_eq!(
            frame,
            Frame::Array(vec![
                Frame::Bulk(Some(b"message".to_vec())),
                Frame::Bulk(Some(b"ch".to_vec())),
                Frame::Bulk(Some(b"hello".to_vec())),
            ])
        );
        for cut in 0..msg.len() {
            assert_eq!(parse(&msg[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(parse(b":3\r\n").unwrap(), Some((Frame::Integer(3), 4)));
        assert_eq!(
            parse(b"-ERR x\r\n").unwrap(),
            Some((Frame::Error("ERR x".into()), 8))
        );
        assert_eq!(
            parse(b"+OK\r\n").unwrap(),
            Some((Frame::Simple("OK".into()), 5))
        );
        assert!(parse(b"?x\r\n").is_err());
        assert_eq!(command(&[b"PING"]), b"*1\r\n$4\r\nPING\r\n");
    }

    #[test]
    fn messages_name_tables_and_keys_and_skip_our_own() {
        let got = evictions("from other\nt1\t[1]\ns.t2\t*\n", "me");
        assert_eq!(
            got,
            vec![
                Touched {
                    table: "t1".into(),
                    key: Some("[1]".into())
                },
                Touched {
                    table: "s.t2".into(),
                    key: None
                },
            ]
        );
        assert!(evictions("from me\nt1\t[1]\n", "me").is_empty());
    }
}
