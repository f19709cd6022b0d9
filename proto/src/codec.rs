//! The gRPC codec of every Meridian service: prost's, except that a message's
//! encode buffer is reserved at its final size before encoding.
//!
//! tonic encodes into a small buffer that grows as fields are written. A
//! 4 MiB payload followed by any other field (a read reply's version, a
//! replica op's log entry) made it grow twice: to the payload's size, then
//! to double that, copying the payload once more and holding 8 MiB for a
//! 4 MiB message. Reserving `encoded_len()` first costs one pass over the
//! message's lengths and makes the payload's copy into the buffer the only one.

use prost::Message;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// Prost messages as gRPC frames, encoded into a buffer of their final size.
#[derive(Debug, Clone)]
pub struct SizedProstCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SizedProstCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for SizedProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = SizedEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        SizedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        // The decoder already reserves a whole message once its header is read.
        ProstDecoder::default()
    }
}

/// Encodes `T` after reserving its encoded length.
#[derive(Debug, Clone)]
pub struct SizedEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for SizedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encode: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osd::{OpReply, ResultCode, SubOpResult, Version};
    use bytes::{Buf, Bytes};
    use http_body_util::BodyExt;
    use tonic::codec::EncodeBody;

    #[tokio::test]
    async fn a_large_reply_is_one_frame_that_decodes_to_itself() {
        // A payload followed by fields after it, as a read reply has.
        let reply = OpReply {
            code: ResultCode::Ok as i32,
            results: vec![SubOpResult {
                data: Bytes::from(vec![7u8; 4 << 20]),
                size: 4 << 20,
                mtime_unix_ms: 1,
                ..Default::default()
            }],
            user_version: 9,
            map_epoch: 3,
            version: Some(Version { epoch: 3, seq: 9 }),
            ..Default::default()
        };
        let body = EncodeBody::new_client(
            SizedEncoder(PhantomData),
            tokio_stream::once(Ok(reply.clone())),
            None,
            Some(64 << 20),
        );
        let mut frame = body.collect().await.unwrap().to_bytes();
        assert_eq!(frame.len(), 5 + reply.encoded_len());
        assert_eq!(frame.get_u8(), 0, "not compressed");
        assert_eq!(frame.get_u32() as usize, reply.encoded_len());
        assert_eq!(OpReply::decode(frame).unwrap(), reply);
    }
}
