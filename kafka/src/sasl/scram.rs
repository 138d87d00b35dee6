//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka runs them: no channel
//! binding, at least 4096 iterations, and Kafka's optional client-first extensions accepted
//! and ignored. HMAC, the hashes and PBKDF2 come from `ring`.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};

use super::SaslError;

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.minIterations()` and the
/// AlterUserScramCredentials maximum).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;

/// The GS2 header of a client that neither supports nor wants channel binding, and its base64
/// form (the `c=` attribute).
const GS2_HEADER: &str = "n,,";
const GS2_HEADER_B64: &str = "biws";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramHash::Sha256 => hmac::HMAC_SHA256,
            ScramHash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramHash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramHash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramHash::Sha256 => &digest::SHA256,
            ScramHash::Sha512 => &digest::SHA512,
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            ScramHash::Sha256 => 32,
            ScramHash::Sha512 => 64,
        }
    }

    /// Kafka's mechanism number in the user SCRAM credential APIs.
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramHash::Sha256 => 1,
            ScramHash::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<ScramHash> {
        match t {
            1 => Some(ScramHash::Sha256),
            2 => Some(ScramHash::Sha512),
            _ => None,
        }
    }

    pub fn mechanism(self) -> super::Mechanism {
        match self {
            ScramHash::Sha256 => super::Mechanism::ScramSha256,
            ScramHash::Sha512 => super::Mechanism::ScramSha512,
        }
    }

    fn hmac_sign(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data).as_ref().to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }

    /// `Hi(password, salt, i)` of RFC 5802: PBKDF2 with this hash's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(self.pbkdf2(), iterations, salt, password, &mut out);
        out
    }
}

/// What a server keeps of a SCRAM user: never the password, only what verifies a proof.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// A credential for `password` with a fresh random salt.
    pub fn generate(hash: ScramHash, password: &str, iterations: u32) -> Result<ScramCredential, SaslError> {
        let salt = random_bytes(32)?;
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
        Ok(Self::from_salted_password(hash, salt, iterations, &salted))
    }

    /// A credential from a salted password, as AlterUserScramCredentials carries it.
    pub fn from_salted_password(hash: ScramHash, salt: Vec<u8>, iterations: u32, salted_password: &[u8]) -> ScramCredential {
        let client_key = hash.hmac_sign(salted_password, b"Client Key");
        ScramCredential {
            salt,
            iterations,
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac_sign(salted_password, b"Server Key"),
        }
    }

    /// Whether `password` is this credential's (for PLAIN against SCRAM-stored users).
    pub fn matches_password(&self, hash: ScramHash, password: &str) -> bool {
        let salted = hash.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let client_key = hash.hmac_sign(&salted, b"Client Key");
        constant_time_eq(&hash.hash(&client_key), &self.stored_key)
    }
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_bytes(n: usize) -> Result<Vec<u8>, SaslError> {
    let mut out = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| SaslError::Failed("the system random number generator failed".into()))?;
    Ok(out)
}

fn nonce() -> Result<String, SaslError> {
    Ok(B64.encode(random_bytes(24)?))
}

/// `saslname` escaping of RFC 5802: `=` and `,` cannot appear as they are.
fn escape_username(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn unescape_username(name: &str) -> Result<String, SaslError> {
    // One pass from the left: only "=2C" and "=3D" may follow a '='.
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslError::Malformed("invalid escape in the SCRAM username".into())),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of attribute `key` (one letter) in a comma-separated SCRAM message.
fn attribute(message: &str, key: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(key) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

fn utf8(message: &[u8]) -> Result<&str, SaslError> {
    std::str::from_utf8(message).map_err(|_| SaslError::Malformed("SCRAM message is not UTF-8".into()))
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// The client side of one SCRAM exchange: `client_first`, then `client_final` from the
/// server's first message, then `verify_server_final`.
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    expected_server_signature: Option<Vec<u8>>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient").field("hash", &self.hash).finish_non_exhaustive()
    }
}

impl ScramClient {
    pub fn new(hash: ScramHash, username: &str, password: &str) -> Result<ScramClient, SaslError> {
        let client_nonce = nonce()?;
        let client_first_bare = format!("n={},r={client_nonce}", escape_username(username));
        Ok(ScramClient { hash, password: password.to_string(), client_nonce, client_first_bare, expected_server_signature: None })
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("{GS2_HEADER}{}", self.client_first_bare).into_bytes()
    }

    /// Answers the server's first message with the proof.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let server_first = utf8(server_first)?;
        if let Some(e) = attribute(server_first, 'e') {
            return Err(SaslError::Failed(e.to_string()));
        }
        let nonce = attribute(server_first, 'r').ok_or_else(|| SaslError::Malformed("server-first-message without a nonce".into()))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(SaslError::Malformed("the server's nonce does not extend the client's".into()));
        }
        let salt = attribute(server_first, 's')
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| SaslError::Malformed("server-first-message without a valid salt".into()))?;
        let iterations: u32 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| SaslError::Malformed("server-first-message without a valid iteration count".into()))?;
        if iterations < MIN_ITERATIONS {
            return Err(SaslError::Failed(format!("the server asked for {iterations} iterations, fewer than the minimum {MIN_ITERATIONS}")));
        }
        // Kafka never stores more; a larger count would only keep this client hashing.
        if iterations > MAX_ITERATIONS {
            return Err(SaslError::Failed(format!("the server asked for {iterations} iterations, more than the maximum {MAX_ITERATIONS}")));
        }
        let h = self.hash;
        let salted = h.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac_sign(&salted, b"Client Key");
        let stored_key = h.hash(&client_key);
        let without_proof = format!("c={GS2_HEADER_B64},r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = h.hmac_sign(&stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        let server_key = h.hmac_sign(&salted, b"Server Key");
        self.expected_server_signature = Some(h.hmac_sign(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks that the server knew the credential too (mutual authentication).
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let server_final = utf8(server_final)?;
        if let Some(e) = attribute(server_final, 'e') {
            return Err(SaslError::Failed(e.to_string()));
        }
        let signature = attribute(server_final, 'v')
            .and_then(|v| B64.decode(v).ok())
            .ok_or_else(|| SaslError::Malformed("server-final-message without a verifier".into()))?;
        match &self.expected_server_signature {
            Some(expected) if constant_time_eq(expected, &signature) => Ok(()),
            _ => Err(SaslError::Failed("the server's signature does not match: it does not hold this user's credential".into())),
        }
    }
}

/// The server side of one SCRAM exchange.
pub struct ScramServer {
    hash: ScramHash,
    state: ServerState,
}

enum ServerState {
    ExpectClientFirst,
    ExpectClientFinal { username: String, credential: ScramCredential, nonce: String, client_first_bare: String, server_first: String, gs2_header: String },
    Done,
}

impl ScramServer {
    pub fn new(hash: ScramHash) -> ScramServer {
        ScramServer { hash, state: ServerState::ExpectClientFirst }
    }

    /// Whether the client's first message was answered and its final one is due.
    pub fn is_final_step(&self) -> bool {
        matches!(self.state, ServerState::ExpectClientFinal { .. })
    }

    /// Reads the client's first message, looks the user up and answers with salt, iterations
    /// and the combined nonce. An unknown user fails here, with the same message as a wrong
    /// password.
    pub fn server_first(&mut self, client_first: &[u8], lookup: impl FnOnce(&str) -> Option<ScramCredential>) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, ServerState::ExpectClientFirst) {
            return Err(SaslError::Malformed("unexpected SCRAM client-first-message".into()));
        }
        let text = utf8(client_first)?;
        // gs2-header: a channel-binding flag, an optional authzid, then the bare message.
        let (flag, rest) = text.split_once(',').ok_or_else(|| SaslError::Malformed("client-first-message without a GS2 header".into()))?;
        if flag.starts_with('p') {
            return Err(SaslError::Failed("channel binding is not supported".into()));
        }
        if flag != "n" && flag != "y" {
            return Err(SaslError::Malformed("invalid GS2 channel-binding flag".into()));
        }
        let (authzid, bare) = rest.split_once(',').ok_or_else(|| SaslError::Malformed("client-first-message without a GS2 header".into()))?;
        let username = attribute(bare, 'n').ok_or_else(|| SaslError::Malformed("client-first-message without a username".into()))?;
        let username = unescape_username(username)?;
        if let Some(a) = authzid.strip_prefix("a=") {
            if unescape_username(a)? != username {
                return Err(SaslError::Failed("authorization id differs from the username".into()));
            }
        }
        let client_nonce = attribute(bare, 'r').ok_or_else(|| SaslError::Malformed("client-first-message without a nonce".into()))?;
        let credential = lookup(&username).ok_or_else(|| SaslError::Failed("invalid credentials".into()))?;
        let nonce = format!("{client_nonce}{}", self::nonce()?);
        let server_first = format!("r={nonce},s={},i={}", B64.encode(&credential.salt), credential.iterations);
        let reply = server_first.clone().into_bytes();
        let gs2_header = format!("{flag},{authzid},");
        self.state = ServerState::ExpectClientFinal { username, credential, nonce, client_first_bare: bare.to_string(), server_first, gs2_header };
        Ok(reply)
    }

    /// Checks the client's proof; on success the server's signature to send and the user.
    pub fn server_final(&mut self, client_final: &[u8]) -> Result<(Vec<u8>, String), SaslError> {
        let ServerState::ExpectClientFinal { username, credential, nonce, client_first_bare, server_first, gs2_header } =
            std::mem::replace(&mut self.state, ServerState::Done)
        else {
            return Err(SaslError::Malformed("unexpected SCRAM client-final-message".into()));
        };
        let text = utf8(client_final)?;
        let (without_proof, proof) =
            text.rsplit_once(",p=").ok_or_else(|| SaslError::Malformed("client-final-message without a proof".into()))?;
        if attribute(without_proof, 'r') != Some(nonce.as_str()) {
            return Err(SaslError::Failed("nonce mismatch".into()));
        }
        // Without channel binding, c= is the base64 of the client's own GS2 header (RFC 5802).
        if attribute(without_proof, 'c').and_then(|c| B64.decode(c).ok()).as_deref() != Some(gs2_header.as_bytes()) {
            return Err(SaslError::Malformed("the channel binding attribute does not repeat the GS2 header".into()));
        }
        let proof = B64.decode(proof).map_err(|_| SaslError::Malformed("proof is not base64".into()))?;
        let h = self.hash;
        if proof.len() != h.output_len() {
            return Err(SaslError::Failed("invalid credentials".into()));
        }
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = h.hmac_sign(&credential.stored_key, auth_message.as_bytes());
        let client_key = xor(&proof, &client_signature);
        if !constant_time_eq(&h.hash(&client_key), &credential.stored_key) {
            return Err(SaslError::Failed("invalid credentials".into()));
        }
        let server_signature = h.hmac_sign(&credential.server_key, auth_message.as_bytes());
        Ok((format!("v={}", B64.encode(server_signature)).into_bytes(), username))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(hash: ScramHash, user: &str, stored_pw: &str, given_pw: &str) -> Result<String, SaslError> {
        let cred = ScramCredential::generate(hash, stored_pw, MIN_ITERATIONS)?;
        let mut client = ScramClient::new(hash, user, given_pw)?;
        let mut server = ScramServer::new(hash);
        let first = server.server_first(&client.client_first(), |u| (u == user).then(|| cred.clone()))?;
        let fin = client.client_final(&first)?;
        let (server_final, who) = server.server_final(&fin)?;
        client.verify_server_final(&server_final)?;
        Ok(who)
    }

    #[test]
    fn both_hashes_authenticate_and_refuse_wrong_passwords() {
        for hash in [ScramHash::Sha256, ScramHash::Sha512] {
            assert_eq!(exchange(hash, "al=i,ce", "pw", "pw").expect("right password"), "al=i,ce");
            assert!(matches!(exchange(hash, "alice", "pw", "wrong"), Err(SaslError::Failed(_))));
        }
    }

    #[test]
    fn rfc7677_sha256_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil".
        let h = ScramHash::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let salted = h.salted_password(b"pencil", &salt, 4096);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let client_key = h.hmac_sign(&salted, b"Client Key");
        let proof = xor(&client_key, &h.hmac_sign(&h.hash(&client_key), auth.as_bytes()));
        assert_eq!(B64.encode(proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let server_sig = h.hmac_sign(&h.hmac_sign(&salted, b"Server Key"), auth.as_bytes());
        assert_eq!(B64.encode(server_sig), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn plain_passwords_check_against_stored_credentials() {
        let cred = ScramCredential::generate(ScramHash::Sha512, "hunter2", 4096).expect("cred");
        assert!(cred.matches_password(ScramHash::Sha512, "hunter2"));
        assert!(!cred.matches_password(ScramHash::Sha512, "hunter3"));
        assert!(!format!("{cred:?}").contains("stored_key"));
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let cred = ScramCredential::generate(ScramHash::Sha256, "pw", 4096).expect("cred");
        let lookup = |c: &ScramCredential| {
            let c = c.clone();
            move |_: &str| Some(c)
        };
        // Malformed first messages fail as malformed, whatever the lookup would say.
        for m in [&b""[..], b"x", b"n,,", b"p=tls,,n=u,r=x", b"n,,n=u", b"\xff\xfe", b"n,,n=a=2,r=x", b"n,,n=a=3,r=x"] {
            let mut server = ScramServer::new(ScramHash::Sha256);
            assert!(matches!(server.server_first(m, lookup(&cred)), Err(SaslError::Malformed(_) | SaslError::Failed(_))), "{m:?}");
            assert!(!server.is_final_step(), "{m:?}");
        }
        // Malformed final messages, after a good first one.
        for m in [&b""[..], b"c=biws,r=x", b"c=biws,r=x,p=!!", b"\xff"] {
            let mut server = ScramServer::new(ScramHash::Sha256);
            server.server_first(b"n,,n=u,r=abc", lookup(&cred)).expect("first");
            assert!(server.is_final_step());
            assert!(matches!(server.server_final(m), Err(SaslError::Malformed(_) | SaslError::Failed(_))), "{m:?}");
        }
        let mut client = ScramClient::new(ScramHash::Sha256, "u", "p").expect("client");
        for m in [&b"r=other,s=AAAA,i=4096"[..], b"e=unknown-user", b"", b"r=", b"s=,i=1"] {
            assert!(client.client_final(m).is_err(), "{m:?}");
        }
    }

    #[test]
    fn usernames_unescape_only_valid_escapes() {
        assert_eq!(unescape_username("a=2Cb=3Dc").expect("valid"), "a,b=c");
        for bad in ["n==3=2CD", "a=", "a=2", "a=3d", "=41"] {
            assert!(unescape_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_refuses_iteration_counts_outside_kafkas_range_and_a_forged_server_signature() {
        for i in [MIN_ITERATIONS - 1, MAX_ITERATIONS + 1, u32::MAX] {
            let mut client = ScramClient::new(ScramHash::Sha256, "u", "p").expect("client");
            let e = client.client_final(format!("r={}xyz,s=c2FsdA==,i={i}", client.client_nonce).as_bytes()).expect_err("refused");
            assert!(e.to_string().contains("iterations"), "{i}: {e}");
        }
        // A full exchange with the real server, then a server signature that was tampered with.
        let cred = ScramCredential::generate(ScramHash::Sha256, "pw", 4096).expect("cred");
        let mut client = ScramClient::new(ScramHash::Sha256, "u", "pw").expect("client");
        let mut server = ScramServer::new(ScramHash::Sha256);
        let first = server.server_first(&client.client_first(), |_| Some(cred.clone())).expect("server first");
        let fin = client.client_final(&first).expect("client final");
        let (server_final, user) = server.server_final(&fin).expect("server final");
        assert_eq!(user, "u");
        let mut forged = String::from_utf8(server_final.clone()).expect("utf8");
        forged.replace_range(2..4, if &forged[2..4] == "AA" { "BB" } else { "AA" });
        assert!(client.verify_server_final(forged.as_bytes()).is_err());
        assert!(client.verify_server_final(&server_final).is_ok());
    }
}
