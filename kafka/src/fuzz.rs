//! Property tests: nothing a peer can send makes the decoders panic or allocate without bound.
//! Inputs are random bytes and mutations (flipped bytes, cut tails, spliced garbage) of valid
//! frames and record batches.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, MetadataRequest, ProduceRequest, RequestHeader,
    RequestKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use proptest::prelude::*;

use crate::batch::{verify_crc, BatchHeader, Batches};
use crate::records::{encode_batch, PlainRecord};
use crate::frame::{self, complete_frame_len, peek_request_prefix};

fn sample_batch(compression: Compression) -> Bytes {
    let records: Vec<PlainRecord> = (0..4)
        .map(|i| PlainRecord {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: (i != 2).then(|| Bytes::from(vec![b'v'; 40])),
            headers: vec![("h".to_string(), Some(Bytes::from_static(b"1")))],
            timestamp: 1_700_000_000_000 + i,
        })
        .collect();
    encode_batch(&records, compression).expect("encode")
}

/// Valid request frames (without size prefix) of the APIs a broker sees most.
fn sample_frames() -> Vec<Bytes> {
    let name = TopicName(StrBytes::from_static_str("orders"));
    let requests: Vec<(ApiKey, i16, RequestKind)> = vec![
        (ApiKey::ApiVersions, 3, RequestKind::ApiVersions(ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("x"))
            .with_client_software_version(StrBytes::from_static_str("1")))),
        (ApiKey::Metadata, 12, RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name.clone())),
        ])))),
        (ApiKey::Produce, 9, RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(vec![
            TopicProduceData::default().with_name(name.clone()).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(sample_batch(Compression::Lz4))),
            ]),
        ]))),
        (ApiKey::Fetch, 12, RequestKind::Fetch(FetchRequest::default().with_max_wait_ms(500).with_topics(vec![
            FetchTopic::default().with_topic(name).with_partitions(vec![FetchPartition::default().with_fetch_offset(5)]),
        ]))),
    ];
    requests
        .into_iter()
        .map(|(key, version, body)| {
            let header = RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(Some(StrBytes::from_static_str("fuzz")));
            frame::encode_request(&header, &body).expect("encode").slice(4..)
        })
        .collect()
}

/// What the broker does with a frame, minus the I/O: it must return, never panic.
fn decode_like_the_broker(frame: &[u8]) {
    let _ = complete_frame_len(frame, 1 << 20);
    let Ok(prefix) = peek_request_prefix(frame) else { return };
    let Ok(key) = ApiKey::try_from(prefix.api_key) else { return };
    let mut bytes = Bytes::copy_from_slice(frame);
    if frame::decode_request_header(key, &mut bytes).is_ok() {
        let _ = frame::decode_request_body(key, prefix.api_version, &mut bytes);
    }
    // Every API at every version the codec knows, on the same bytes.
    for key in ApiKey::iter() {
        let range = key.valid_versions();
        for version in range.min..=range.max {
            let mut body = Bytes::copy_from_slice(frame);
            let _ = frame::decode_request_body(key, version, &mut body);
        }
    }
}

fn inspect_batches(data: &[u8]) {
    for item in Batches::new(data) {
        let Ok((at, header)) = item else { break };
        let _ = verify_crc(&data[at..at + header.total_len()]);
    }
    let _ = BatchHeader::parse(data);
    let mut b = Bytes::copy_from_slice(data);
    let _ = RecordBatchDecoder::decode_all(&mut b);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Cut(usize),
    Splice(usize, Vec<u8>),
    /// Overwrite four bytes with a huge or negative length/count.
    BigCount(usize, i32),
}

fn apply(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if data.is_empty() {
            break;
        }
        match m {
            Mutation::Flip(at, bits) => {
                let i = at % data.len();
                data[i] ^= bits | 1;
            }
            Mutation::Cut(at) => data.truncate(at % data.len()),
            Mutation::Splice(at, junk) => {
                let i = at % data.len();
                data.splice(i..i, junk.iter().copied());
            }
            Mutation::BigCount(at, v) => {
                let i = at % data.len();
                for (j, byte) in v.to_be_bytes().iter().enumerate() {
                    if let Some(d) = data.get_mut(i + j) {
                        *d = *byte;
                    }
                }
            }
        }
    }
    data
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Flip(a, b)),
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(a, j)| Mutation::Splice(a, j)),
        (any::<usize>(), prop_oneof![Just(i32::MAX), Just(-2), Just(0x7fff_fff0), any::<i32>()])
            .prop_map(|(a, v)| Mutation::BigCount(a, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_like_the_broker(&data);
        inspect_batches(&data);
    }

    #[test]
    fn mutated_requests_never_panic(which in 0usize..4, mutations in proptest::collection::vec(mutation(), 1..6)) {
        let frames = sample_frames();
        let data = apply(frames[which % frames.len()].to_vec(), &mutations);
        decode_like_the_broker(&data);
    }

    #[test]
    fn mutated_batches_never_panic_and_are_caught_by_the_crc(
        codec in prop_oneof![Just(Compression::None), Just(Compression::Gzip), Just(Compression::Snappy), Just(Compression::Lz4), Just(Compression::Zstd)],
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let original = sample_batch(codec).to_vec();
        let data = apply(original.clone(), &mutations);
        inspect_batches(&data);
        // A change inside the checksummed range of a batch that still parses at full length
        // must fail its CRC: the broker relies on this to refuse corrupted produce data.
        if data.len() == original.len() && data[21..] != original[21..] {
            if let Ok(h) = BatchHeader::parse(&data) {
                if h.total_len() == data.len() {
                    prop_assert!(verify_crc(&data).is_err());
                }
            }
        }
    }
}
