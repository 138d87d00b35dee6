//! Record-level view of a stored batch: the offset and timestamp of each record, for
//! ListOffsets by timestamp. Decompresses with kafka-protocol's codecs, then reads only the
//! record prefixes (length, attributes, timestamp delta, offset delta), so a batch whose header
//! claims absurd counts costs no more than its data.

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
use tern_kafka::batch::{BatchHeader, Codec, HEADER_LEN};

/// `(offset, timestamp)` of every record of `batch` (one complete stored batch), in order.
/// LogAppendTime batches give every record the batch's max timestamp, as Kafka does.
pub(crate) fn record_times(batch: &[u8], h: &BatchHeader) -> Result<Vec<(i64, i64)>, String> {
    let body = batch
        .get(HEADER_LEN..)
        .ok_or("batch shorter than its header")?;
    let data = decompress(h.codec(), Bytes::copy_from_slice(body))?;
    let mut out = Vec::new();
    let mut p = 0usize;
    let mut n = 0i64;
    while n < i64::from(h.record_count) && p < data.len() {
        let len = read_varint(&data, &mut p)?;
        let len = usize::try_from(len).map_err(|_| format!("negative record length {len}"))?;
        let end = p
            .checked_add(len)
            .filter(|&e| e <= data.len())
            .ok_or("record runs past the batch")?;
        let mut q = p + 1; // attributes
        if q > end {
            return Err("empty record".into());
        }
        let ts_delta = read_varlong(&data[..end], &mut q)?;
        let offset_delta = read_varint(&data[..end], &mut q)?;
        let ts = if h.is_log_append_time() {
            h.max_timestamp
        } else {
            h.base_timestamp.wrapping_add(ts_delta)
        };
        out.push((h.base_offset.saturating_add(i64::from(offset_delta)), ts));
        p = end;
        n += 1;
    }
    Ok(out)
}

fn decompress(codec: Codec, mut data: Bytes) -> Result<Bytes, String> {
    let r = match codec {
        Codec::None => return Ok(data),
        Codec::Gzip => {
            <Gzip as Decompressor<Bytes>>::decompress(&mut data, |b| Ok(std::mem::take(b)))
        }
        Codec::Snappy => {
            <Snappy as Decompressor<Bytes>>::decompress(&mut data, |b| Ok(std::mem::take(b)))
        }
        Codec::Lz4 => {
            <Lz4 as Decompressor<Bytes>>::decompress(&mut data, |b| Ok(std::mem::take(b)))
        }
        Codec::Zstd => {
            <Zstd as Decompressor<Bytes>>::decompress(&mut data, |b| Ok(std::mem::take(b)))
        }
        Codec::Unknown(c) => return Err(format!("unknown compression codec {c}")),
    };
    r.map_err(|e| format!("decompression failed: {e:#}"))
}

fn read_varlong(b: &[u8], p: &mut usize) -> Result<i64, String> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*p).ok_or("truncated varint")?;
        *p += 1;
        if shift == 63 && byte > 1 {
            return Err("varint too long".into());
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
        }
    }
    Err("varint too long".into())
}

fn read_varint(b: &[u8], p: &mut usize) -> Result<i32, String> {
    let v = read_varlong(b, p)?;
    i32::try_from(v).map_err(|_| format!("varint {v} out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zigzag(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let enc = zigzag(v);
            let mut p = 0;
            assert_eq!(read_varlong(&enc, &mut p).expect("decode"), v);
            assert_eq!(p, enc.len());
        }
        let mut p = 0;
        assert!(read_varint(&zigzag(i64::from(i32::MAX) + 1), &mut p).is_err());
        let mut p = 0;
        assert!(read_varlong(&[0x80, 0x80], &mut p).is_err());
    }
}
