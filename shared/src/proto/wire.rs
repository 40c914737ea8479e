//! Wire-level protobuf editing.
//!
//! prost drops fields it does not know when it decodes, so re-encoding a decoded Feast registry
//! would silently delete everything Larder does not model (on-demand views, permissions, newer
//! fields). Registry updates therefore split the serialized message into its top-level fields,
//! replace the few they change, and copy every other field's bytes verbatim.

use prost::Message;
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};

/// One field of a serialized message, as it appeared on the wire.
#[derive(Debug, Clone, Copy)]
pub struct RawField<'a> {
    pub number: u32,
    pub wire_type: WireType,
    /// The whole field: key and payload, ready to be copied out unchanged.
    pub raw: &'a [u8],
    /// For length-delimited fields, the content without the length prefix.
    pub payload: &'a [u8],
}

/// Splits a serialized message into its fields, in wire order.
pub fn split(mut buf: &[u8]) -> Result<Vec<RawField<'_>>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let start = buf;
        let mut cursor = buf;
        let (number, wire_type) = decode_key(&mut cursor).map_err(|e| e.to_string())?;
        let payload: &[u8] = match wire_type {
            WireType::Varint => {
                let before = cursor;
                decode_varint(&mut cursor).map_err(|e| e.to_string())?;
                &before[..before.len() - cursor.len()]
            }
            WireType::SixtyFourBit => take(&mut cursor, 8)?,
            WireType::ThirtyTwoBit => take(&mut cursor, 4)?,
            WireType::LengthDelimited => {
                let len = decode_varint(&mut cursor).map_err(|e| e.to_string())?;
                take(&mut cursor, usize::try_from(len).map_err(|e| e.to_string())?)?
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err(format!("field {number}: protobuf groups are not supported"));
            }
        };
        let consumed = start.len() - cursor.len();
        out.push(RawField { number, wire_type, raw: &start[..consumed], payload });
        buf = cursor;
    }
    Ok(out)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err("message truncated".into());
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

/// Appends a length-delimited field (a string, bytes or an embedded message).
pub fn put_bytes(number: u32, payload: &[u8], out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// Appends an embedded message field.
pub fn put_message<M: Message>(number: u32, msg: &M, out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(msg.encoded_len() as u64, out);
    msg.encode_raw(out);
}

/// Appends a varint field (int32, int64, bool, enum). Proto3 omits zero values; so does this.
pub fn put_varint(number: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        encode_key(number, WireType::Varint, out);
        encode_varint(value, out);
    }
}

/// The payload of the first length-delimited field `number`, if any.
pub fn first_bytes<'a>(fields: &[RawField<'a>], number: u32) -> Option<&'a [u8]> {
    fields.iter().find(|f| f.number == number && f.wire_type == WireType::LengthDelimited).map(|f| f.payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::core::{EntityMeta, EntitySpecV2};

    #[test]
    fn split_then_copy_is_identity_and_keeps_unknown_fields() {
        let spec = EntitySpecV2 { name: "driver".into(), join_key: "driver_id".into(), ..Default::default() };
        let mut buf = spec.encode_to_vec();
        // An unknown field 99 (varint) and 100 (fixed64) must survive a split and re-join.
        put_varint(99, 7, &mut buf);
        encode_key(100, WireType::SixtyFourBit, &mut buf);
        buf.extend_from_slice(&1.5f64.to_le_bytes());
        let fields = split(&buf).unwrap();
        assert_eq!(fields.iter().map(|f| f.number).collect::<Vec<_>>(), vec![1, 4, 99, 100]);
        let rejoined: Vec<u8> = fields.iter().flat_map(|f| f.raw.iter().copied()).collect();
        assert_eq!(rejoined, buf);
        assert_eq!(first_bytes(&fields, 4), Some(&b"driver_id"[..]));
    }

    #[test]
    fn put_message_matches_prost_field_encoding() {
        let meta = EntityMeta {
            created_timestamp: Some(prost_types::Timestamp { seconds: 5, nanos: 0 }),
            ..Default::default()
        };
        let mut ours = Vec::new();
        put_message(2, &meta, &mut ours);
        let wrapped = crate::proto::core::Entity { spec: None, meta: Some(meta) }.encode_to_vec();
        assert_eq!(ours, wrapped);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert!(split(&[0x0a, 0x05, 0x01]).is_err());
        assert!(split(&[0x80]).is_err());
    }
}
