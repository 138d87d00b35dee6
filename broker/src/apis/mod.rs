//! One file per Kafka API, dispatched from [`handle_frame`]. [`SUPPORTED`] is the single
//! source of truth for what the broker implements: ApiVersions reports it and every request
//! outside it is answered with UNSUPPORTED_VERSION.

mod api_versions;
mod create_topics;
mod delete_topics;
mod describe_cluster;
mod fetch;
mod list_offsets;
mod metadata;
mod produce;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use tern_kafka::frame;

use crate::server::BrokerState;

/// The API versions this broker implements, inclusive.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeCluster, 0, 1),
];

pub fn supported_range(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == api_key).map(|(_, min, max)| (*min, *max))
}

/// What the connection does after a request.
pub enum Reply {
    /// Send this complete frame.
    Frame(Bytes),
    /// Nothing to send (produce with acks=0).
    Nothing,
    /// The request could not be parsed; Kafka closes the connection in that case.
    Close(String),
}

/// Decodes one request frame (without its size prefix), runs it and encodes the answer.
pub async fn handle_frame(state: &BrokerState, mut frame: Bytes) -> Reply {
    let prefix = match frame::peek_request_prefix(&frame) {
        Ok(p) => p,
        Err(e) => return Reply::Close(e.to_string()),
    };
    let Ok(api_key) = ApiKey::try_from(prefix.api_key) else {
        tracing::warn!(api_key = prefix.api_key, "request with unknown api key answered UNSUPPORTED_VERSION");
        return Reply::Frame(frame::encode_unsupported(prefix.correlation_id));
    };
    let in_range = supported_range(api_key)
        .is_some_and(|(min, max)| (min..=max).contains(&prefix.api_version));
    if !in_range {
        if api_key == ApiKey::ApiVersions {
            // Kafka answers an ApiVersions it cannot parse with a v0 response carrying the
            // error and the supported ranges, so the client can retry at a version we know.
            let body = ResponseKind::ApiVersions(api_versions::unsupported());
            return encode(prefix.correlation_id, api_key, 0, &body);
        }
        tracing::debug!(?api_key, version = prefix.api_version, "unsupported version");
        return Reply::Frame(frame::encode_unsupported(prefix.correlation_id));
    }
    let header = match frame::decode_request_header(api_key, &mut frame) {
        Ok(h) => h,
        Err(e) => return Reply::Close(e.to_string()),
    };
    let body = match frame::decode_request_body(api_key, header.request_api_version, &mut frame) {
        Ok(b) => b,
        Err(e) => return Reply::Close(e.to_string()),
    };
    match dispatch(state, &header, body).await {
        Some(response) => encode(header.correlation_id, api_key, header.request_api_version, &response),
        None => Reply::Nothing,
    }
}

fn encode(correlation_id: i32, api_key: ApiKey, version: i16, body: &ResponseKind) -> Reply {
    match frame::encode_response(correlation_id, api_key, version, body) {
        Ok(bytes) => Reply::Frame(bytes),
        // Only reachable through a bug of ours (a field this version cannot carry); closing
        // tells the client more than a response it would misread.
        Err(e) => Reply::Close(format!("could not encode the response: {e}")),
    }
}

async fn dispatch(state: &BrokerState, header: &RequestHeader, body: RequestKind) -> Option<ResponseKind> {
    let version = header.request_api_version;
    Some(match body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(state, r, version)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics::handle(state, r, version)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::handle(state, r, version)),
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(state, r)?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(state, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(state, r, version)),
        RequestKind::DescribeCluster(_) => ResponseKind::DescribeCluster(describe_cluster::handle(state)),
        // Unreachable while SUPPORTED and this match agree; answer rather than panic.
        _ => return None,
    })
}

/// Milliseconds since the Unix epoch, the unit of every Kafka timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
