use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::AtomicUsize;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::sync::oneshot;

use super::*;

const WAIT: Duration = Duration::from_secs(20);

/// Reply to one request: status code, raw header block and body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// Sends `GET path` over `stream` and reads until the server closes (or the TLS peer just drops).
fn exchange(mut stream: impl Read + Write, path: &str) -> Reply {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("write request");
    stream.flush().expect("flush");
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A TLS peer may close without close_notify after `Connection: close`.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => panic!("reading reply to {path}: {e}"),
        }
    }
    let text = String::from_utf8(raw).expect("utf-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status code");
    Reply { status, headers: head.to_owned(), body: body.to_owned() }
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream
}

async fn http_get(addr: SocketAddr, path: &str) -> Reply {
    let path = path.to_owned();
    let call = tokio::task::spawn_blocking(move || exchange(tcp(addr), &path));
    tokio::time::timeout(WAIT, call).await.expect("request timed out").expect("client thread")
}

/// Accepts whatever certificate the server shows, as long as it is valid for the requested name
/// and signs the handshake, and remembers it for the test to inspect.
#[derive(Debug, Default)]
struct RememberingVerifier {
    seen: parking_lot::Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for RememberingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        *self.seen.lock() = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

/// GET over TLS with SNI/name check `server_name`; returns the reply and the certificate served.
async fn https_get(addr: SocketAddr, server_name: &str, path: &str) -> (Reply, CertificateDer<'static>) {
    let path = path.to_owned();
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let call = tokio::task::spawn_blocking(move || {
        let verifier = Arc::new(RememberingVerifier::default());
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client connection");
        let reply = exchange(rustls::StreamOwned::new(conn, tcp(addr)), &path);
        let cert = verifier.seen.lock().clone().expect("handshake verified a certificate");
        (reply, cert)
    });
    tokio::time::timeout(WAIT, call).await.expect("request timed out").expect("client thread")
}

fn local(insecure_http: bool) -> ServeOptions {
    ServeOptions { bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST), port: 0, insecure_http, ..ServeOptions::default() }
}

/// Starts a server with a shutdown trigger.
async fn start(opts: ServeOptions) -> (ServeHandle, Arc<Metrics>, Arc<Health>, oneshot::Sender<()>) {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = serve(opts, metrics.clone(), health.clone(), async move {
        let _ = stopped.await;
    })
    .await
    .expect("server starts");
    (handle, metrics, health, stop)
}

async fn stop_and_wait(handle: ServeHandle, stop: oneshot::Sender<()>) {
    let _ = stop.send(());
    tokio::time::timeout(WAIT, handle.wait()).await.expect("server stops in time").expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_follow_health_over_plain_http() {
    let (handle, _metrics, health, stop) = start(local(true)).await;
    let addr = handle.local_addr();
    assert_ne!(addr.port(), 0, "port 0 is resolved to the bound port");
    assert!(!handle.is_tls());

    for path in ["/healthz", "/livez"] {
        let reply = http_get(addr, path).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"), "{path}");
    }
    let not_ready = http_get(addr, "/readyz").await;
    assert_eq!(not_ready.status, 503);
    assert!(not_ready.body.contains("[-]informer-sync failed: informer caches have not synced yet"), "{not_ready:?}");
    assert!(not_ready.body.contains("[+]ping ok"), "{not_ready:?}");
    assert!(not_ready.body.ends_with("readyz check failed"), "{not_ready:?}");

    health.set_synced(true);
    let ready = http_get(addr, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ok"));

    // A synced standby is ready: it is warm and can take over at once.
    health.set_leader_election_enabled(true);
    let standby = http_get(addr, "/readyz?verbose").await;
    assert_eq!(standby.status, 200, "{standby:?}");
    assert!(standby.body.contains("[+]leader-election ok (standby)"), "{standby:?}");
    assert!(standby.body.ends_with("readyz check passed"), "{standby:?}");
    health.set_leader(true);
    assert!(http_get(addr, "/readyz?verbose=1").await.body.contains("[+]leader-election ok (leading)"));

    health.set_alive(false);
    for path in ["/healthz", "/livez", "/readyz"] {
        let reply = http_get(addr, path).await;
        assert_eq!(reply.status, 503, "{path}: {reply:?}");
        assert!(reply.body.contains("[-]ping failed: the scheduling loop is not running"), "{path}: {reply:?}");
    }

    let missing = http_get(addr, "/nope").await;
    assert_eq!(missing.status, 404);
    stop_and_wait(handle, stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_as_prometheus_text() {
    let (handle, metrics, _health, stop) = start(local(true)).await;
    metrics.set_bind_queue_depth(42);
    let reply = http_get(handle.local_addr(), "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"),
        "{}",
        reply.headers
    );
    assert!(reply.body.contains("# TYPE scheduler_pending_pods gauge"), "{}", reply.body);
    assert_eq!(metrics::parse_sample(&reply.body, "tessera_bind_queue_depth"), Some(42.0));
    stop_and_wait(handle, stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_server_and_frees_the_port() {
    let (handle, _metrics, _health, stop) = start(local(true)).await;
    let addr = handle.local_addr();
    stop_and_wait(handle, stop).await;
    assert!(TcpStream::connect(addr).is_err(), "nothing listens on {addr} after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_reported_with_its_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let opts = ServeOptions { port, ..local(true) };
    let err = serve(opts, Arc::new(Metrics::new()), Arc::new(Health::new()), std::future::pending())
        .await
        .expect_err("port in use");
    assert!(matches!(err, ServeError::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_files_serves_a_self_signed_certificate_for_localhost() {
    let (handle, _metrics, _health, stop) = start(local(false)).await;
    assert!(handle.is_tls());
    let addr = handle.local_addr();
    let (reply, cert) = https_get(addr, "localhost", "/healthz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    // The same certificate is valid for the loopback IP too (checked by the verifier).
    let (reply, again) = https_get(addr, "127.0.0.1", "/livez").await;
    assert_eq!(reply.status, 200);
    assert_eq!(cert, again, "one certificate per server");
    // Plain HTTP against the TLS port gets no HTTP reply.
    let plain = tokio::task::spawn_blocking(move || {
        let mut s = tcp(addr);
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    });
    let out = tokio::time::timeout(WAIT, plain).await.expect("closed in time").expect("thread");
    assert!(!out.starts_with(b"HTTP/1.1 200"), "TLS port answered plain HTTP");
    stop_and_wait(handle, stop).await;
}

/// A unique scratch directory for this test process.
fn scratch_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tessera-serve-{}-{tag}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_the_given_certificate_files() {
    let dir = scratch_dir("files");
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("generate");
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, generated.cert.pem()).expect("write cert");
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).expect("write key");
    let opts = ServeOptions { tls_cert_file: Some(cert_path), tls_private_key_file: Some(key_path), ..local(false) };
    let (handle, _metrics, health, stop) = start(opts).await;
    health.set_synced(true);
    let (reply, served) = https_get(handle.local_addr(), "localhost", "/readyz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    assert_eq!(&served, generated.cert.der(), "the file's certificate is served");
    stop_and_wait(handle, stop).await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn serve_err(opts: ServeOptions) -> ServeError {
    serve(opts, Arc::new(Metrics::new()), Arc::new(Health::new()), std::future::pending())
        .await
        .expect_err("server must not start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_are_named_in_the_error() {
    let dir = scratch_dir("bad");
    let missing = dir.join("missing.crt");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM").expect("write");
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("generate");
    let cert = dir.join("ok.crt");
    std::fs::write(&cert, generated.cert.pem()).expect("write");
    let other_key = rcgen::KeyPair::generate().expect("key");
    let wrong_key = dir.join("wrong.key");
    std::fs::write(&wrong_key, other_key.serialize_pem()).expect("write");

    let with = |c: &Path, k: &Path| ServeOptions {
        tls_cert_file: Some(c.to_owned()),
        tls_private_key_file: Some(k.to_owned()),
        ..local(false)
    };
    let err = serve_err(with(&missing, &wrong_key)).await;
    assert!(matches!(err, ServeError::ReadFile { what: "certificate", .. }), "{err:?}");
    assert!(err.to_string().contains(&missing.display().to_string()), "{err}");

    let err = serve_err(with(&garbage, &wrong_key)).await;
    assert!(matches!(err, ServeError::InvalidPem { what: "certificate", .. }), "{err:?}");
    assert!(err.to_string().contains(&garbage.display().to_string()), "{err}");

    let err = serve_err(with(&cert, &garbage)).await;
    assert!(matches!(err, ServeError::InvalidPem { what: "private key", .. }), "{err:?}");
    assert!(err.to_string().contains(&garbage.display().to_string()), "{err}");

    let err = serve_err(with(&cert, &wrong_key)).await;
    assert!(matches!(err, ServeError::TlsConfig { .. }), "{err:?}");
    assert!(err.to_string().contains(&wrong_key.display().to_string()), "{err}");

    let err = serve_err(ServeOptions { tls_cert_file: Some(cert.clone()), ..local(false) }).await;
    assert!(err.to_string().contains("--tls-private-key-file"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn probe_rendering_matches_the_kubernetes_format() {
    let ok = Check { name: "ping", failure: None, note: None };
    let bad = Check { name: "informer-sync", failure: Some("not yet"), note: None };
    assert_eq!(probe_response("readyz", &[ok], false), (StatusCode::OK, "ok".to_owned()));
    assert_eq!(probe_response("readyz", &[ok], true), (StatusCode::OK, "[+]ping ok\nreadyz check passed".to_owned()));
    assert_eq!(
        probe_response("readyz", &[ok, bad], false),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "[+]ping ok\n[-]informer-sync failed: not yet\nreadyz check failed".to_owned()
        )
    );
    assert!(is_verbose(Some("verbose")));
    assert!(is_verbose(Some("a=1&verbose=true")));
    assert!(!is_verbose(Some("verbosity=2")));
    assert!(!is_verbose(None));
}

#[test]
fn self_signed_names_cover_loopback_and_a_specific_bind_address() {
    assert_eq!(self_signed_names(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), ["localhost", "127.0.0.1"]);
    assert_eq!(self_signed_names("10.1.2.3".parse().expect("ip")), ["localhost", "127.0.0.1", "10.1.2.3"]);
}
