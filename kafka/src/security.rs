//! How a client reaches a broker: TCP, optionally TLS (rustls with the ring provider), then
//! optionally SASL. [`Security`] is what a user configures; [`Connector`] is it prepared once
//! (certificates read, roots loaded) and used for every connection a client opens.
//!
//! Secrets are held in [`Secret`], whose `Debug` prints no more than that there is one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::sasl::{oauthbearer, plain, scram, Mechanism, SaslError};

/// A password or token. Printing it with `{:?}` shows `Secret(***)`; it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(format!("unknown security protocol {s:?} (known: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)")),
        }
    }
}

/// TLS settings of a client.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// PEM file of the CA certificates to trust; the operating system's store when `None`.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain and private key presented to the broker (mutual TLS).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name checked against the broker's certificate instead of the host being dialled.
    pub server_name: Option<String>,
    /// Accept any server certificate. Only for tests and emergencies: it logs a warning.
    pub insecure_skip_verify: bool,
}

/// What proves the client's identity in SASL.
#[derive(Debug, Clone)]
pub enum SaslCredential {
    /// PLAIN and SCRAM.
    Password(Secret),
    /// OAUTHBEARER with a fixed token.
    Token(Secret),
    /// OAUTHBEARER with a token printed by this shell command, run for every authentication
    /// (so a refreshed token is picked up when a session is re-authenticated).
    TokenCommand(String),
    /// The password (PLAIN, SCRAM) or token (OAUTHBEARER) in this file, read for every
    /// authentication: a rotated secret is used by the next connection and the next
    /// re-authentication without a restart. A trailing newline is ignored.
    SecretFile(std::path::PathBuf),
}

#[derive(Debug, Clone)]
pub struct SaslSettings {
    pub mechanism: Mechanism,
    /// Empty for OAUTHBEARER.
    pub username: String,
    pub credential: SaslCredential,
}

/// TLS and SASL settings of a client; the default is plaintext without authentication.
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub tls: Option<TlsSettings>,
    pub sasl: Option<SaslSettings>,
}

/// A byte stream to a broker, TCP or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
pub type BoxStream = Box<dyn Stream>;

/// [`Security`] prepared for opening connections.
#[derive(Clone)]
pub struct Connector {
    tls: Option<(tokio_rustls::TlsConnector, Option<String>)>,
    sasl: Option<SaslSettings>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").field("tls", &self.tls.is_some()).field("sasl", &self.sasl).finish()
    }
}

impl Connector {
    pub fn plaintext() -> Connector {
        Connector { tls: None, sasl: None }
    }

    /// Reads certificates and keys; errors name the file.
    pub fn new(security: &Security) -> Result<Connector> {
        let tls = match &security.tls {
            Some(t) => Some((tokio_rustls::TlsConnector::from(Arc::new(client_tls_config(t)?)), t.server_name.clone())),
            None => None,
        };
        Ok(Connector { tls, sasl: security.sasl.clone() })
    }

    pub fn sasl(&self) -> Option<&SaslSettings> {
        self.sasl.as_ref()
    }

    /// TCP, then the TLS handshake if configured, both within `timeout`.
    pub async fn connect(&self, addr: &str, timeout: Duration) -> Result<BoxStream> {
        let work = async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let Some((tls, server_name)) = &self.tls else {
                return Ok(Box::new(tcp) as BoxStream);
            };
            let host = match server_name {
                Some(n) => n.clone(),
                None => host_of(addr).to_string(),
            };
            let name = ServerName::try_from(host.clone()).map_err(|e| Error::Tls(format!("{host:?} is not a valid TLS server name: {e}")))?;
            let stream = tls.connect(name, tcp).await.map_err(|e| match e.kind() {
                // rustls reports certificate and protocol failures as InvalidData: retrying
                // cannot help. Anything else is the connection failing, which may pass.
                std::io::ErrorKind::InvalidData => Error::Tls(format!("TLS handshake with {addr}: {e}")),
                _ => Error::Io(e),
            })?;
            Ok(Box::new(stream) as BoxStream)
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| Error::Timeout(format!("connecting to {addr}")))?
    }
}

/// `host` of `host:port` (IPv6 without brackets).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificates of a PEM file, at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Config(format!("reading certificates from {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("{}: no PEM certificate in the file", path.display())));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::Config(format!("reading a private key from {}: {e}", path.display())))
}

fn client_tls_config(t: &TlsSettings) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = if t.insecure_skip_verify {
        tracing::warn!("TLS certificate verification is switched off (insecure_skip_verify): the connection is encrypted but the broker is not authenticated");
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &t.ca_file {
            Some(path) => {
                for cert in load_certs(path)? {
                    roots.add(cert).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for e in &native.errors {
                    tracing::warn!("loading the system's CA certificates: {e}");
                }
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(Error::Config("no CA certificates found in the system store; set a CA file".into()));
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| Error::Config(format!("client certificate {} and key {}: {e}", cert.display(), key.display()))),
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(Error::Config("a client certificate needs both a certificate file and a key file".into())),
    }
}

/// The verifier of `insecure_skip_verify`: signatures are still checked (the handshake would
/// be meaningless otherwise), the certificate chain and name are not.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One client-side SASL exchange, without I/O: the first message, then one answer per
/// server message until it is done.
pub struct SaslSession {
    mechanism: Mechanism,
    step: SaslStep,
}

enum SaslStep {
    /// PLAIN and OAUTHBEARER: the server's one answer ends it.
    Single,
    ScramFirst(scram::ScramClient),
    ScramFinal(scram::ScramClient),
    Done,
}

impl SaslSession {
    /// Starts an exchange; `secret` is the password or token [`resolve_secret`] returned for
    /// these settings.
    pub fn start(settings: &SaslSettings, secret: &Secret) -> Result<(SaslSession, Vec<u8>)> {
        let mechanism = settings.mechanism;
        let sasl = |e: SaslError| Error::Authentication(format!("{mechanism}: {e}"));
        let (step, first) = match mechanism {
            Mechanism::Plain => (SaslStep::Single, plain::client_message(&settings.username, secret.expose())),
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                let hash = mechanism.scram().ok_or_else(|| Error::Config(format!("{mechanism} is not SCRAM")))?;
                let client = scram::ScramClient::new(hash, &settings.username, secret.expose()).map_err(sasl)?;
                let first = client.client_first();
                (SaslStep::ScramFirst(client), first)
            }
            Mechanism::OAuthBearer => (SaslStep::Single, oauthbearer::client_message(secret.expose())),
        };
        Ok((SaslSession { mechanism, step }, first))
    }

    /// Takes the server's answer; `Some` is the next message to send, `None` means done.
    pub fn next(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>> {
        let mechanism = self.mechanism;
        let sasl = |e: SaslError| Error::Authentication(format!("{mechanism}: {e}"));
        match std::mem::replace(&mut self.step, SaslStep::Done) {
            SaslStep::Single => Ok(None),
            SaslStep::ScramFirst(mut client) => {
                let fin = client.client_final(server).map_err(sasl)?;
                self.step = SaslStep::ScramFinal(client);
                Ok(Some(fin))
            }
            SaslStep::ScramFinal(client) => {
                client.verify_server_final(server).map_err(sasl)?;
                Ok(None)
            }
            SaslStep::Done => Err(Error::Authentication(format!("{mechanism}: the server sent more than the exchange has"))),
        }
    }
}

/// How long a token command or a secret file may take.
pub const SECRET_TIMEOUT: Duration = Duration::from_secs(30);

/// The password or token to authenticate with now: as configured, read from its file, or
/// printed by the token command (killed after [`SECRET_TIMEOUT`]).
pub async fn resolve_secret(settings: &SaslSettings) -> Result<Secret> {
    match tokio::time::timeout(SECRET_TIMEOUT, read_secret(&settings.credential)).await {
        Ok(secret) => secret,
        Err(_) => Err(Error::Authentication(format!("the SASL secret could not be read within {} s", SECRET_TIMEOUT.as_secs()))),
    }
}

async fn read_secret(credential: &SaslCredential) -> Result<Secret> {
    match credential {
        SaslCredential::Password(p) => Ok(p.clone()),
        SaslCredential::Token(t) => Ok(t.clone()),
        SaslCredential::SecretFile(path) => {
            let text = tokio::fs::read_to_string(path).await.map_err(|e| Error::Config(format!("reading the SASL secret from {}: {e}", path.display())))?;
            let secret = text.trim_end_matches(['\n', '\r']);
            if secret.is_empty() {
                return Err(Error::Config(format!("the SASL secret file {} is empty", path.display())));
            }
            Ok(Secret::new(secret))
        }
        SaslCredential::TokenCommand(cmd) => {
            let output = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| Error::Config(format!("running the token command: {e}")))?;
            if !output.status.success() {
                // Its stderr may be useful, its stdout may hold a token: only the former is shown.
                return Err(Error::Authentication(format!(
                    "the OAUTHBEARER token command failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            let token = String::from_utf8(output.stdout).map_err(|_| Error::Authentication("the token command printed non-UTF-8 output".into()))?;
            let token = token.trim();
            if token.is_empty() {
                return Err(Error::Authentication("the OAUTHBEARER token command printed no token".into()));
            }
            Ok(Secret::new(token))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = SaslSettings { mechanism: Mechanism::ScramSha512, username: "tern".into(), credential: SaslCredential::Password(Secret::new("hunter2")) };
        let shown = format!("{:?} {:?}", s, Security { tls: None, sasl: Some(s.clone()) });
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("tern"));
    }

    #[test]
    fn protocols_parse_like_kafka() {
        assert_eq!("sasl_ssl".parse::<SecurityProtocol>(), Ok(SecurityProtocol::SaslSsl));
        assert!("TLS".parse::<SecurityProtocol>().is_err());
        assert_eq!(host_of("[::1]:9092"), "::1");
        assert_eq!(host_of("broker-1.example.com:9093"), "broker-1.example.com");
    }

    #[tokio::test]
    async fn token_command_output_is_the_token() {
        let s = SaslSettings { mechanism: Mechanism::OAuthBearer, username: String::new(), credential: SaslCredential::TokenCommand("echo ' tok.en '".into()) };
        assert_eq!(resolve_secret(&s).await.expect("token").expose(), "tok.en");
        let failing = SaslSettings { credential: SaslCredential::TokenCommand("echo secret-out; echo oops >&2; exit 3".into()), ..s };
        let e = resolve_secret(&failing).await.expect_err("fails").to_string();
        assert!(e.contains("oops") && !e.contains("secret-out"), "{e}");
    }
}
