//! TLS and SASL settings of a cluster in `tern.toml`, and turning them into the client's
//! [`Security`]. Passwords and tokens are given by reference (`password_env`,
//! `password_file`, `token_env`, `token_file`, `token_command`); an inline `password` is
//! refused unless `allow_inline_password = true`. No `Debug` output shows a secret.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use tern_kafka::sasl::Mechanism;
use tern_kafka::security::{SaslCredential, SaslSettings, Secret, Security, SecurityProtocol, TlsSettings};

use crate::error::{Error, Result};

/// `[clusters.<name>.tls]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM CA certificates to trust; the operating system's store when absent.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name to check the brokers' certificates against instead of the bootstrap host.
    pub server_name: Option<String>,
    /// Skip certificate verification (logs a warning). Never in production.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A string from the config file that must not be printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Redacted(String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// `[clusters.<name>.sasl]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    pub mechanism: String,
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the username, where the username is itself a credential
    /// (a Confluent Cloud API key, a name kept in a secret store).
    #[serde(default)]
    pub username_env: Option<String>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The password itself: refused unless `allow_inline_password = true`.
    #[serde(default)]
    pub password: Option<Redacted>,
    #[serde(default)]
    pub allow_inline_password: bool,
    /// OAUTHBEARER: environment variable or file holding the token, or a command printing it
    /// (run at every authentication, so refreshed tokens are used on re-authentication).
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub token_command: Option<String>,
}

/// A cluster's security settings as configured (`security_protocol`, `[clusters.<name>.tls]`,
/// `[clusters.<name>.sasl]`): what this module reads of a cluster's configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings<'a> {
    pub security_protocol: Option<&'a str>,
    pub tls: Option<&'a TlsConfig>,
    pub sasl: Option<&'a SaslConfig>,
}

/// The security protocol of a cluster: as given, or SSL when only `tls` is set and
/// SASL_SSL when `sasl` is (SASL_PLAINTEXT, which exposes PLAIN passwords, must be explicit).
pub fn protocol(name: &str, c: Settings<'_>) -> Result<SecurityProtocol> {
    let key = format!("clusters.{name}");
    let protocol = match c.security_protocol {
        Some(p) => p.parse::<SecurityProtocol>().map_err(|e| Error::Config(format!("{key}.security_protocol: {e}")))?,
        None if c.sasl.is_some() => SecurityProtocol::SaslSsl,
        None if c.tls.is_some() => SecurityProtocol::Ssl,
        None => SecurityProtocol::Plaintext,
    };
    if c.tls.is_some() && !protocol.uses_tls() {
        return Err(Error::Config(format!("{key}.tls: given, but security_protocol is {} (use SSL or SASL_SSL)", protocol.name())));
    }
    match (c.sasl, protocol.uses_sasl()) {
        (Some(_), false) => Err(Error::Config(format!("{key}.sasl: given, but security_protocol is {} (use SASL_SSL or SASL_PLAINTEXT)", protocol.name()))),
        (None, true) => Err(Error::Config(format!("{key}.security_protocol = {:?} needs a [{key}.sasl] section", protocol.name()))),
        _ => Ok(protocol),
    }
}

/// Checks the settings without reading any secret (for `parse` and `tern check --offline`).
pub fn validate(name: &str, c: Settings<'_>) -> Result<()> {
    protocol(name, c)?;
    if let Some(tls) = c.tls {
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(Error::Config(format!("clusters.{name}.tls: cert_file and key_file go together (mutual TLS needs both)")));
        }
    }
    if let Some(sasl) = c.sasl {
        sasl_source(name, sasl)?;
    }
    Ok(())
}

/// Where the secret of a SASL section comes from, checked for exactly one source.
enum Source<'a> {
    Env(&'a str, String),
    File(&'a std::path::Path, String),
    Inline(&'a Redacted),
    Command(&'a str),
}

fn sasl_source<'a>(name: &str, s: &'a SaslConfig) -> Result<(Mechanism, Source<'a>)> {
    let key = format!("clusters.{name}.sasl");
    let mechanism: Mechanism = s.mechanism.parse().map_err(|e| Error::Config(format!("{key}.mechanism: {e}")))?;
    if mechanism == Mechanism::OAuthBearer {
        if s.password_env.is_some() || s.password_file.is_some() || s.password.is_some() {
            return Err(Error::Config(format!("{key}: OAUTHBEARER takes token_env, token_file or token_command, not a password")));
        }
        let mut sources = Vec::new();
        if let Some(v) = &s.token_env {
            sources.push(Source::Env(v, format!("{key}.token_env")));
        }
        if let Some(p) = &s.token_file {
            sources.push(Source::File(p, format!("{key}.token_file")));
        }
        if let Some(c) = &s.token_command {
            sources.push(Source::Command(c));
        }
        return match sources.len() {
            1 => Ok((mechanism, sources.remove(0))),
            0 => Err(Error::Config(format!("{key}: OAUTHBEARER needs one of token_env, token_file, token_command"))),
            _ => Err(Error::Config(format!("{key}: give only one of token_env, token_file, token_command"))),
        };
    }
    if s.token_env.is_some() || s.token_file.is_some() || s.token_command.is_some() {
        return Err(Error::Config(format!("{key}: token_env, token_file and token_command are for OAUTHBEARER, not {mechanism}")));
    }
    match (s.username.as_deref(), s.username_env.as_deref()) {
        (Some(u), None) if !u.is_empty() => {}
        (None, Some(v)) if !v.is_empty() => {}
        (Some(_), Some(_)) => return Err(Error::Config(format!("{key}: give username or username_env, not both"))),
        _ => return Err(Error::Config(format!("{key}.username: required for {mechanism} (or username_env)"))),
    }
    let mut sources = Vec::new();
    if let Some(v) = &s.password_env {
        sources.push(Source::Env(v, format!("{key}.password_env")));
    }
    if let Some(p) = &s.password_file {
        sources.push(Source::File(p, format!("{key}.password_file")));
    }
    if let Some(p) = &s.password {
        if !s.allow_inline_password {
            return Err(Error::Config(format!(
                "{key}.password: inline passwords end up in backups, diffs and screenshots; use password_env or password_file (or set allow_inline_password = true)"
            )));
        }
        sources.push(Source::Inline(p));
    }
    match sources.len() {
        1 => Ok((mechanism, sources.remove(0))),
        0 => Err(Error::Config(format!("{key}: {mechanism} needs a password: set password_env or password_file"))),
        _ => Err(Error::Config(format!("{key}: give only one of password_env, password_file, password"))),
    }
}

/// The client security of cluster `name`, reading its secret now.
pub fn resolve(name: &str, c: Settings<'_>) -> Result<Security> {
    validate(name, c)?;
    let protocol = protocol(name, c)?;
    let tls = protocol.uses_tls().then(|| {
        let t = c.tls.cloned().unwrap_or_default();
        TlsSettings { ca_file: t.ca_file, cert_file: t.cert_file, key_file: t.key_file, server_name: t.server_name, insecure_skip_verify: t.insecure_skip_verify }
    });
    let sasl = match c.sasl {
        None => None,
        Some(s) => {
            let (mechanism, source) = sasl_source(name, s)?;
            let command = match &source {
                Source::Command(cmd) => Some(cmd.to_string()),
                _ => None,
            };
            let file = match &source {
                Source::File(path, _) => Some(path.to_path_buf()),
                _ => None,
            };
            let secret = match source {
                Source::Env(var, key) => Some(
                    std::env::var(var).map_err(|_| Error::Config(format!("{key}: environment variable {var} is not set")))?,
                ),
                Source::File(path, key) => {
                    // Checked now, so a wrong path fails at start; read again for every
                    // authentication, so a rotated secret needs no restart.
                    let text = std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{key}: {}: {e}", path.display())))?;
                    if text.trim_end_matches(['\n', '\r']).is_empty() {
                        return Err(Error::Config(format!("{key}: {} is empty", path.display())));
                    }
                    None
                }
                Source::Inline(p) => Some(p.0.clone()),
                Source::Command(_) => None,
            };
            let credential = match (mechanism, secret, command, file) {
                (_, _, _, Some(path)) => SaslCredential::SecretFile(path),
                (Mechanism::OAuthBearer, Some(t), _, _) => SaslCredential::Token(Secret::new(t)),
                (Mechanism::OAuthBearer, None, Some(cmd), _) => SaslCredential::TokenCommand(cmd),
                (_, Some(p), _, _) => SaslCredential::Password(Secret::new(p)),
                _ => return Err(Error::Config(format!("clusters.{name}.sasl: no credential"))),
            };
            let username = match (&s.username, &s.username_env) {
                (_, Some(var)) => std::env::var(var).map_err(|_| Error::Config(format!("clusters.{name}.sasl.username_env: environment variable {var} is not set")))?,
                (Some(u), None) => u.clone(),
                (None, None) => String::new(),
            };
            Some(SaslSettings { mechanism, username, credential })
        }
    };
    Ok(Security { tls, sasl })
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    fn cluster(extra: &str) -> String {
        format!("[clusters.a]\nbootstrap = \"127.0.0.1:1\"\n{extra}\n[clusters.b]\nbootstrap = \"127.0.0.1:2\"\n[[flows]]\nsource = \"a\"\ntarget = \"b\"\ntopics = [\".*\"]\n")
    }

    #[test]
    fn sasl_ssl_with_password_env_resolves_and_never_prints_the_secret() {
        std::env::set_var("TERN_TEST_SASL_PW_1", "pa55-w0rd-env");
        let v = parse(&cluster("[clusters.a.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"tern\"\npassword_env = \"TERN_TEST_SASL_PW_1\"\n[clusters.a.tls]\nca_file = \"/etc/ca.pem\"\n")).expect("valid");
        let a = &v.config.clusters["a"];
        let sec = super::resolve("a", a.security()).expect("resolves");
        assert!(sec.tls.is_some(), "SASL_SSL is inferred");
        let shown = format!("{v:?} {sec:?}");
        assert!(!shown.contains("pa55-w0rd-env"), "{shown}");
        match &sec.sasl.expect("sasl").credential {
            tern_kafka::security::SaslCredential::Password(p) => assert_eq!(p.expose(), "pa55-w0rd-env"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inline_passwords_need_the_opt_in_and_stay_hidden() {
        let inline = "[clusters.a.sasl]\nmechanism = \"PLAIN\"\nusername = \"tern\"\npassword = \"inline-secret-1\"\n";
        let e = parse(&cluster(inline)).expect_err("refused").to_string();
        assert!(e.contains("clusters.a.sasl.password") && e.contains("allow_inline_password") && !e.contains("inline-secret-1"), "{e}");
        let ok = parse(&cluster(&format!("{inline}allow_inline_password = true\n"))).expect("opted in");
        assert!(!format!("{ok:?}").contains("inline-secret-1"));
    }

    #[test]
    fn inconsistent_settings_name_the_key() {
        for (extra, want) in [
            ("security_protocol = \"SASL_SSL\"\n", "needs a [clusters.a.sasl]"),
            ("security_protocol = \"PLAINTEXT\"\n[clusters.a.tls]\n", "clusters.a.tls"),
            ("security_protocol = \"TLS\"\n", "clusters.a.security_protocol"),
            ("[clusters.a.sasl]\nmechanism = \"GSSAPI\"\n", "clusters.a.sasl.mechanism"),
            ("[clusters.a.sasl]\nmechanism = \"SCRAM-SHA-256\"\npassword_env = \"X\"\n", "clusters.a.sasl.username"),
            ("[clusters.a.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"u\"\n", "needs a password"),
            ("[clusters.a.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"u\"\nusername_env = \"U\"\npassword_env = \"X\"\n", "username or username_env, not both"),
            ("[clusters.a.sasl]\nmechanism = \"OAUTHBEARER\"\n", "token_command"),
            ("[clusters.a.tls]\ncert_file = \"c.pem\"\n", "key_file"),
            ("[clusters.a.tls]\nca_flie = \"c.pem\"\n", "ca_flie"),
        ] {
            let e = parse(&cluster(extra)).expect_err(extra).to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }

    #[test]
    fn missing_env_var_is_a_clear_error() {
        let v = parse(&cluster("[clusters.a.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword_env = \"TERN_TEST_UNSET_VAR_9\"\n")).expect("valid");
        let e = super::resolve("a", v.config.clusters["a"].security()).expect_err("unset").to_string();
        assert!(e.contains("clusters.a.sasl.password_env") && e.contains("TERN_TEST_UNSET_VAR_9"), "{e}");
    }

    #[test]
    fn username_from_the_environment() {
        let v = parse(&cluster("[clusters.a.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername_env = \"TERN_TEST_SASL_USER_3\"\npassword_env = \"TERN_TEST_SASL_PW_3\"\n")).expect("valid");
        // Only this test reads these two variables. The password is there, the username not yet.
        std::env::set_var("TERN_TEST_SASL_PW_3", "pw");
        let e = super::resolve("a", v.config.clusters["a"].security()).expect_err("unset").to_string();
        assert!(e.contains("clusters.a.sasl.username_env") && e.contains("TERN_TEST_SASL_USER_3"), "{e}");
        std::env::set_var("TERN_TEST_SASL_USER_3", "api-key-7");
        let s = super::resolve("a", v.config.clusters["a"].security()).expect("resolves");
        assert_eq!(s.sasl.expect("sasl").username, "api-key-7");
    }

    #[test]
    fn oauthbearer_token_command() {
        let v = parse(&cluster("security_protocol = \"SASL_PLAINTEXT\"\n[clusters.a.sasl]\nmechanism = \"OAUTHBEARER\"\ntoken_command = \"cat /run/token\"\n")).expect("valid");
        let s = super::resolve("a", v.config.clusters["a"].security()).expect("resolves");
        assert!(s.tls.is_none());
        assert!(matches!(s.sasl.expect("sasl").credential, tern_kafka::security::SaslCredential::TokenCommand(_)));
    }
}
