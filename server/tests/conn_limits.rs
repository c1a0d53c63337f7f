//! The listener against slow, idle and numerous clients, on real sockets: nothing a client
//! does (or fails to do) holds a connection, a request or the shutdown forever, and
//! `/healthz` still answers at the connection limit.

mod common;

use std::time::Duration;

use common::{DbKind, TestServer};
use otter_server::listen::ServeLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on every wait of these tests (never asserted on, only there so a regression fails
/// instead of hanging).
const BOUND: Duration = Duration::from_secs(30);

async fn start(limits: ServeLimits) -> TestServer {
    TestServer::start_with(DbKind::Sqlite, |c| c.serve = limits).await
}

fn limits() -> ServeLimits {
    ServeLimits {
        header_read_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(60),
        shutdown_timeout: Duration::from_secs(60),
        ..ServeLimits::default()
    }
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// A connection from another loopback address (another host, as far as the server can tell),
/// with a small receive buffer.
async fn connect_from(server: &TestServer, source: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let address = server.url.trim_start_matches("http://").parse().unwrap();
    socket.connect(address).await.unwrap()
}

/// Everything the server sends until it closes the connection; panics if it does not close
/// it within [`BOUND`].
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("the server did not close the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `request` and reads one response whose body ends with `}` (all JSON here).
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !out.ends_with(b"}") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("no response");
    String::from_utf8_lossy(&out).into_owned()
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nhost: otter\r\n\r\n";

#[tokio::test]
async fn idle_connection_is_closed_after_the_header_read_timeout() {
    let server = start(ServeLimits {
        header_read_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut fresh = connect(&server).await;
    let mut kept_alive = connect(&server).await;
    assert!(
        exchange(&mut kept_alive, HEALTHZ)
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Neither sends anything more: both are closed.
    read_until_closed(&mut fresh).await;
    read_until_closed(&mut kept_alive).await;
    server.stop().await;
}

#[tokio::test]
async fn request_head_trickled_byte_by_byte_is_cut() {
    let server = start(ServeLimits {
        header_read_timeout: Duration::from_secs(2),
        ..limits()
    })
    .await;
    let stream = connect(&server).await;
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        // 400 bytes at one byte per 100 ms: 40 s of head, far beyond the timeout.
        let head = format!("GET /healthz HTTP/1.1\r\nx-slow: {}", "a".repeat(400));
        for byte in head.bytes() {
            if write.write_all(&[byte]).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    });
    let mut answer = Vec::new();
    tokio::time::timeout(BOUND, read.read_to_end(&mut answer))
        .await
        .expect("the trickled head was not cut")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("200 OK"), "{answer}");
    trickle.abort();
    server.stop().await;
}

#[tokio::test]
async fn request_body_trickled_is_answered_408_json_and_closed() {
    let server = start(ServeLimits {
        body_timeout: Duration::from_secs(1),
        body_min_rate: 1024,
        ..limits()
    })
    .await;
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /api/v1/tokens HTTP/1.1\r\nhost: otter\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 200\r\n\r\n{{",
        server.admin_token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..199 {
            if write.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(BOUND, read.read_to_end(&mut answer))
        .await
        .expect("the trickled body was not cut")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    let body: serde_json::Value =
        serde_json::from_str(&answer[answer.find('{').unwrap()..]).unwrap();
    assert_eq!(body["error"], "request_timeout", "{answer}");
    trickle.abort();
    server.stop().await;
}

#[tokio::test]
async fn healthz_answers_while_the_connection_limit_is_reached() {
    let server = start(ServeLimits {
        max_connections: 3,
        reserve_connections: 1,
        ..limits()
    })
    .await;
    // Fill the limit with keep-alive connections that each got an answer (so each was
    // admitted before the next one connects).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&server).await;
        assert!(
            exchange(&mut stream, HEALTHZ)
                .await
                .starts_with("HTTP/1.1 200")
        );
        held.push(stream);
    }
    // The reserve answers /healthz, once per connection…
    let mut reserve = connect(&server).await;
    reserve.write_all(HEALTHZ.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut reserve).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // …and nothing else.
    let mut reserve = connect(&server).await;
    reserve
        .write_all(b"GET /api/v1/devices HTTP/1.1\r\nhost: otter\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut reserve).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"unavailable\""), "{answer}");
    // With the reserve taken too, a connection is refused at once instead of queued.
    let _reserve_held = connect(&server).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = connect(&server).await;
    let answer = read_until_closed(&mut over).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "{answer}"
    );
    // Closing one held connection frees its place for the full API.
    drop(held.pop());
    let mut freed = None;
    for _ in 0..100 {
        let mut stream = connect(&server).await;
        let request =
            "GET /api/v1/openapi.json HTTP/1.1\r\nhost: otter\r\nconnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut stream).await;
        if answer.starts_with("HTTP/1.1 200") {
            freed = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed.is_some(), "the freed place was never reused");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_within_its_deadline_despite_a_slow_client() {
    let server = start(ServeLimits {
        shutdown_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /api/v1/tokens HTTP/1.1\r\nhost: otter\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 200\r\n\r\n{{",
        server.admin_token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The request is in flight, its body never completes; shutdown must not wait for it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(BOUND, server.stop())
        .await
        .expect("shutdown waited for the slow client");
    read_until_closed(&mut stream).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_responses_loses_its_connection() {
    let server = start(ServeLimits {
        write_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    const OPENAPI: &str = "GET /api/v1/openapi.json HTTP/1.1\r\nhost: otter\r\n\r\n";
    let mut probe = connect(&server).await;
    probe
        .write_all(
            OPENAPI
                .replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let one = read_until_closed(&mut probe).await.len();
    // Far more pipelined answers than the socket buffers hold (a few MiB on loopback), and
    // then no reading at all.
    let mut stream = connect_from(&server, "127.0.0.1").await;
    let requests = (64 << 20) / one;
    let pipelined = OPENAPI.repeat(requests);
    let (mut reader, mut writer) = stream.split();
    let send = writer.write_all(pipelined.as_bytes());
    // The server stops reading requests once its writes block, so sending may block too.
    let _ = tokio::time::timeout(Duration::from_secs(3), send).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Without the write timeout every answer would come, then the connection would idle on.
    let mut got = 0;
    let drained = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 65536];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the stalled connection was kept open");
    assert!(
        got < one * requests,
        "all {requests} answers were sent ({got} bytes): nothing was cut"
    );
    server.stop().await;
}

#[tokio::test]
async fn one_host_cannot_take_every_connection() {
    let server = start(ServeLimits {
        max_connections: 10,
        max_connections_per_host: 2,
        reserve_connections: 1,
        ..limits()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from(&server, "127.0.0.1").await;
        assert!(
            exchange(&mut stream, HEALTHZ)
                .await
                .starts_with("HTTP/1.1 200")
        );
        held.push(stream);
    }
    const API: &str =
        "GET /api/v1/openapi.json HTTP/1.1\r\nhost: otter\r\nconnection: close\r\n\r\n";
    // The host's third connection gets only the reserve…
    let mut third = connect_from(&server, "127.0.0.1").await;
    third.write_all(API.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // …while another host is served in full.
    let mut other = connect_from(&server, "127.0.0.2").await;
    other.write_all(API.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut other).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A closed connection gives the host its place back.
    drop(held.pop());
    let mut freed = false;
    for _ in 0..100 {
        let mut stream = connect_from(&server, "127.0.0.1").await;
        stream.write_all(API.as_bytes()).await.unwrap();
        if read_until_closed(&mut stream)
            .await
            .starts_with("HTTP/1.1 200")
        {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the host's freed place was never reused");
    server.stop().await;
}
