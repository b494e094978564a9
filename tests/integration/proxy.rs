//! A TCP proxy between custodian and a PostgreSQL or MariaDB server that can cut a connection
//! around its `COMMIT`: after the server answered it (the answer is dropped), right after the
//! `COMMIT` went out, or instead of sending it. It can also refuse new connections, as a server
//! that cannot be reached, hold back every answer (a stalled network path), and cut every
//! connection at once (a server that went away). A cut connection's server side stays open (parked until the proxy is
//! dropped), as in a network partition: the server notices nothing.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What happens to the next `COMMIT` a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Forwarded, answered by the server: the answer is dropped and the client cut off.
    AfterReply,
    /// Forwarded, and the client cut off at once (the server may still be committing).
    AfterSend,
    /// Never forwarded; the client is cut off.
    Swallow,
}

#[derive(Default)]
struct State {
    armed: Mutex<Option<Cut>>,
    refuse: AtomicBool,
    /// While set, nothing the server sends is passed on (it waits in the proxy).
    hold: AtomicBool,
    stop: AtomicBool,
    /// Server sides of cut connections, kept open until the proxy goes.
    parked: Mutex<Vec<TcpStream>>,
    /// Every socket the proxy opened, shut down when it goes.
    sockets: Mutex<Vec<TcpStream>>,
}

/// The proxy; stops (closing every connection it made) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Proxy {
    /// A proxy on a free local port forwarding to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let upstream = upstream.to_string();
        let s = state.clone();
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) if s.refuse.load(Ordering::SeqCst) => drop(client),
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(&upstream) else {
                            continue;
                        };
                        connect(&s, client, server);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Proxy { addr, state }
    }

    /// `host:port` of the proxy.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Arms the cut for the next `COMMIT` through the proxy (one only).
    pub fn arm(&self, cut: Cut) {
        *self.state.armed.lock().unwrap() = Some(cut);
    }

    /// Whether the armed cut still waits for its `COMMIT`.
    pub fn armed(&self) -> bool {
        self.state.armed.lock().unwrap().is_some()
    }

    /// Refuses (accepts and closes at once) every new connection while `refuse` holds.
    pub fn refuse(&self, refuse: bool) {
        self.state.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Holds back everything the server sends while `hold` holds (passed on when released).
    pub fn hold(&self, hold: bool) {
        self.state.hold.store(hold, Ordering::SeqCst);
    }

    /// Closes every connection made through the proxy, both sides.
    pub fn cut_all(&self) {
        for s in self.state.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        for s in self.state.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.state.parked.lock().unwrap().clear();
    }
}

/// Forwards both ways between `client` and `server` on two threads.
fn connect(state: &Arc<State>, client: TcpStream, server: TcpStream) {
    {
        let mut all = state.sockets.lock().unwrap();
        all.push(client.try_clone().unwrap());
        all.push(server.try_clone().unwrap());
    }
    // Set when the server's next answer is to be dropped and the client cut off.
    let drop_reply = Arc::new(AtomicBool::new(false));
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (st, drop_next) = (state.clone(), drop_reply.clone());
    let parked_server = server.try_clone().unwrap();
    let cut_client = client.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut was_cut = false;
        loop {
            let n = match c_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let cut = if chunk.windows(6).any(|w| w == b"COMMIT") {
                st.armed.lock().unwrap().take()
            } else {
                None
            };
            was_cut = cut.is_some();
            match cut {
                None => {
                    if s_out.write_all(chunk).is_err() {
                        break;
                    }
                }
                Some(Cut::AfterReply) => {
                    drop_next.store(true, Ordering::SeqCst);
                    let _ = s_out.write_all(chunk);
                    break;
                }
                Some(Cut::AfterSend) => {
                    let _ = s_out.write_all(chunk);
                    let _ = cut_client.shutdown(Shutdown::Both);
                    break;
                }
                Some(Cut::Swallow) => {
                    let _ = cut_client.shutdown(Shutdown::Both);
                    break;
                }
            }
        }
        if was_cut {
            // The server side stays open: the server must not learn of the cut from the proxy.
            st.parked.lock().unwrap().push(parked_server);
        } else {
            // The client closed: so does the server side.
            let _ = parked_server.shutdown(Shutdown::Both);
        }
    });
    let (mut s_in, mut c_out) = (server, client);
    let st = state.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match s_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if drop_reply.load(Ordering::SeqCst) {
                let _ = c_out.shutdown(Shutdown::Both);
                break;
            }
            while st.hold.load(Ordering::SeqCst) && !st.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if c_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        if !drop_reply.load(Ordering::SeqCst) {
            let _ = c_out.shutdown(Shutdown::Both);
        }
    });
}
