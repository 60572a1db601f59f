//! A WHIP endpoint that misbehaves on purpose, one way per scenario, on loopback.
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub enum Misbehaviour {
    /// Answer with this status, extra headers and body.
    Status(u16, Vec<(String, String)>, String),
    /// Read the request and never answer.
    Silent,
    /// 307 to itself, forever.
    RedirectLoop,
    /// 201 with a body far larger than any SDP.
    Oversized,
    /// This answer (status, headers, body), one byte a second.
    Dribble(u16, Vec<(String, String)>, String),
}

fn reason(status: u16) -> &'static str {
    match status {
        201 => "Created",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// Serves `behaviour` on a free loopback port until the runtime ends; returns the endpoint URL.
pub async fn serve(behaviour: Misbehaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/whip", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let behaviour = behaviour.clone();
            tokio::spawn(async move {
                // Read whatever the client sends (headers and a small SDP body).
                let mut buf = vec![0u8; 65536];
                let _ = tokio::time::timeout(Duration::from_millis(500), conn.read(&mut buf)).await;
                let head = |status: u16, headers: &[(String, String)], len: usize| {
                    let mut h = format!(
                        "HTTP/1.1 {status} {}\r\nContent-Length: {len}\r\nConnection: close\r\n",
                        reason(status)
                    );
                    for (k, v) in headers {
                        h += &format!("{k}: {v}\r\n");
                    }
                    h + "\r\n"
                };
                match behaviour {
                    Misbehaviour::Status(status, headers, body) => {
                        let _ = conn
                            .write_all(head(status, &headers, body.len()).as_bytes())
                            .await;
                        let _ = conn.write_all(body.as_bytes()).await;
                    }
                    Misbehaviour::Dribble(status, headers, body) => {
                        let answer = head(status, &headers, body.len()) + &body;
                        for byte in answer.as_bytes() {
                            if conn.write_all(&[*byte]).await.is_err() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    Misbehaviour::Silent => {
                        tokio::time::sleep(Duration::from_secs(120)).await;
                    }
                    Misbehaviour::RedirectLoop => {
                        let _ = conn
                            .write_all(
                                head(307, &[("Location".into(), "/whip".into())], 0).as_bytes(),
                            )
                            .await;
                    }
                    Misbehaviour::Oversized => {
                        let size = 8 * 1024 * 1024;
                        let headers = [
                            ("Location".into(), "/r/1".into()),
                            ("Content-Type".into(), "application/sdp".into()),
                        ];
                        let _ = conn.write_all(head(201, &headers, size).as_bytes()).await;
                        let chunk = vec![b'v'; 64 * 1024];
                        for _ in 0..size / chunk.len() {
                            if conn.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = conn.shutdown().await;
            });
        }
    });
    url
}

/// An HTTPS WHIP endpoint on loopback whose certificate (for `localhost`) is self-signed — trusted by nobody.
/// Answers 404 to anything, so a client that wrongly skipped verification would fail differently.
pub async fn serve_untrusted_tls() -> String {
    use std::sync::Arc;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}/whip",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(conn).await {
                    let mut buf = vec![0u8; 65536];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    url
}
