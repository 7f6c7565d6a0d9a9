//! The transport against a real HTTP server on loopback: a few lines of tokio that record every
//! request byte for byte and answer as each test scripts it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// One request as the server received it.
#[derive(Debug, Clone)]
struct Received {
    /// `POST /path?query`.
    line: String,
    /// Lower-case header names and values.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the server answers the n-th request (0-based).
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: Vec<u8>,
    delay: Duration,
    /// Send `Content-Length` (else the body ends when the connection closes).
    length: bool,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.as_bytes().to_vec(),
        delay: Duration::ZERO,
        length: true,
    }
}

/// A server answering with `script`; returns its base URL and what it received.
async fn serve(
    script: impl Fn(usize) -> Reply + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let script = Arc::new(script);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, script) = (seen.clone(), script.clone());
            tokio::spawn(async move {
                let Some(received) = read_request(&mut stream).await else {
                    return;
                };
                let n = {
                    let mut log = seen.lock().expect("log");
                    log.push(received);
                    log.len() - 1
                };
                let reply = script(n);
                tokio::time::sleep(reply.delay).await;
                let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
                if reply.length {
                    head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&reply.body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (base, log)
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let line = lines.next()?.rsplit_once(' ')?.0.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        line,
        headers,
        body,
    })
}

fn fast() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        retries: 3,
        retry_backoff: Duration::from_millis(10),
        body_limit: 1024,
    }
}

fn count(log: &Arc<Mutex<Vec<Received>>>) -> usize {
    log.lock().expect("log").len()
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_refused_with_or_without_a_length() {
    for length in [true, false] {
        let (base, _) = serve(move |_| Reply {
            length,
            ..reply(200, &"x".repeat(2000))
        })
        .await;
        let t = Transport::new(&base, fast()).expect("transport");
        let e = t.send(&Request::get("/big")).await.expect_err("too large");
        assert!(matches!(e, CaError::Malformed { .. }), "{e:?}");
        assert!(e.to_string().contains("larger than 1024 bytes"), "{e}");
        let ok = Transport::new(
            &base,
            HttpOptions {
                body_limit: 4096,
                ..fast()
            },
        )
        .expect("transport");
        let response = ok
            .send(&Request::get("/big"))
            .await
            .expect("within the cap");
        assert_eq!(response.body.len(), 2000);
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_and_a_creating_request_is_not_repeated() {
    let (base, log) = serve(|_| Reply {
        delay: Duration::from_secs(3),
        ..reply(200, "{}")
    })
    .await;
    let t = Transport::new(
        &base,
        HttpOptions {
            timeout: Duration::from_millis(300),
            ..fast()
        },
    )
    .expect("transport");
    let request = Request::post("/cert/create", Body::Json(serde_json::json!({"a": 1})));
    let e = t.send(&request).await.expect_err("timeout");
    assert!(matches!(e, CaError::Transport { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("no answer in time"), "{text}");
    assert!(text.contains("not repeated"), "{text}");
    assert!(text.starts_with("/cert/create: "), "{text}");
    assert_eq!(count(&log), 1, "sent once");
}

#[tokio::test]
async fn a_creating_request_is_sent_once_whatever_the_failure() {
    let (base, log) = serve(|_| reply(503, "<html>busy</html>")).await;
    let t = Transport::new(&base, fast()).expect("transport");
    let request =
        Request::post("/cert/create", Body::Json(serde_json::json!({}))).expect(Expect::Only(200));
    let e = t.send(&request).await.expect_err("503");
    let text = e.to_string();
    assert!(text.contains("HTTP 503"), "{text}");
    assert!(text.contains("always answers 200"), "{text}");
    assert!(text.contains("not repeated"), "{text}");
    assert_eq!(count(&log), 1);
}

#[tokio::test]
async fn an_idempotent_request_is_retried_until_it_succeeds_or_the_retries_run_out() {
    let (base, log) = serve(|n| {
        if n < 2 {
            reply(502, "")
        } else {
            reply(200, "ok")
        }
    })
    .await;
    let t = Transport::new(&base, fast()).expect("transport");
    let response = t
        .send(&Request::get("/cert/details"))
        .await
        .expect("third try");
    assert_eq!(response.body, b"ok");
    assert_eq!(count(&log), 3);

    let (base, log) = serve(|_| reply(503, "")).await;
    let t = Transport::new(
        &base,
        HttpOptions {
            retries: 1,
            ..fast()
        },
    )
    .expect("transport");
    let e = t.send(&Request::get("/x")).await.expect_err("gives up");
    assert!(e.to_string().contains("gave up after 2 attempts"), "{e}");
    assert!(!e.to_string().contains("not repeated"), "{e}");
    assert_eq!(count(&log), 2);
}

#[tokio::test]
async fn expect_decides_which_statuses_are_answers() {
    let (base, _) = serve(|_| reply(404, "{\"error_code\":\"SCM.0001\"}")).await;
    let t = Transport::new(&base, fast()).expect("transport");
    let any = Request::get("/v3/scm/certificates").expect(Expect::Any);
    let response = t.send(&any).await.expect("any status is an answer");
    assert_eq!(response.status, 404);
    assert!(response.body.starts_with(b"{\"error_code\""));
    let e = t
        .send(&Request::get("/cert/revoke").idempotent(false))
        .await
        .expect_err("404 is no answer");
    assert!(
        e.to_string().contains("HTTP 404 from 127.0.0.1:")
            && e.to_string().contains("no /cert/revoke endpoint"),
        "{e}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable_and_says_nothing_was_sent() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let t = Transport::new(&format!("http://127.0.0.1:{port}"), fast()).expect("transport");
    let request = Request::post("/client/create", Body::Empty);
    let e = t.send(&request).await.expect_err("refused");
    assert!(matches!(e, CaError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("nothing was sent"), "{e}");
}

/// What a signer saw: method, URL, headers, body.
type Seen = Arc<Mutex<Vec<(String, String, Vec<(String, String)>, Vec<u8>)>>>;

/// A signer that records what it saw and signs the body's length.
fn recording_signer(seen: Seen) -> impl Signer {
    move |out: &Outgoing<'_>| {
        seen.lock().expect("seen").push((
            out.method.to_string(),
            out.url.to_string(),
            out.headers.to_vec(),
            out.body.to_vec(),
        ));
        Ok(vec![
            ("X-Sdk-Date".to_string(), "20240102T030405Z".to_string()),
            (
                "Authorization".to_string(),
                format!("TEST len={}", out.body.len()),
            ),
        ])
    }
}

#[tokio::test]
async fn the_signer_sees_exactly_what_is_sent_for_every_body_kind() {
    let (base, log) = serve(|_| reply(200, "{}")).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let t = Transport::new(&base, fast())
        .expect("transport")
        .with_signer(recording_signer(seen.clone()));
    let fields = vec![
        ("token".to_string(), "t&k=1 ü".to_string()),
        ("csr".to_string(), "-----BEGIN\r\nline\n".to_string()),
    ];
    let bodies = [
        Body::Json(serde_json::json!({"domain": "www.example.com", "n": 1})),
        Body::Form(fields.clone()),
        Body::Multipart(fields.clone()),
        Body::Empty,
        Body::Raw {
            content_type: "application/jose+json".into(),
            bytes: b"{\"protected\":\"e30\"}".to_vec(),
        },
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let mut request = Request::post("/v3/scm/certificates/scs1/apply", body);
        request.query = vec![
            ("limit".into(), "10".into()),
            ("status".into(), "ALL".into()),
        ];
        request.headers = vec![("X-Domain-Id".into(), "d1".into())];
        t.send(&request).await.expect("sent");
        let got = log.lock().expect("log")[i].clone();
        let (method, url, headers, body) = seen.lock().expect("seen")[i].clone();
        assert_eq!(got.body, body, "body {i}: the signer saw the bytes sent");
        assert_eq!(
            got.line,
            format!("{method} /v3/scm/certificates/scs1/apply?limit=10&status=ALL")
        );
        assert!(url.ends_with("/v3/scm/certificates/scs1/apply?limit=10&status=ALL"));
        for (name, value) in &headers {
            assert_eq!(got.header(name), Some(value.as_str()), "header {name}");
        }
        assert_eq!(got.header("x-domain-id"), Some("d1"));
        assert_eq!(got.header("x-sdk-date"), Some("20240102T030405Z"));
        assert_eq!(
            got.header("authorization"),
            Some(format!("TEST len={}", body.len()).as_str())
        );
    }
    let log = log.lock().expect("log");
    assert_eq!(log[0].header("content-type"), Some("application/json"));
    assert_eq!(log[0].body, br#"{"domain":"www.example.com","n":1}"#);
    assert_eq!(
        log[1].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        String::from_utf8_lossy(&log[1].body),
        "token=t%26k%3D1+%C3%BC&csr=-----BEGIN%0D%0Aline%0A"
    );
    let multipart = log[2].header("content-type").expect("content type");
    let boundary = multipart
        .strip_prefix("multipart/form-data; boundary=")
        .expect("boundary");
    assert_eq!(
        String::from_utf8_lossy(&log[2].body),
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nt&k=1 ü\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"csr\"\r\n\r\n\
             -----BEGIN\r\nline\n\r\n--{boundary}--\r\n"
        )
    );
    assert_eq!(log[3].header("content-type"), None);
    assert!(log[3].body.is_empty());
    assert_eq!(log[4].header("content-type"), Some("application/jose+json"));
    assert_eq!(log[4].body, br#"{"protected":"e30"}"#);
}

#[tokio::test]
async fn a_signer_error_stops_the_request_before_it_is_sent() {
    let (base, log) = serve(|_| reply(200, "{}")).await;
    let t = Transport::new(&base, fast())
        .expect("transport")
        .with_signer(
            |_: &Outgoing<'_>| -> Result<Vec<(String, String)>, CaError> {
                Err(CaError::Invalid("no secret key".into()))
            },
        );
    let e = t.send(&Request::get("/x")).await.expect_err("unsigned");
    assert!(e.to_string().contains("no secret key"), "{e}");
    assert_eq!(count(&log), 0);
}

#[test]
fn plain_http_to_a_remote_host_is_refused_and_endpoints_join_below_the_base() {
    let e = Transport::new("http://ca.example", HttpOptions::default()).expect_err("http");
    assert!(e.to_string().contains("https"), "{e}");
    let t =
        Transport::new("https://proxy.example/enc365", HttpOptions::default()).expect("transport");
    assert_eq!(
        t.url("/cert/create").expect("url").as_str(),
        "https://proxy.example/enc365/cert/create"
    );
}
