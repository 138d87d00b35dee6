//! Entry points for the fuzz targets (`fuzz/`) and the property tests: what the broker does
//! with bytes from the network before any state changes, as plain functions.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};
use tern_kafka::frame;

/// Decodes a request frame (without its size prefix) as the broker does: prefix, supported
/// version, header and body; the records of a Produce request then go through
/// [`crate::storage::fuzz_client_records`]. Returns; never panics, whatever the bytes.
pub fn request(frame_bytes: &[u8]) {
    let _ = frame::complete_frame_len(frame_bytes, 1 << 20);
    let Ok(prefix) = frame::peek_request_prefix(frame_bytes) else { return };
    let Ok(key) = ApiKey::try_from(prefix.api_key) else { return };
    if !crate::apis::supported_range(key).is_some_and(|(min, max)| (min..=max).contains(&prefix.api_version)) {
        return;
    }
    let mut bytes = Bytes::copy_from_slice(frame_bytes);
    let Ok(header) = frame::decode_request_header(key, &mut bytes) else { return };
    let Ok(body) = frame::decode_request_body(key, header.request_api_version, &mut bytes) else { return };
    if let RequestKind::Produce(p) = body {
        for t in &p.topic_data {
            for part in &t.partition_data {
                if let Some(records) = &part.records {
                    crate::storage::fuzz_client_records(records);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, RequestHeader, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::Compression;
    use proptest::prelude::*;
    use tern_kafka::records::{encode_batch, PlainRecord};

    fn produce_frame(compression: Compression) -> Vec<u8> {
        let records: Vec<PlainRecord> = (0..4).map(|i| PlainRecord::new(format!("k{i}"), Some(Bytes::from(format!("v{i}"))), 1_800_000_000_000 + i)).collect();
        let body = RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("orders")))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(encode_batch(&records, compression).expect("encode")))])]));
        let header = RequestHeader::default().with_request_api_key(ApiKey::Produce as i16).with_request_api_version(9).with_correlation_id(1);
        frame::encode_request(&header, &body).expect("encode")[4..].to_vec()
    }

    proptest! {
        /// Produce requests with bytes flipped anywhere (the header, the batch header, the
        /// compressed records) go through decoding and Kafka's client rules without a panic;
        /// the libFuzzer target (`fuzz/`) runs the same function for millions of inputs.
        #[test]
        fn a_mutated_produce_request_never_panics(codec in 0usize..5, flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
            let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
            let mut frame = produce_frame(codecs[codec]);
            for (at, xor) in flips {
                let i = at.index(frame.len());
                frame[i] ^= xor.max(1);
            }
            request(&frame);
        }
    }
}
