//! TLS and SASL end to end: certificates made by the test (a CA, a server and a client
//! certificate, and an unrelated CA), Kafka's pre-authentication rules on the broker,
//! mutual TLS, KIP-368 re-authentication, the SCRAM user APIs, real third-party clients on
//! SASL_SSL with SCRAM-SHA-512, a mirror between two SASL_SSL clusters, `tern run` keeping
//! passwords out of everything it prints or serves, `tern broker`'s flags, and the client's
//! OAUTHBEARER token command against a stand-in server.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    alter_user_scram_credentials_request as alter, describe_user_scram_credentials_request as describe, AlterUserScramCredentialsRequest,
    ApiKey, ApiVersionsRequest, DescribeUserScramCredentialsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};
use tern_broker::{ListenerSecurity, SaslListener, TlsListener};
use tern_kafka::client::{Client, ClientConfig, Connection};
use tern_kafka::sasl::scram::ScramHash;
use tern_kafka::sasl::Mechanism;
use tern_kafka::security::{Connector, SaslCredential, SaslSettings, Secret, Security, TlsSettings};

use crate::helpers::*;

/// PEM files of a test PKI, removed with it.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here: trusting it alone must fail.
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("key");
    (params.self_signed(&key).expect("self-signed CA"), key)
}

impl Pki {
    pub fn generate() -> Pki {
        let dir = tempfile::tempdir().expect("dir");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write pem");
            path
        };
        let (ca_cert, ca_key) = ca("Tern test CA");
        let leaf = |cn: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.subject_alt_names = vec![
                SanType::DnsName("localhost".try_into().expect("dns name")),
                SanType::IpAddress(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            ];
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &ca_cert, &ca_key).expect("sign");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf("tern broker", ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) = leaf("tern client", ExtendedKeyUsagePurpose::ClientAuth);
        let other = ca("Unrelated CA").0.pem();
        Pki {
            ca: write("ca.pem", ca_cert.pem()),
            server_cert: write("server.pem", server_cert),
            server_key: write("server.key", server_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client.key", client_key),
            other_ca: write("other-ca.pem", other),
            dir,
        }
    }

    pub fn tls_listener(&self) -> TlsListener {
        TlsListener { cert_file: self.server_cert.clone(), key_file: self.server_key.clone(), client_ca_file: None }
    }

    pub fn client_tls(&self) -> TlsSettings {
        TlsSettings { ca_file: Some(self.ca.clone()), ..Default::default() }
    }

    /// A users file with these `user:password` entries.
    pub fn users_file(&self, users: &[(&str, &str)]) -> PathBuf {
        let path = self.dir.path().join(format!("users-{}.txt", unique_topic("u")));
        let text: String = users.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
        std::fs::write(&path, text).expect("users file");
        path
    }
}

/// A SASL_SSL broker with these users (all mechanisms enabled).
pub async fn sasl_ssl_broker(pki: &Pki, users: &[(&str, &str)], session_lifetime: Option<Duration>) -> TestBroker {
    let tls = pki.tls_listener();
    let users_file = pki.users_file(users);
    TestBroker::start_with(move |c| {
        c.security = ListenerSecurity {
            tls: Some(tls),
            sasl: Some(SaslListener { users_file: Some(users_file), session_lifetime, ..Default::default() }),
        }
    })
    .await
}

pub fn sasl(mechanism: Mechanism, user: &str, password: &str) -> SaslSettings {
    SaslSettings { mechanism, username: user.into(), credential: SaslCredential::Password(Secret::new(password)) }
}

fn connector(tls: Option<TlsSettings>, sasl: Option<SaslSettings>) -> Connector {
    Connector::new(&Security { tls, sasl }).expect("connector")
}

async fn metadata_works(c: &mut Connection) -> bool {
    c.call(&MetadataRequest::default().with_topics(None), 12).await.is_ok_and(|r| r.brokers.len() == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_listener_follows_kafkas_rules_before_and_during_authentication() {
    init_logs();
    let pki = Pki::generate();
    let b = sasl_ssl_broker(&pki, &[("alice", "alice-pw-1")], None).await;
    let addr = b.bootstrap();
    let tls_only = connector(Some(pki.client_tls()), None);

    // ApiVersions is answered before authentication, and advertises the SASL APIs.
    let mut c = Connection::connect_tls(&addr, &tls_only).await.expect("tls");
    let v = c.call(&ApiVersionsRequest::default(), 3).await.expect("api versions");
    for key in [ApiKey::SaslHandshake, ApiKey::SaslAuthenticate, ApiKey::DescribeUserScramCredentials, ApiKey::AlterUserScramCredentials] {
        assert!(v.api_keys.iter().any(|k| k.api_key == key as i16), "{key:?} advertised");
    }
    // Anything else before SaslHandshake closes the connection, as Kafka does.
    assert!(c.call(&MetadataRequest::default(), 12).await.is_err(), "metadata before authentication must be refused");

    // SaslAuthenticate before SaslHandshake: refused the same way.
    let mut c = Connection::connect_tls(&addr, &tls_only).await.expect("tls");
    assert!(c.call(&SaslAuthenticateRequest::default(), 2).await.is_err());

    // A mechanism the listener does not have: UNSUPPORTED_SASL_MECHANISM with the enabled list.
    let mut c = Connection::connect_tls(&addr, &tls_only).await.expect("tls");
    let hs = c.call(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")), 1).await.expect("handshake");
    assert_eq!(hs.error_code, 33);
    let offered: Vec<String> = hs.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(offered, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);

    // Wrong password and unknown user: SASL_AUTHENTICATION_FAILED (58) with Kafka's message,
    // at once, and the same message for both (no user enumeration).
    for (mechanism, user, password) in [
        (Mechanism::ScramSha512, "alice", "wrong"),
        (Mechanism::ScramSha256, "alice", "wrong"),
        (Mechanism::Plain, "alice", "wrong"),
        (Mechanism::ScramSha512, "mallory", "alice-pw-1"),
    ] {
        let started = Instant::now();
        let mut c = Connection::connect_tls(&addr, &tls_only).await.expect("tls");
        let e = c.authenticate(&sasl(mechanism, user, password)).await.expect_err("wrong credentials").to_string();
        assert!(
            e.contains("error code 58") && e.contains(&format!("invalid credentials with SASL mechanism {mechanism}")),
            "{mechanism} {user}: {e}"
        );
        assert!(!e.contains(password), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5), "failed authentication took {:?}", started.elapsed());
        assert!(!metadata_works(&mut c).await, "the connection is closed after a failed authentication");
    }

    // The right password with every mechanism: then the connection serves requests.
    for mechanism in [Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512] {
        let mut c = Connection::connect_with(&addr, &connector(Some(pki.client_tls()), Some(sasl(mechanism, "alice", "alice-pw-1"))))
            .await
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        assert!(metadata_works(&mut c).await, "{mechanism}");
        // A second SaslAuthenticate after success is out of sequence.
        let again = c.call(&SaslAuthenticateRequest::default(), 2).await.expect("an answer before the connection closes");
        assert_eq!(again.error_code, 34, "{mechanism}: ILLEGAL_SASL_STATE");
    }

    // TLS failures are errors, not hangs: an untrusted CA, a wrong name, plaintext to TLS.
    let untrusted = Connector::new(&Security { tls: Some(TlsSettings { ca_file: Some(pki.other_ca.clone()), ..Default::default() }), sasl: None }).expect("connector");
    let e = Connection::connect_tls(&addr, &untrusted).await.err().expect("untrusted CA").to_string();
    assert!(e.contains("TLS") && e.to_lowercase().contains("certificate"), "{e}");
    let wrong_name = connector(Some(TlsSettings { server_name: Some("broker.example.com".into()), ..pki.client_tls() }), None);
    let e = Connection::connect_tls(&addr, &wrong_name).await.err().expect("wrong name").to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    let started = Instant::now();
    let plain = BrokerConnectionAttempt::plaintext(&addr).await;
    assert!(plain.is_err() && started.elapsed() < Duration::from_secs(15), "plaintext to a TLS listener: {plain:?} after {:?}", started.elapsed());
    // The explicit insecure switch accepts the certificate anyway.
    let insecure = connector(Some(TlsSettings { ca_file: Some(pki.other_ca.clone()), insecure_skip_verify: true, ..Default::default() }), Some(sasl(Mechanism::ScramSha512, "alice", "alice-pw-1")));
    let mut c = Connection::connect_with(&addr, &insecure).await.expect("insecure_skip_verify connects");
    assert!(metadata_works(&mut c).await);
}

/// A plaintext Kafka client against a TLS port, bounded by a short request timeout.
struct BrokerConnectionAttempt;

impl BrokerConnectionAttempt {
    async fn plaintext(addr: &str) -> Result<(), String> {
        tern_kafka::client::BrokerConnection::connect(addr, "plain", Duration::from_secs(10)).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_signed_by_the_ca() {
    init_logs();
    let pki = Pki::generate();
    let tls = TlsListener { client_ca_file: Some(pki.ca.clone()), ..pki.tls_listener() };
    let b = TestBroker::start_with(move |c| c.security = ListenerSecurity { tls: Some(tls), sasl: None }).await;
    let config = |tls: TlsSettings| {
        let mut c = ClientConfig::new(&b.bootstrap());
        c.request_timeout = Duration::from_secs(10);
        c.retry_deadline = Duration::from_secs(1);
        c.security = Security { tls: Some(tls), sasl: None };
        c
    };
    let without = Client::connect(config(pki.client_tls())).await;
    assert!(without.is_err(), "a client without a certificate must be refused");
    let with = TlsSettings { cert_file: Some(pki.client_cert.clone()), key_file: Some(pki.client_key.clone()), ..pki.client_tls() };
    let client = Client::connect(config(with)).await.expect("client certificate accepted");
    assert_eq!(client.metadata_snapshot().brokers.len(), 1);
    let half = TlsSettings { cert_file: Some(pki.client_cert.clone()), ..pki.client_tls() };
    let e = Client::connect(config(half)).await.err().expect("cert without key").to_string();
    assert!(e.contains("key"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_re_authenticate_before_the_brokers_lifetime_ends() {
    init_logs();
    let pki = Pki::generate();
    let lifetime = Duration::from_millis(1500);
    let b = sasl_ssl_broker(&pki, &[("svc", "svc-pw"), ("other", "other-pw")], Some(lifetime)).await;
    let mut config = ClientConfig::new(&b.bootstrap());
    config.security = Security { tls: Some(pki.client_tls()), sasl: Some(sasl(Mechanism::ScramSha512, "svc", "svc-pw")) };
    let client = Client::connect(config).await.expect("connect");
    let conn = client.connection(&b.bootstrap()).await.expect("connection");
    // Requests for 3.5 lifetimes on one connection: each is served, because the client renews
    // its session in time (the broker would close the connection otherwise).
    let deadline = Instant::now() + lifetime.mul_f64(3.5);
    let mut requests = 0;
    while Instant::now() < deadline {
        let r = conn.call(&MetadataRequest::default().with_topics(None), 12).await;
        assert!(r.is_ok(), "request {requests} failed: {r:?}");
        requests += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!conn.is_closed());
    assert!(conn.reauthentications() >= 3, "{} re-authentications in {requests} requests", conn.reauthentications());
    println!("{requests} requests over {:?}, {} re-authentications", lifetime.mul_f64(3.5), conn.reauthentications());

    // A client that does not renew: the broker tells it the lifetime, then closes the
    // connection on the first request after it.
    let mut raw = Connection::connect_tls(&b.bootstrap(), &connector(Some(pki.client_tls()), None)).await.expect("tls");
    let granted = raw.authenticate(&sasl(Mechanism::ScramSha256, "svc", "svc-pw")).await.expect("auth");
    assert_eq!(granted, 1500);
    assert!(metadata_works(&mut raw).await);
    // Re-authentication in place (a new SaslHandshake on the authenticated connection) must
    // keep the user: switching to another one is refused and closes the connection.
    let mut switch = Connection::connect_with(&b.bootstrap(), &connector(Some(pki.client_tls()), Some(sasl(Mechanism::ScramSha256, "svc", "svc-pw")))).await.expect("svc");
    assert_eq!(switch.authenticate(&sasl(Mechanism::ScramSha256, "svc", "svc-pw")).await.expect("same user again"), 1500);
    let e = switch.authenticate(&sasl(Mechanism::ScramSha256, "other", "other-pw")).await.expect_err("another user").to_string();
    assert!(e.contains("Cannot change principals"), "{e}");
    tokio::time::sleep(lifetime + Duration::from_millis(200)).await;
    assert!(!metadata_works(&mut raw).await, "a request on an expired session must be refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_rotated_in_its_file_is_used_without_a_restart() {
    init_logs();
    let pki = Pki::generate();
    let lifetime = Duration::from_millis(1500);
    let b = sasl_ssl_broker(&pki, &[("admin", "admin-pw")], Some(lifetime)).await;
    // svc is managed through the SCRAM API, as on a Kafka cluster.
    let admin = connector(Some(pki.client_tls()), Some(sasl(Mechanism::ScramSha512, "admin", "admin-pw")));
    let mut a = Connection::connect_with(&b.bootstrap(), &admin).await.expect("admin");
    let resp = a.call(&AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert("svc", ScramHash::Sha512, "old-pw", 4096)]), 0).await.expect("create svc");
    assert_eq!(resp.results[0].error_code, 0);
    // A user of the broker's users file cannot be changed through the API (the file wins).
    let resp = a.call(&AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert("admin", ScramHash::Sha512, "other", 4096)]), 0).await.expect("alter a file user");
    assert_eq!(resp.results[0].error_code, 93, "{:?}", resp.results[0].error_message);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("svc-password");
    std::fs::write(&file, "old-pw\n").expect("write");
    let settings = SaslSettings { mechanism: Mechanism::ScramSha512, username: "svc".into(), credential: SaslCredential::SecretFile(file.clone()) };
    let mut config = ClientConfig::new(&b.bootstrap());
    config.security = Security { tls: Some(pki.client_tls()), sasl: Some(settings) };
    let client = Client::connect(config).await.expect("connect with the old password");
    let conn = client.connection(&b.bootstrap()).await.expect("connection");
    assert!(conn.call(&MetadataRequest::default().with_topics(None), 12).await.is_ok());

    // The broker's credential is rotated, then the file: the live connection re-authenticates
    // with the new password when its session ends, and keeps serving requests.
    let resp = a.call(&AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert("svc", ScramHash::Sha512, "new-pw", 4096)]), 0).await.expect("rotate");
    assert_eq!(resp.results[0].error_code, 0);
    std::fs::write(&file, "new-pw\n").expect("rotate the file");
    let before = conn.reauthentications();
    let deadline = Instant::now() + lifetime.mul_f64(2.5);
    while Instant::now() < deadline {
        let r = conn.call(&MetadataRequest::default().with_topics(None), 12).await;
        assert!(r.is_ok(), "a request after the rotation failed: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(conn.reauthentications() >= before + 2, "re-authenticated {} times", conn.reauthentications() - before);
    // The old password no longer works; a new connection reads the new one from the file.
    assert!(Connection::connect_with(&b.bootstrap(), &connector(Some(pki.client_tls()), Some(sasl(Mechanism::ScramSha512, "svc", "old-pw")))).await.is_err());
    let mut config = ClientConfig::new(&b.bootstrap());
    config.security = Security {
        tls: Some(pki.client_tls()),
        sasl: Some(SaslSettings { mechanism: Mechanism::ScramSha512, username: "svc".into(), credential: SaslCredential::SecretFile(file.clone()) }),
    };
    assert!(Client::connect(config).await.is_ok(), "a new client reads the rotated password");
}

fn upsert(user: &str, hash: ScramHash, password: &str, iterations: i32) -> alter::ScramCredentialUpsertion {
    let salt = format!("salt-of-{user}").into_bytes();
    let salted = hash.salted_password(password.as_bytes(), &salt, iterations as u32);
    alter::ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(user.into()))
        .with_mechanism(hash.kafka_type())
        .with_iterations(iterations)
        .with_salt(salt.into())
        .with_salted_password(salted.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_users_created_through_the_api_authenticate_and_survive_a_restart() {
    init_logs();
    let pki = Pki::generate();
    let mut b = sasl_ssl_broker(&pki, &[("admin", "admin-pw")], None).await;
    let admin = connector(Some(pki.client_tls()), Some(sasl(Mechanism::ScramSha512, "admin", "admin-pw")));
    let mut c = Connection::connect_with(&b.bootstrap(), &admin).await.expect("admin");
    let resp = c
        .call(
            &AlterUserScramCredentialsRequest::default()
                .with_upsertions(vec![upsert("bob", ScramHash::Sha256, "bob-pw", 8192), upsert("carol", ScramHash::Sha512, "carol-pw", 100)])
                .with_deletions(vec![alter::ScramCredentialDeletion::default().with_name(StrBytes::from_static_str("nobody")).with_mechanism(1)]),
            0,
        )
        .await
        .expect("alter");
    let codes: Vec<(String, i16)> = resp.results.iter().map(|r| (r.user.to_string(), r.error_code)).collect();
    // carol: too few iterations (UNACCEPTABLE_CREDENTIAL); nobody: RESOURCE_NOT_FOUND.
    assert_eq!(codes, [("bob".to_string(), 0), ("carol".to_string(), 93), ("nobody".to_string(), 91)]);

    let described = c
        .call(&DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            describe::UserName::default().with_name(StrBytes::from_static_str("bob")),
            describe::UserName::default().with_name(StrBytes::from_static_str("carol")),
        ])), 0)
        .await
        .expect("describe");
    let bob = &described.results[0];
    assert_eq!((bob.user.as_str(), bob.error_code, bob.credential_infos.len()), ("bob", 0, 1));
    assert_eq!((bob.credential_infos[0].mechanism, bob.credential_infos[0].iterations), (1, 8192));
    assert_eq!(described.results[1].error_code, 91, "carol was not created");
    let all = c.call(&DescribeUserScramCredentialsRequest::default().with_users(None), 0).await.expect("describe all");
    let names: Vec<&str> = all.results.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(names, ["admin", "bob"]);

    let as_bob = |m| connector(Some(pki.client_tls()), Some(sasl(m, "bob", "bob-pw")));
    assert!(Connection::connect_with(&b.bootstrap(), &as_bob(Mechanism::ScramSha256)).await.is_ok());
    assert!(Connection::connect_with(&b.bootstrap(), &as_bob(Mechanism::ScramSha512)).await.is_err(), "bob has no SHA-512 credential");

    b.restart().await;
    let mut bob = Connection::connect_with(&b.bootstrap(), &as_bob(Mechanism::ScramSha256)).await.expect("bob after restart");
    assert!(metadata_works(&mut bob).await);
    let text = std::fs::read_to_string(b._dir.path().join("scram-credentials.json")).expect("credentials file");
    assert!(!text.contains("bob-pw") && !text.contains("admin-pw"), "no password at rest");

    let mut c = Connection::connect_with(&b.bootstrap(), &admin).await.expect("admin");
    let resp = c
        .call(&AlterUserScramCredentialsRequest::default().with_deletions(vec![alter::ScramCredentialDeletion::default().with_name(StrBytes::from_static_str("bob")).with_mechanism(1)]), 0)
        .await
        .expect("delete");
    assert_eq!(resp.results[0].error_code, 0);
    assert!(Connection::connect_with(&b.bootstrap(), &as_bob(Mechanism::ScramSha256)).await.is_err(), "deleted");
}

async fn run_secure_python(script: &str) {
    init_logs();
    let pki = Pki::generate();
    let b = sasl_ssl_broker(&pki, &[("app", "app-Pa55word")], None).await;
    let mut cmd = Command::new(python());
    cmd.arg(compat_script(script))
        .args(["--bootstrap", &b.bootstrap(), "--ca", pki.ca.to_str().expect("path"), "--user", "app", "--mechanism", "SCRAM-SHA-512"])
        .env("TERN_SASL_PASSWORD", "app-Pa55word")
        .env("TERN_SASL_WRONG_PASSWORD", "not-the-password");
    let out = run_client(cmd, Duration::from_secs(300)).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1000 records over SASL_SSL/SCRAM-SHA-512"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_sasl_ssl_scram_sha_512_and_a_wrong_password() {
    run_secure_python("confluent_sasl_ssl.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_sasl_ssl_scram_sha_512_and_a_wrong_password() {
    run_secure_python("kafka_python_sasl_ssl.py").await;
}

/// Every record of a partition as (offset, key, value), over an authenticated connection;
/// none while the topic does not exist.
async fn secure_records(addr: &str, connector: &Connector, topic: &str, partition: i32) -> Vec<(i64, Option<bytes::Bytes>, Option<bytes::Bytes>)> {
    let mut c = Connection::connect_with(addr, connector).await.expect("connect");
    crate::offsets::records_on(&mut c, topic, partition).await
}

/// Two SASL_SSL clusters and the `tern.toml` of a flow between them: the source with
/// SCRAM-SHA-512 and its password in `src_password` (a `password_env` or `password_file`
/// line), the target with SCRAM-SHA-256 and a password file.
struct SecurePair {
    pki: Pki,
    src: TestBroker,
    dst: TestBroker,
}

const SRC_PASSWORD: &str = "src-M1rror-secret";
const DST_PASSWORD: &str = "dst-M1rror-secret";

impl SecurePair {
    async fn start() -> SecurePair {
        let pki = Pki::generate();
        let src = sasl_ssl_broker(&pki, &[("mirror", SRC_PASSWORD), ("app", "app-pw")], None).await;
        let dst = sasl_ssl_broker(&pki, &[("mirror", DST_PASSWORD), ("app", "app-pw")], None).await;
        SecurePair { pki, src, dst }
    }

    fn toml(&self, src_password: &str, extra: &str) -> String {
        let dst_file = self.pki.dir.path().join("dst-password");
        std::fs::write(&dst_file, format!("{DST_PASSWORD}\n")).expect("password file");
        let ca = self.pki.ca.display();
        format!(
            r#"[clusters.src]
bootstrap = "{src}"
security_protocol = "SASL_SSL"
[clusters.src.tls]
ca_file = "{ca}"
[clusters.src.sasl]
mechanism = "SCRAM-SHA-512"
username = "mirror"
{src_password}

[clusters.dst]
bootstrap = "{dst}"
[clusters.dst.tls]
ca_file = "{ca}"
[clusters.dst.sasl]
mechanism = "SCRAM-SHA-256"
username = "mirror"
password_file = "{dst_file}"

[[flows]]
source = "src"
target = "dst"
topics = ["orders"]
checkpoint_interval = "500ms"

[mirror]
topic_refresh_interval = "500ms"
fetch_max_wait = "200ms"
{extra}"#,
            src = self.src.bootstrap(),
            dst = self.dst.bootstrap(),
            dst_file = dst_file.display(),
        )
    }

    fn app(&self) -> Connector {
        connector(Some(self.pki.client_tls()), Some(sasl(Mechanism::ScramSha512, "app", "app-pw")))
    }

    async fn client(&self, bootstrap: &str) -> Client {
        let mut config = ClientConfig::new(bootstrap);
        config.security = Security { tls: Some(self.pki.client_tls()), sasl: Some(sasl(Mechanism::ScramSha512, "app", "app-pw")) };
        Client::connect(config).await.expect("secure client")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_replicates_and_translates_offsets_between_sasl_ssl_clusters() {
    init_logs();
    let pair = SecurePair::start().await;
    let password_file = pair.pki.dir.path().join("src-password");
    std::fs::write(&password_file, SRC_PASSWORD).expect("password file");
    let toml = pair.toml(&format!("password_file = \"{}\"", password_file.display()), "");
    let source = pair.client(&pair.src.bootstrap()).await;
    let target = pair.client(&pair.dst.bootstrap()).await;
    assert!(source.create_topic("orders", 2, &Default::default()).await.expect("create"));
    let mut produced = 0;
    for batch in 0..6 {
        for p in 0..2 {
            source.produce("orders", p, crate::mirror::varied_batch(p, batch, 50), -1, 5000).await.expect("produce");
            produced += 50;
        }
    }
    let mirror = crate::mirror::TestMirror::start(&toml);
    let app = pair.app();
    for p in 0..2 {
        let want = secure_records(&pair.src.bootstrap(), &app, "orders", p).await;
        wait_until(Duration::from_secs(60), &format!("src.orders/{p} replicated"), async || {
            (secure_records(&pair.dst.bootstrap(), &app, "src.orders", p).await == want).then_some(())
        })
        .await;
    }
    println!("{produced} records replicated over SASL_SSL, identical per partition");

    // A group committed mid-way on the source resumes on the target exactly where it left off.
    let committed = 117;
    let offsets = std::collections::BTreeMap::from([(("orders".to_string(), 0), committed)]);
    source.commit_offsets("g-secure", &tern_kafka::client::Membership::none(), &offsets).await.expect("commit");
    let rest = |records: Vec<(i64, Option<bytes::Bytes>, Option<bytes::Bytes>)>, from: i64| -> Vec<(Option<bytes::Bytes>, Option<bytes::Bytes>)> {
        records.into_iter().filter(|r| r.0 >= from).map(|r| (r.1, r.2)).collect()
    };
    let source_rest = rest(secure_records(&pair.src.bootstrap(), &app, "orders", 0).await, committed);
    // A checkpoint pass that began before the commit translates with the map it had then, and
    // syncs the group no further than what was replicated at that time; the next pass moves it
    // on. The group must end at the exact translation.
    let status = mirror.status["src->dst"].clone();
    let synced = wait_until(Duration::from_secs(60), "g-secure synced onto the target at its exact translation", async || {
        let g = status.snapshot().groups.get(&("g-secure".to_string(), ("orders".to_string(), 0))).cloned()?;
        let tern_mirror::offset_map::Translation::Exact(t) = g.translation else { return None };
        let synced = target.all_committed_offsets("g-secure").await.ok()?.get(&("src.orders".to_string(), 0)).copied()?;
        (synced == t).then_some(synced)
    })
    .await;
    let target_rest = rest(secure_records(&pair.dst.bootstrap(), &app, "src.orders", 0).await, synced);
    assert_eq!(target_rest, source_rest, "committed {committed} on the source, synced {synced} on the target");
    println!("g-secure: source {committed} -> target {synced}, {} records left to read", source_rest.len());
    mirror.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tern_run_keeps_passwords_out_of_logs_metrics_and_the_api() {
    init_logs();
    let pair = SecurePair::start().await;
    let env_var = format!("TERN_IT_SRC_PASSWORD_{}", std::process::id());
    let toml = pair.toml(&format!("password_env = \"{env_var}\""), "\n[web]\nlisten = \"127.0.0.1:0\"\n");
    let config = pair.pki.dir.path().join("tern.toml");
    std::fs::write(&config, &toml).expect("config");
    let source = pair.client(&pair.src.bootstrap()).await;
    assert!(source.create_topic("orders", 1, &Default::default()).await.expect("create"));
    source.produce("orders", 0, crate::mirror::varied_batch(0, 0, 100), -1, 5000).await.expect("produce");

    // The most talkative log level, so that anything printing a setting would show.
    let mut child = Command::new(tern_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "debug")
        .env(&env_var, SRC_PASSWORD)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tern run");
    let log: std::sync::Arc<std::sync::Mutex<String>> = Default::default();
    let readers: Vec<_> = [child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)]
        .into_iter()
        .flatten()
        .map(|stream| {
            let sink = log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = sink.lock().expect("log");
                    l.push_str(&line);
                    l.push('\n');
                }
            })
        })
        .collect();
    let web = wait_until(Duration::from_secs(30), "the web listener's address in the log", async || {
        let l = log.lock().expect("log");
        let rest = l.split(" on http://").nth(1)?;
        Some(rest.split_whitespace().next()?.trim_end_matches(|c: char| !c.is_ascii_digit()).to_string())
    })
    .await;
    let app = pair.app();
    let want = secure_records(&pair.src.bootstrap(), &app, "orders", 0).await;
    wait_until(Duration::from_secs(60), "the flow to replicate over SASL_SSL", async || {
        (secure_records(&pair.dst.bootstrap(), &app, "src.orders", 0).await == want).then_some(())
    })
    .await;
    let mut served = String::new();
    // Every page and API answer a GET serves without a login.
    for path in [
        "/metrics",
        "/healthz",
        "/api/v1/flows",
        "/api/v1/flows/src-%3Edst",
        "/api/v1/topology",
        "/api/v1/clusters",
        "/api/v1/topics",
        "/api/v1/groups",
        "/api/v1/drills",
        "/",
        "/flows",
        "/flows/src-%3Edst",
        "/topics",
        "/groups",
        "/drills",
    ] {
        let page = http_get(&web, path).await;
        assert!(page.starts_with("HTTP/1.1 200"), "{path}: {page}");
        served += &page;
    }
    assert!(served.contains("src->dst"), "the API shows the flow:\n{served}");

    // `tern check` with the right and with a wrong password.
    let check = |password: &str| {
        let out = Command::new(tern_bin()).args(["check", "--config"]).arg(&config).env("RUST_LOG", "debug").env(&env_var, password).output().expect("tern check");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let (ok, good_check) = check(SRC_PASSWORD);
    assert!(ok && good_check.contains("cluster src: reachable"), "{good_check}");
    let wrong = "Wr0ng-guess-of-the-password";
    let (ok, bad_check) = check(wrong);
    assert!(!ok && bad_check.contains("invalid credentials with SASL mechanism SCRAM-SHA-512"), "{bad_check}");
    assert!(!bad_check.contains(wrong), "{bad_check}");

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let stopped = wait_until(Duration::from_secs(20), "tern run to stop", async || child.try_wait().ok().flatten()).await;
    assert!(stopped.success(), "tern run exit: {stopped}");
    for r in readers {
        let _ = r.join();
    }
    let log = log.lock().expect("log").clone();
    assert!(log.contains("starting") && log.contains("authenticated"), "the log is the debug log of a working run:\n{log}");
    for (what, text) in [("tern run's log", &log), ("the web endpoints", &served), ("tern check", &good_check), ("tern check (wrong password)", &bad_check)] {
        for secret in [SRC_PASSWORD, DST_PASSWORD, "app-pw"] {
            assert!(!text.contains(secret), "{what} shows a password");
        }
    }
    println!("{} log lines, {} bytes of pages, API answers, /metrics and /healthz: no password", log.lines().count(), served.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tern_broker_flags_start_a_sasl_ssl_listener_and_refuse_contradictions() {
    use std::io::BufRead;
    let pki = Pki::generate();
    let users = pki.users_file(&[("cli", "cli-pw")]);
    let data = pki.dir.path().join("data");
    let path = |p: &PathBuf| p.to_str().expect("path").to_string();
    let mut child = Command::new(tern_bin())
        .args(["broker", "--listen", "127.0.0.1:0", "--data", &path(&data)])
        .args(["--tls-cert", &path(&pki.server_cert), "--tls-key", &path(&pki.server_key), "--sasl-users", &path(&users)])
        .args(["--sasl-mechanisms", "SCRAM-SHA-512", "--sasl-session-lifetime-ms", "60000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tern broker");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address line");
    let addr = line.trim().rsplit(' ').next().expect("address").to_string();
    let result = async {
        let mut c = Connection::connect_with(&addr, &connector(Some(pki.client_tls()), Some(sasl(Mechanism::ScramSha512, "cli", "cli-pw")))).await?;
        let ok = metadata_works(&mut c).await;
        let plain = Connection::connect_with(&addr, &connector(Some(pki.client_tls()), Some(sasl(Mechanism::Plain, "cli", "cli-pw")))).await;
        Ok::<_, tern_kafka::Error>((ok, plain.err().map(|e| e.to_string())))
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let (ok, plain) = result.expect("SCRAM-SHA-512 over TLS");
    assert!(ok, "metadata after authentication");
    assert!(plain.as_deref().is_some_and(|e| e.contains("UnsupportedSaslMechanism")), "PLAIN is not enabled: {plain:?}");

    for (args, want) in [
        (vec!["--security-protocol", "SSL"], "needs --tls-cert and --tls-key"),
        (vec!["--sasl-users", "users.txt", "--security-protocol", "SSL", "--tls-cert", "a", "--tls-key", "b"], "--sasl-users needs"),
        (vec!["--tls-cert", "a", "--security-protocol", "PLAINTEXT"], "need --security-protocol SSL or SASL_SSL"),
        (vec!["--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanisms", "GSSAPI"], "--sasl-mechanisms"),
        (vec!["--security-protocol", "TLS"], "--security-protocol"),
    ] {
        let out = Command::new(tern_bin()).args(["broker", "--listen", "127.0.0.1:0", "--data", &path(&data)]).args(&args).output().expect("tern broker");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && text.contains(want), "{args:?}: {text}");
    }
}

/// A stand-in OAUTHBEARER broker (Tern's broker offers PLAIN and SCRAM only): it answers
/// ApiVersions, SaslHandshake, SaslAuthenticate (tokens starting with `good-` pass, with a
/// session lifetime of `lifetime_ms`) and Metadata, and records every token it received.
async fn oauth_stand_in(lifetime_ms: i64) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataResponse, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse};
    use tern_kafka::connection::{write_frame, FrameReader};
    use tern_kafka::frame;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let tokens: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let seen = tokens.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.into_split();
                let mut frames = FrameReader::new(1 << 20);
                while let Ok(Some(mut f)) = frames.read_frame(&mut rd).await {
                    let Ok(prefix) = frame::peek_request_prefix(&f) else { return };
                    let Ok(key) = ApiKey::try_from(prefix.api_key) else { return };
                    let Ok(header) = frame::decode_request_header(key, &mut f) else { return };
                    let Ok(body) = frame::decode_request_body(key, header.request_api_version, &mut f) else { return };
                    let response = match body {
                        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(
                            [(ApiKey::ApiVersions, 0, 3), (ApiKey::SaslHandshake, 1, 1), (ApiKey::SaslAuthenticate, 0, 2), (ApiKey::Metadata, 12, 12)]
                                .into_iter()
                                .map(|(k, min, max)| ApiVersion::default().with_api_key(k as i16).with_min_version(min).with_max_version(max))
                                .collect(),
                        )),
                        RequestKind::SaslHandshake(r) => ResponseKind::SaslHandshake(
                            SaslHandshakeResponse::default()
                                .with_error_code(if r.mechanism.as_str() == "OAUTHBEARER" { 0 } else { 33 })
                                .with_mechanisms(vec![StrBytes::from_static_str("OAUTHBEARER")]),
                        ),
                        RequestKind::SaslAuthenticate(r) => {
                            let token = tern_kafka::sasl::oauthbearer::parse_client_message(&r.auth_bytes).unwrap_or_default();
                            seen.lock().expect("tokens").push(token.clone());
                            let resp = if token.starts_with("good-") {
                                SaslAuthenticateResponse::default().with_session_lifetime_ms(lifetime_ms)
                            } else {
                                SaslAuthenticateResponse::default().with_error_code(58).with_error_message(Some(StrBytes::from_static_str("invalid token")))
                            };
                            ResponseKind::SaslAuthenticate(resp)
                        }
                        RequestKind::Metadata(_) => ResponseKind::Metadata(MetadataResponse::default()),
                        _ => return,
                    };
                    let Ok(bytes) = frame::encode_response(header.correlation_id, key, header.request_api_version, &response) else { return };
                    if write_frame(&mut wr, &bytes).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_tokens_come_from_the_command_at_every_authentication() {
    init_logs();
    let (addr, tokens) = oauth_stand_in(600).await;
    let dir = tempfile::tempdir().expect("dir");
    let counter = dir.path().join("n");
    // Prints good-token-1, good-token-2, ...: a fresh token per run, as a token helper would.
    let command = format!("n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo good-token-$n", c = counter.display());
    let settings = SaslSettings { mechanism: Mechanism::OAuthBearer, username: String::new(), credential: SaslCredential::TokenCommand(command) };
    let conn = tern_kafka::client::BrokerConnection::connect_with(&addr, "oauth", Duration::from_secs(10), &connector(None, Some(settings)))
        .await
        .expect("OAUTHBEARER connection");
    let until = Instant::now() + Duration::from_millis(1800);
    while Instant::now() < until {
        conn.call(&MetadataRequest::default(), 12).await.expect("metadata");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = tokens.lock().expect("tokens").clone();
    assert!(seen.len() >= 3 && conn.reauthentications() as usize == seen.len() - 1, "{seen:?}, {} re-authentications", conn.reauthentications());
    assert!(seen.iter().enumerate().all(|(i, t)| *t == format!("good-token-{}", i + 1)), "each authentication ran the command: {seen:?}");

    let static_bad = SaslSettings { mechanism: Mechanism::OAuthBearer, username: String::new(), credential: SaslCredential::Token(Secret::new("expired-token")) };
    let e = tern_kafka::client::BrokerConnection::connect_with(&addr, "oauth", Duration::from_secs(10), &connector(None, Some(static_bad)))
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("invalid token") && !e.contains("expired-token"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_authentication_only_small_frames_are_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init_logs();
    let pki = Pki::generate();
    let b = sasl_ssl_broker(&pki, &[("svc", "svc-pw")], None).await;
    // An anonymous peer announces a 1 MiB frame: the broker closes instead of buffering it.
    let mut raw = connector(Some(pki.client_tls()), None).connect(&b.bootstrap(), Duration::from_secs(10)).await.expect("tls");
    raw.write_all(&(1_048_576i32).to_be_bytes()).await.expect("write");
    raw.write_all(&[0u8; 1024]).await.expect("write");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf)).await.expect("the broker answers in time");
    assert!(matches!(read, Ok(0) | Err(_)), "the connection is closed: {read:?}");
    // After authentication the usual limit applies: a 900 KiB produce request is read.
    let mut c = Connection::connect_with(&b.bootstrap(), &connector(Some(pki.client_tls()), Some(sasl(Mechanism::ScramSha512, "svc", "svc-pw")))).await.expect("svc");
    let admin = Client::connect({
        let mut config = ClientConfig::new(&b.bootstrap());
        config.security = Security { tls: Some(pki.client_tls()), sasl: Some(sasl(Mechanism::ScramSha512, "svc", "svc-pw")) };
        config
    })
    .await
    .expect("client");
    admin.create_topic("big", 1, &Default::default()).await.expect("create");
    let value = bytes::Bytes::from(vec![7u8; 900 * 1024]);
    let batch = tern_kafka::records::encode_batch(&[tern_kafka::records::PlainRecord::new("k", Some(value), 0)], kafka_protocol::records::Compression::None).expect("batch");
    let resp = c.call(&crate::protocol::produce_request("big", 0, batch, -1), 9).await.expect("a 900 KiB request after authentication");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
}
