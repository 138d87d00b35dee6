//! PLAIN (RFC 4616): `authzid NUL authcid NUL passwd` in one message.

use super::SaslError;

/// The client's single message.
pub fn client_message(username: &str, password: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(username.len() + password.len() + 2);
    m.push(0);
    m.extend_from_slice(username.as_bytes());
    m.push(0);
    m.extend_from_slice(password.as_bytes());
    m
}

/// Username and password from a client message. An authorization id, when given, must equal
/// the username (Kafka refuses to act as another user too).
pub fn parse_client_message(message: &[u8]) -> Result<(String, String), SaslError> {
    let text = std::str::from_utf8(message).map_err(|_| SaslError::Malformed("PLAIN message is not UTF-8".into()))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SaslError::Malformed("PLAIN message must have three NUL-separated fields".into()));
    };
    if user.is_empty() {
        return Err(SaslError::Malformed("PLAIN message without a username".into()));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::Failed("authorization id differs from the username".into()));
    }
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let m = client_message("alice", "s3cret");
        assert_eq!(parse_client_message(&m).expect("valid"), ("alice".into(), "s3cret".into()));
        assert!(parse_client_message(b"\0alice").is_err());
        assert!(parse_client_message(b"bob\0alice\0pw").is_err());
        assert!(parse_client_message(b"\0\0pw").is_err());
    }
}
