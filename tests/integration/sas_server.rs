//! A small HTTP/1.1 server on 127.0.0.1 (port chosen by the OS) that serves files in the SAS
//! layout with scripted misbehaviour, for the `fetch` tests. It answers each connection on its own
//! thread, logs every request (path and Range start), and stops when dropped or after 120 s.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the server answers one path.
#[derive(Clone, Debug)]
pub enum Reply {
    /// The bytes, with Range support (206 / 416).
    File(Vec<u8>),
    /// 404.
    NotFound,
    /// Without a Range header: the full Content-Length, but only the first `cut` bytes, then the
    /// connection closes. With a Range header: served like `File`.
    TruncateFirst { body: Vec<u8>, cut: usize },
    /// The body in `chunk`-byte pieces with `delay` between them (Range supported).
    Slow {
        body: Vec<u8>,
        chunk: usize,
        delay: Duration,
    },
    /// Without a Range header: `after` bytes, then silence for `stall`, then close.
    /// With a Range header: served like `File`.
    StallFirst {
        body: Vec<u8>,
        after: usize,
        stall: Duration,
    },
    /// 200 with an HTML page (what a portal sends instead of a file).
    Html,
}

/// One logged request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// The path asked for (without the query).
    pub path: String,
    /// The start of the Range header, if any.
    pub range: Option<u64>,
}

/// The running server.
pub struct SasServer {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    log: Arc<Mutex<Vec<Logged>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl SasServer {
    /// Serve `routes` (path without a leading slash -> reply).
    pub fn start(routes: HashMap<String, Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (Arc::clone(&log), Arc::clone(&stop));
        let routes = Arc::new(routes);
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        // One thread per connection, so a stalled answer does not hold up the
                        // next request (the tests make a handful of requests each).
                        let (routes, log, stop) =
                            (Arc::clone(&routes), Arc::clone(&log2), Arc::clone(&stop2));
                        std::thread::spawn(move || {
                            let _ = serve(stream, &routes, &log, &stop);
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        Self {
            base: format!("http://127.0.0.1:{port}"),
            log,
            stop,
            handle: Some(handle),
        }
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for SasServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    mut s: TcpStream,
    routes: &HashMap<String, Reply>,
    log: &Mutex<Vec<Logged>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if s.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.lines();
    let target = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let path = target
        .split('?')
        .next()
        .unwrap_or("")
        .trim_start_matches('/')
        .to_owned();
    let range = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("range"))
        .and_then(|(_, v)| v.trim().strip_prefix("bytes="))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Ok(mut l) = log.lock() {
        l.push(Logged {
            path: path.clone(),
            range,
        });
    }
    let Some(reply) = routes.get(&path) else {
        return respond(&mut s, "404 Not Found", &[], b"<html>no such file</html>");
    };
    match reply {
        Reply::NotFound => respond(&mut s, "404 Not Found", &[], b"<html>not found</html>"),
        Reply::Html => respond(
            &mut s,
            "200 OK",
            &[("Content-Type", "text/html".into())],
            b"<!DOCTYPE html><html><body>Please log in</body></html>",
        ),
        Reply::File(body) => file(&mut s, body, range, None, stop),
        Reply::Slow { body, chunk, delay } => {
            file(&mut s, body, range, Some((*chunk, *delay)), stop)
        }
        Reply::TruncateFirst { body, cut } => {
            if range.is_some() {
                return file(&mut s, body, range, None, stop);
            }
            header(&mut s, "200 OK", body.len(), &[])?;
            s.write_all(&body[..*cut])?;
            s.flush()
        }
        Reply::StallFirst { body, after, stall } => {
            if range.is_some() {
                return file(&mut s, body, range, None, stop);
            }
            header(&mut s, "200 OK", body.len(), &[])?;
            s.write_all(&body[..*after])?;
            s.flush()?;
            let until = Instant::now() + *stall;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        }
    }
}

fn file(
    s: &mut TcpStream,
    body: &[u8],
    range: Option<u64>,
    slow: Option<(usize, Duration)>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let len = body.len() as u64;
    let (status, start, extra) = match range {
        Some(r) if r >= len => {
            return respond(
                s,
                "416 Range Not Satisfiable",
                &[("Content-Range", format!("bytes */{len}"))],
                b"",
            );
        }
        Some(r) => (
            "206 Partial Content",
            r as usize,
            vec![("Content-Range", format!("bytes {r}-{}/{len}", len - 1))],
        ),
        None => ("200 OK", 0, Vec::new()),
    };
    let part = &body[start..];
    header(s, status, part.len(), &extra)?;
    match slow {
        None => s.write_all(part)?,
        Some((chunk, delay)) => {
            for c in part.chunks(chunk.max(1)) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                s.write_all(c)?;
                s.flush()?;
                std::thread::sleep(delay);
            }
        }
    }
    s.flush()
}

fn header(
    s: &mut TcpStream,
    status: &str,
    len: usize,
    extra: &[(&str, String)],
) -> std::io::Result<()> {
    let mut h = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n"
    );
    for (k, v) in extra {
        h += &format!("{k}: {v}\r\n");
    }
    h += "\r\n";
    s.write_all(h.as_bytes())
}

fn respond(
    s: &mut TcpStream,
    status: &str,
    extra: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    header(s, status, body.len(), extra)?;
    s.write_all(body)?;
    s.flush()
}
