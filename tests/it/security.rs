//! TLS and SASL end to end: certificates made by the test (a CA, a server and a client
//! certificate, and an unrelated CA), Kafka's pre-authentication rules on the broker,
//! mutual TLS, KIP-368 re-authentication, the SCRAM user APIs, real third-party clients on
//! SASL_SSL with SCRAM-SHA-512, a mirror between two SASL_SSL clusters, and `tern run`
//! keeping passwords out of everything it prints or serves.

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
        let again = c.call(&SaslAuthenticateRequest::default(), 2).await;
        assert!(again.map(|r| r.error_code == 34).unwrap_or(true), "ILLEGAL_SASL_STATE or closed");
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
    let b = sasl_ssl_broker(&pki, &[("svc", "svc-pw")], Some(lifetime)).await;
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
    tokio::time::sleep(lifetime + Duration::from_millis(200)).await;
    assert!(!metadata_works(&mut raw).await, "a request on an expired session must be refused");
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
