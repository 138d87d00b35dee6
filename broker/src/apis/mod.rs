//! One file per Kafka API, dispatched from [`handle_frame`]. [`SUPPORTED`] is the single
//! source of truth for what the broker implements: ApiVersions reports it and every request
//! outside it is answered with UNSUPPORTED_VERSION.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod alter_user_scram_credentials;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod end_txn;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_topic_partitions;
mod describe_transactions;
mod describe_user_scram_credentials;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod produce;
mod resource;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
mod txn_offset_commit;

use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use tern_kafka::frame;

use crate::auth::ConnectionAuth;
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
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 5),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    // Transactions, protocol version 1 (producers add partitions themselves).
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    // v0 of SaslHandshake is followed by raw tokens outside Kafka framing; clients since
    // Kafka 1.0 use v1 with SaslAuthenticate.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

pub fn supported_range(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == api_key).map(|(_, min, max)| (*min, *max))
}

/// What the connection does after a request.
pub enum Reply {
    /// Send this complete frame.
    Frame(Bytes),
    /// Send the frame these parts make, in order (a fetch answer, its records uncopied).
    Parts(Vec<Bytes>),
    /// Nothing to send (produce with acks=0).
    Nothing,
    /// The request could not be parsed; Kafka closes the connection in that case.
    Close(String),
    /// Send this frame, then close (a failed authentication).
    FrameThenClose(Bytes, String),
}

/// Who sent a request, as the group coordinator records it for DescribeGroups.
pub struct RequestContext {
    pub client_id: String,
    /// Kafka's form: the address with a leading slash.
    pub client_host: String,
}

/// Decodes one request frame (without its size prefix), runs it and encodes the answer.
pub async fn handle_frame(state: &BrokerState, mut frame: Bytes, peer: SocketAddr, auth: &mut ConnectionAuth) -> Reply {
    let prefix = match frame::peek_request_prefix(&frame) {
        Ok(p) => p,
        Err(e) => return Reply::Close(e.to_string()),
    };
    let Ok(api_key) = ApiKey::try_from(prefix.api_key) else {
        if !auth.is_authenticated() {
            return Reply::Close(format!("unknown api key {} before authentication", prefix.api_key));
        }
        tracing::warn!(api_key = prefix.api_key, "request with unknown api key answered UNSUPPORTED_VERSION");
        return Reply::Frame(frame::encode_unsupported(prefix.correlation_id));
    };
    if let Err(why) = auth.admit(api_key) {
        return Reply::Close(why);
    }
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
    let version = header.request_api_version;
    let (response, close) = match body {
        RequestKind::SaslHandshake(r) => {
            let (resp, close) = sasl_handshake::handle(auth, r);
            (ResponseKind::SaslHandshake(resp), close)
        }
        RequestKind::SaslAuthenticate(r) => {
            let (resp, close) = sasl_authenticate::handle(state, auth, r, version);
            (ResponseKind::SaslAuthenticate(resp), close)
        }
        body => return handle_request(state, api_key, header, body, peer).await,
    };
    match encode(header.correlation_id, api_key, version, &response) {
        Reply::Frame(bytes) if close => Reply::FrameThenClose(bytes, format!("{api_key:?} failed")),
        other => other,
    }
}

async fn handle_request(state: &BrokerState, api_key: ApiKey, header: RequestHeader, body: RequestKind, peer: SocketAddr) -> Reply {
    let cx = RequestContext {
        client_id: header.client_id.as_ref().map(string).unwrap_or_default(),
        client_host: format!("/{}", peer.ip()),
    };
    match dispatch(state, &header, body, &cx).await {
        Some(response) => encode(header.correlation_id, api_key, header.request_api_version, &response),
        None => Reply::Nothing,
    }
}

fn encode(correlation_id: i32, api_key: ApiKey, version: i16, body: &ResponseKind) -> Reply {
    if let ResponseKind::Fetch(fetch) = body {
        return match frame::encode_fetch_response(correlation_id, version, fetch) {
            Ok(parts) => Reply::Parts(parts),
            Err(e) => Reply::Close(format!("could not encode the response: {e}")),
        };
    }
    match frame::encode_response(correlation_id, api_key, version, body) {
        Ok(bytes) => Reply::Frame(bytes),
        // Only reachable through a bug of ours (a field this version cannot carry); closing
        // tells the client more than a response it would misread.
        Err(e) => Reply::Close(format!("could not encode the response: {e}")),
    }
}

async fn dispatch(state: &BrokerState, header: &RequestHeader, body: RequestKind, cx: &RequestContext) -> Option<ResponseKind> {
    let version = header.request_api_version;
    Some(match body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(state, r, version)),
        RequestKind::DescribeTopicPartitions(r) => ResponseKind::DescribeTopicPartitions(describe_topic_partitions::handle(state, r)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics::handle(state, r, version)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::handle(state, r, version)),
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(state, r, version)?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(state, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(state, r, version)),
        RequestKind::DescribeCluster(_) => ResponseKind::DescribeCluster(describe_cluster::handle(state)),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records::handle(state, r)),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(init_producer_id::handle(state, r)),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(describe_configs::handle(state, r, version)),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(alter_configs::handle(state, r)),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(create_partitions::handle(state, r)),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(state, r))
        }
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(find_coordinator::handle(state, r, version)),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(join_group::handle(state, r, version, cx).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group::handle(state, r, version).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(state, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(leave_group::handle(state, r, version)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offset_commit::handle(state, r, version)),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch::handle(state, r, version)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(list_groups::handle(state, r, version)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(describe_groups::handle(state, r, version)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(delete_groups::handle(state, r)),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(offset_delete::handle(state, r)),
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(add_partitions_to_txn::handle(state, r, version)),
        RequestKind::AddOffsetsToTxn(r) => ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(state, r, version)),
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(end_txn::handle(state, r, version)),
        RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(state, r, version)),
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(describe_transactions::handle(state, r)),
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(list_transactions::handle(state, r)),
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(describe_user_scram_credentials::handle(state, r))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(alter_user_scram_credentials::handle(state, r))
        }
        // Unreachable while SUPPORTED and this match agree; answer rather than panic.
        _ => return None,
    })
}

/// Protocol strings as owned text for the group coordinator's state.
pub(crate) fn string(s: &StrBytes) -> String {
    s.to_string()
}

/// Whether each replica list of a manual assignment names exactly this broker (the only one
/// there is); CreateTopics and CreatePartitions refuse anything else.
pub fn assigns_only_this_broker<'a>(mut replica_lists: impl Iterator<Item = &'a [kafka_protocol::messages::BrokerId]>, node: i32) -> bool {
    replica_lists.all(|ids| matches!(ids, [only] if only.0 == node))
}

/// Milliseconds since the Unix epoch, the unit of every Kafka timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    //! Every API answers at every version it advertises, with a response the codec can read
    //! back at that version (a field set that an old version cannot carry would fail here).

    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::config::BrokerConfig;

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    /// A typical request of each API, touching the topic `t` (2 partitions, one record).
    pub(crate) fn sample_request(key: ApiKey, version: i16) -> RequestKind {
        match key {
            ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
            ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("t"))),
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("missing"))),
            ]))),
            // A partition limit of 1: the unknown topic, then the first partition of `t` and a
            // cursor to the next.
            ApiKey::DescribeTopicPartitions => RequestKind::DescribeTopicPartitions(DescribeTopicPartitionsRequest::default()
                .with_response_partition_limit(1)
                .with_topics(vec![
                    describe_topic_partitions_request::TopicRequest::default().with_name(name("t")),
                    describe_topic_partitions_request::TopicRequest::default().with_name(name("missing")),
                ])),
            ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default().with_validate_only(true).with_topics(vec![
                create_topics_request::CreatableTopic::default().with_name(name("new")).with_num_partitions(3).with_replication_factor(1),
                create_topics_request::CreatableTopic::default().with_name(name("t")).with_num_partitions(1).with_replication_factor(1),
            ])),
            ApiKey::DeleteTopics if version >= 6 => RequestKind::DeleteTopics(DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default().with_name(Some(name("missing")))])),
            ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default().with_topic_names(vec![name("missing")])),
            ApiKey::Produce => RequestKind::Produce(ProduceRequest::default().with_acks(1).with_topic_data(vec![
                produce_request::TopicProduceData::default().with_name(name("t")).with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_index(0).with_records(Some(one_record())),
                    produce_request::PartitionProduceData::default().with_index(9).with_records(Some(one_record())),
                ]),
            ])),
            ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default().with_max_bytes(1 << 20).with_topics(vec![
                fetch_request::FetchTopic::default().with_topic(name("t")).with_partitions(vec![
                    fetch_request::FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20),
                    fetch_request::FetchPartition::default().with_partition(1).with_fetch_offset(5).with_partition_max_bytes(1 << 20),
                ]),
            ])),
            ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default().with_name(name("t")).with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
                    list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-2),
                    list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(0),
                ]),
            ])),
            ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
            ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default().with_name(name("t")).with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default().with_partition_index(0).with_offset(0),
                    delete_records_request::DeleteRecordsPartition::default().with_partition_index(1).with_offset(99),
                    delete_records_request::DeleteRecordsPartition::default().with_partition_index(7).with_offset(-1),
                ]),
            ])),
            ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)),
            ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_include_documentation(version >= 3)
                .with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("t")),
                    describe_configs_request::DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("missing")),
                    describe_configs_request::DescribeConfigsResource::default().with_resource_type(4).with_resource_name(StrBytes::from_static_str("1")),
                ])),
            ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default().with_validate_only(true).with_resources(vec![
                alter_configs_request::AlterConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("t")).with_configs(vec![
                    alter_configs_request::AlterableConfig::default().with_name(StrBytes::from_static_str("retention.ms")).with_value(Some(StrBytes::from_static_str("1000"))),
                ]),
                alter_configs_request::AlterConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("t")).with_configs(vec![
                    alter_configs_request::AlterableConfig::default().with_name(StrBytes::from_static_str("no.such.key")).with_value(Some(StrBytes::from_static_str("1"))),
                ]),
            ])),
            ApiKey::CreatePartitions => RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_validate_only(true).with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default().with_name(name("t")).with_count(4).with_assignments(None),
                create_partitions_request::CreatePartitionsTopic::default().with_name(name("missing")).with_count(4),
            ])),
            ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default().with_validate_only(true).with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("t")).with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default().with_name(StrBytes::from_static_str("cleanup.policy")).with_config_operation(2).with_value(Some(StrBytes::from_static_str("compact"))),
                ]),
            ])),
            ApiKey::FindCoordinator if version >= 4 => RequestKind::FindCoordinator(
                FindCoordinatorRequest::default().with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
            ),
            ApiKey::FindCoordinator => RequestKind::FindCoordinator(
                FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")).with_key_type(if version == 2 { 1 } else { 0 }),
            ),
            // A fresh group per version; from v5 a static member, so the join completes with a
            // full success response rather than MEMBER_ID_REQUIRED.
            ApiKey::JoinGroup => RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(format!("join-v{version}"))))
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(if version >= 1 { 10_000 } else { -1 })
                    .with_group_instance_id((version >= 5).then(|| StrBytes::from_static_str("instance")))
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))
                        .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0]))]),
            ),
            ApiKey::SyncGroup => RequestKind::SyncGroup(
                SyncGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("missing"))).with_member_id(StrBytes::from_static_str("m")),
            ),
            ApiKey::Heartbeat => RequestKind::Heartbeat(
                HeartbeatRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_member_id(StrBytes::from_static_str("m")),
            ),
            ApiKey::LeaveGroup if version >= 3 => RequestKind::LeaveGroup(
                LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(StrBytes::from_static_str("m")),
                ]),
            ),
            ApiKey::LeaveGroup => RequestKind::LeaveGroup(
                LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_member_id(StrBytes::from_static_str("m")),
            ),
            ApiKey::OffsetCommit => RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_retention_time_ms(-1)
                    .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(name("t")).with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1),
                        offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(9).with_committed_offset(1),
                    ])]),
            ),
            ApiKey::OffsetFetch if version >= 8 => RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_topics(None),
                offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(StrBytes::from_static_str("missing"))).with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default().with_name(name("t")).with_partition_indexes(vec![0, 1]),
                ])),
            ])),
            ApiKey::OffsetFetch => RequestKind::OffsetFetch(
                OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default().with_name(name("t")).with_partition_indexes(vec![0, 1]),
                ])),
            ),
            ApiKey::ListGroups => RequestKind::ListGroups(
                ListGroupsRequest::default()
                    .with_states_filter(if version >= 4 { vec![StrBytes::from_static_str("Empty")] } else { vec![] })
                    .with_types_filter(if version >= 5 { vec![StrBytes::from_static_str("classic")] } else { vec![] }),
            ),
            ApiKey::DescribeGroups => RequestKind::DescribeGroups(
                DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(StrBytes::from_static_str("g")), GroupId(StrBytes::from_static_str("join-v9"))])
                    .with_include_authorized_operations(version >= 3),
            ),
            ApiKey::DeleteGroups => RequestKind::DeleteGroups(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(StrBytes::from_static_str("missing"))]),
            ),
            ApiKey::OffsetDelete => RequestKind::OffsetDelete(
                OffsetDeleteRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default().with_name(name("t")).with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0),
                    ]),
                ]),
            ),
            // On a listener without SASL both are answered ILLEGAL_SASL_STATE.
            ApiKey::SaslHandshake => RequestKind::SaslHandshake(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"))),
            ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from_static(b"\0u\0p"))),
            ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                describe_user_scram_credentials_request::UserName::default().with_name(StrBytes::from_static_str("alice")),
                describe_user_scram_credentials_request::UserName::default().with_name(StrBytes::from_static_str("nobody")),
            ]))),
            ApiKey::AlterUserScramCredentials => RequestKind::AlterUserScramCredentials(AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                    .with_name(StrBytes::from_static_str("alice"))
                    .with_mechanism(2)
                    .with_iterations(4096)
                    .with_salt(bytes::Bytes::from_static(b"salt"))
                    .with_salted_password(bytes::Bytes::from(vec![7u8; 64])),
            ]).with_deletions(vec![
                alter_user_scram_credentials_request::ScramCredentialDeletion::default().with_name(StrBytes::from_static_str("nobody")).with_mechanism(1),
            ])),
            // A transaction from InitProducerId to EndTxn is driven by the clients' tests; here
            // each request for an unknown transactional id gets its error answer.
            ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                .with_v3_and_below_producer_id(ProducerId(5))
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(name("t")).with_partitions(vec![0, 1]),
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(name("missing")).with_partitions(vec![0]),
                ])),
            ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                .with_group_id(GroupId(StrBytes::from_static_str("g")))),
            ApiKey::EndTxn => RequestKind::EndTxn(EndTxnRequest::default().with_transactional_id(TransactionalId(StrBytes::from_static_str("tx"))).with_committed(true)),
            ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id(-1)
                .with_member_id(StrBytes::from_static_str(""))
                .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default().with_name(name("t")).with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1),
                ])])),
            ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(
                DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str("tx"))]),
            ),
            ApiKey::ListTransactions => RequestKind::ListTransactions(ListTransactionsRequest::default()
                .with_state_filters(vec![StrBytes::from_static_str("Ongoing"), StrBytes::from_static_str("NoSuchState")])
                .with_duration_filter(-1)),
            other => panic!("add a sample request for {other:?} to this test"),
        }
    }

    fn one_record() -> bytes::Bytes {
        let record = tern_kafka::records::PlainRecord { value: Some(bytes::Bytes::from_static(b"v")), timestamp: 1_700_000_000_000, ..Default::default() };
        tern_kafka::records::encode_batch(&[record], kafka_protocol::records::Compression::None).expect("encode")
    }

    #[tokio::test]
    async fn every_advertised_version_answers_with_a_decodable_response() {
        let dir = tempfile::tempdir().expect("dir");
        let addr: SocketAddr = "127.0.0.1:9092".parse().expect("addr");
        let mut config = BrokerConfig::with_data_dir(dir.path());
        config.groups.initial_rebalance_delay = std::time::Duration::ZERO;
        let state = std::sync::Arc::new(crate::server::open_state(config, addr).expect("state"));
        state.topics.create("t", 2, Default::default()).map_err(|e| format!("{e:?}")).expect("topic");
        // Join-group responses wait for the coordinator's timers.
        let timers = tokio::spawn({
            let state = state.clone();
            async move { state.groups.run_timers().await }
        });
        for (key, min, max) in SUPPORTED {
            for version in *min..=*max {
                let header = RequestHeader::default()
                    .with_request_api_key(*key as i16)
                    .with_request_api_version(version)
                    .with_correlation_id(version as i32)
                    .with_client_id(Some(StrBytes::from_static_str("test")));
                let frame = tern_kafka::frame::encode_request(&header, &sample_request(*key, version)).expect("encode request");
                let mut auth = crate::auth::ConnectionAuth::new(&state.config.security);
                match handle_frame(&state, frame.slice(4..), addr, &mut auth).await {
                    reply @ (Reply::Frame(_) | Reply::Parts(_)) => {
                        let resp = match reply {
                            Reply::Parts(parts) => Bytes::from(parts.concat()),
                            Reply::Frame(frame) => frame,
                            _ => unreachable!("matched above"),
                        };
                        let mut body = resp.slice(4..);
                        let (cid, _) = tern_kafka::frame::decode_response(*key, version, &mut body)
                            .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
                        assert_eq!(cid, version as i32);
                    }
                    Reply::Nothing => panic!("{key:?} v{version}: no response"),
                    Reply::Close(why) | Reply::FrameThenClose(_, why) => panic!("{key:?} v{version}: {why}"),
                }
            }
        }
        timers.abort();
    }
}
