//! The little of RESP (the Redis protocol) the cache needs: commands as arrays of bulk
//! strings, the replies parsed whole or not at all, and connections with timeouts.
//!
//! Only `PUBLISH`, `SUBSCRIBE` and `PING` are used, so this speaks RESP over a
//! `std::net::TcpStream` itself instead of pulling in a client crate and its async runtime.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long connecting, and each write, may take.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// One RESP value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Frame>),
}

/// A command as a RESP array of bulk strings.
pub(super) fn command(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The first complete frame of `buf` and its length; `Ok(None)` while incomplete.
pub(super) fn parse(buf: &[u8]) -> io::Result<Option<(Frame, usize)>> {
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

/// A connection to `address` with no delay, connected and writing within `timeout` each.
pub(super) fn connect(address: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(timeout))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads frames off a stream, keeping partial ones across timeouts.
pub(super) struct Reader {
    pub(super) stream: TcpStream,
    buf: Vec<u8>,
}

impl Reader {
    /// Frames read off `stream`.
    pub(super) fn new(stream: TcpStream) -> Self {
        Reader {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next frame; `Ok(None)` when nothing complete arrived within the read timeout.
    pub(super) fn next(&mut self) -> io::Result<Option<Frame>> {
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

/// One connection for commands (not a subscription), opened on first use and again after a
/// failure.
pub(super) struct Conn {
    address: String,
    /// How long connecting, each write and each reply may take.
    timeout: Duration,
    conn: Option<Reader>,
}

impl Conn {
    /// A connection to `address`, not opened yet, whose steps may each take `timeout`.
    pub(super) fn new(address: String, timeout: Duration) -> Self {
        Conn {
            address,
            timeout,
            conn: None,
        }
    }

    /// Sends `parts` and returns the reply, opening the connection first when there is none;
    /// a failed connection is closed (the next request opens another).
    pub(super) fn request(&mut self, parts: &[&[u8]]) -> io::Result<Frame> {
        if self.conn.is_none() {
            let stream = connect(&self.address, self.timeout)?;
            stream.set_read_timeout(Some(self.timeout))?;
            self.conn = Some(Reader::new(stream));
        }
        let answer = match self.conn.as_mut() {
            Some(reader) => reader
                .stream
                .write_all(&command(parts))
                .and_then(|()| reader.next()),
            None => Ok(None),
        };
        match answer {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => {
                self.conn = None;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "Redis did not answer",
                ))
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    /// [`Conn::request`], once more on a fresh connection if it failed on one opened before
    /// (a server may have closed an idle connection).
    pub(super) fn request_retrying(&mut self, parts: &[&[u8]]) -> io::Result<Frame> {
        let reused = self.conn.is_some();
        match self.request(parts) {
            Err(_) if reused => self.request(parts),
            answer => answer,
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
}
