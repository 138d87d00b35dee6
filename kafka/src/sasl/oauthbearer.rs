//! OAUTHBEARER (RFC 7628) as Kafka's clients send it: a GS2 header, then the bearer token
//! as the `auth` key, with 0x01 separators.

/// The client's initial response for `token`.
pub fn client_message(token: &str) -> Vec<u8> {
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

/// The token of a client's initial response, for servers and tests.
pub fn parse_client_message(message: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(message).ok()?;
    let rest = text.strip_prefix("n,")?;
    let (_authzid, kvs) = rest.split_once(",\x01")?;
    kvs.split('\x01').find_map(|kv| kv.strip_prefix("auth=Bearer ")).map(str::to_string)
}

#[cfg(test)]
mod tests {
    #[test]
    fn initial_response_carries_the_token() {
        let m = super::client_message("eyJhbGciOi.abc.def");
        assert_eq!(m, b"n,,\x01auth=Bearer eyJhbGciOi.abc.def\x01\x01");
        assert_eq!(super::parse_client_message(&m).as_deref(), Some("eyJhbGciOi.abc.def"));
        assert_eq!(super::parse_client_message(b"garbage"), None);
    }
}
