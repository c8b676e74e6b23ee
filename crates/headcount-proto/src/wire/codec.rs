//! Encoding and decoding of single, un-framed messages: a type byte followed
//! by the msgpack body (wire-protocol.md §1, §2).
//!
//! Bodies are maps keyed by the Go field names, written in the order Go
//! writes them (sorted). Omit-empty fields are left out when zero; other
//! empty byte fields are written as nil. Decoding accepts any key order,
//! skips unknown keys, and leaves missing keys at zero.

use super::messages::*;
use super::msgpack::{
    write_bool, write_bytes_or_nil, write_int, write_map_len, write_raw, write_uint, Counter,
    DecodeError, Reader, Sink,
};
use crate::name::Name;

/// A msgpack map body of the wire protocol.
pub(crate) trait Body: Sized {
    fn encode_body<S: Sink>(&self, out: &mut S);
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// Iterate over the entries of a map, calling `field` with each string key;
/// `field` returns `false` for an unknown key, which is then skipped.
fn read_map<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
    mut field: impl FnMut(&[u8], &mut Reader<'a>) -> Result<bool, DecodeError>,
) -> Result<(), DecodeError> {
    let n = r.read_map_len(what)?;
    for _ in 0..n {
        match r.read_key()? {
            Some(key) => {
                if !field(key, r)? {
                    r.skip()?;
                }
            }
            None => r.skip()?,
        }
    }
    Ok(())
}

fn key<S: Sink>(out: &mut S, name: &str) {
    write_raw(out, name.as_bytes());
}

fn read_vsn(r: &mut Reader<'_>) -> Result<Vsn, DecodeError> {
    let b = r.read_bytes("Vsn")?;
    // Go (since #368) treats a Vsn shorter than 6 bytes as absent.
    let mut v = [0u8; 6];
    if let Some(s) = b.get(..6) {
        v.copy_from_slice(s);
    }
    Ok(v)
}

fn owned_str(r: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    r.read_str(what).map(str::to_owned)
}

/// A node name, inline when short (no allocation for names of up to 23
/// bytes, the usual case).
fn name(r: &mut Reader<'_>, what: &'static str) -> Result<Name, DecodeError> {
    r.read_str(what).map(Name::new)
}

fn owned_bytes(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<u8>, DecodeError> {
    r.read_bytes(what).map(<[u8]>::to_vec)
}

impl Body for Ping {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        let n = 2
            + usize::from(!self.source_addr.is_empty())
            + usize::from(!self.source_node.is_empty())
            + usize::from(self.source_port != 0);
        write_map_len(out, n);
        key(out, "Node");
        write_raw(out, self.node.as_bytes());
        key(out, "SeqNo");
        write_uint(out, self.seq_no.into());
        if !self.source_addr.is_empty() {
            key(out, "SourceAddr");
            write_raw(out, &self.source_addr);
        }
        if !self.source_node.is_empty() {
            key(out, "SourceNode");
            write_raw(out, self.source_node.as_bytes());
        }
        if self.source_port != 0 {
            key(out, "SourcePort");
            write_uint(out, self.source_port.into());
        }
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = Ping::default();
        read_map(r, "ping", |k, r| {
            match k {
                b"Node" => m.node = owned_str(r, "Node")?,
                b"SeqNo" => m.seq_no = r.read_int_as("SeqNo")?,
                b"SourceAddr" => m.source_addr = owned_bytes(r, "SourceAddr")?,
                b"SourceNode" => m.source_node = owned_str(r, "SourceNode")?,
                b"SourcePort" => m.source_port = r.read_int_as("SourcePort")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl Body for IndirectPingReq {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        let n = 5
            + usize::from(!self.source_addr.is_empty())
            + usize::from(!self.source_node.is_empty())
            + usize::from(self.source_port != 0);
        write_map_len(out, n);
        key(out, "Nack");
        write_bool(out, self.nack);
        key(out, "Node");
        write_raw(out, self.node.as_bytes());
        key(out, "Port");
        write_uint(out, self.port.into());
        key(out, "SeqNo");
        write_uint(out, self.seq_no.into());
        if !self.source_addr.is_empty() {
            key(out, "SourceAddr");
            write_raw(out, &self.source_addr);
        }
        if !self.source_node.is_empty() {
            key(out, "SourceNode");
            write_raw(out, self.source_node.as_bytes());
        }
        if self.source_port != 0 {
            key(out, "SourcePort");
            write_uint(out, self.source_port.into());
        }
        key(out, "Target");
        write_bytes_or_nil(out, &self.target);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = IndirectPingReq::default();
        read_map(r, "indirectPingReq", |k, r| {
            match k {
                b"Nack" => m.nack = r.read_bool("Nack")?,
                b"Node" => m.node = owned_str(r, "Node")?,
                b"Port" => m.port = r.read_int_as("Port")?,
                b"SeqNo" => m.seq_no = r.read_int_as("SeqNo")?,
                b"SourceAddr" => m.source_addr = owned_bytes(r, "SourceAddr")?,
                b"SourceNode" => m.source_node = owned_str(r, "SourceNode")?,
                b"SourcePort" => m.source_port = r.read_int_as("SourcePort")?,
                b"Target" => m.target = owned_bytes(r, "Target")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl Body for AckResp {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        write_map_len(out, 2);
        key(out, "Payload");
        write_bytes_or_nil(out, &self.payload);
        key(out, "SeqNo");
        write_uint(out, self.seq_no.into());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = AckResp::default();
        read_map(r, "ackResp", |k, r| {
            match k {
                b"Payload" => m.payload = owned_bytes(r, "Payload")?,
                b"SeqNo" => m.seq_no = r.read_int_as("SeqNo")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl Body for NackResp {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        write_map_len(out, 1);
        key(out, "SeqNo");
        write_uint(out, self.seq_no.into());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = NackResp::default();
        read_map(r, "nackResp", |k, r| {
            match k {
                b"SeqNo" => m.seq_no = r.read_int_as("SeqNo")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl Body for ErrResp {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        write_map_len(out, 1);
        key(out, "Error");
        write_raw(out, self.error.as_bytes());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = ErrResp::default();
        read_map(r, "errResp", |k, r| {
            match k {
                b"Error" => m.error = owned_str(r, "Error")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

/// `suspect` and `dead` share their layout.
fn encode_from_inc_node<S: Sink>(out: &mut S, from: &str, incarnation: u32, node: &str) {
    write_map_len(out, 3);
    key(out, "From");
    write_raw(out, from.as_bytes());
    key(out, "Incarnation");
    write_uint(out, incarnation.into());
    key(out, "Node");
    write_raw(out, node.as_bytes());
}

fn decode_from_inc_node(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<(Name, u32, Name), DecodeError> {
    let (mut from, mut inc, mut node) = (Name::default(), 0u32, Name::default());
    read_map(r, what, |k, r| {
        match k {
            b"From" => from = name(r, "From")?,
            b"Incarnation" => inc = r.read_int_as("Incarnation")?,
            b"Node" => node = name(r, "Node")?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((from, inc, node))
}

impl Body for Suspect {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        encode_from_inc_node(out, &self.from, self.incarnation, &self.node);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (from, incarnation, node) = decode_from_inc_node(r, "suspect")?;
        Ok(Suspect {
            incarnation,
            node,
            from,
        })
    }
}

impl Body for Dead {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        encode_from_inc_node(out, &self.from, self.incarnation, &self.node);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (from, incarnation, node) = decode_from_inc_node(r, "dead")?;
        Ok(Dead {
            incarnation,
            node,
            from,
        })
    }
}

impl Body for Alive {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        write_map_len(out, 6);
        key(out, "Addr");
        write_bytes_or_nil(out, &self.addr);
        key(out, "Incarnation");
        write_uint(out, self.incarnation.into());
        key(out, "Meta");
        write_bytes_or_nil(out, &self.meta);
        key(out, "Node");
        write_raw(out, self.node.as_bytes());
        key(out, "Port");
        write_uint(out, self.port.into());
        key(out, "Vsn");
        write_raw(out, &self.vsn);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        AliveRef::decode_body(r).map(|a| a.to_owned())
    }
}

/// An [`Alive`] borrowed from the packet it was decoded from: looked at
/// before anything is copied, so that a repeat of what a node already
/// holds costs no allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AliveRef<'a> {
    pub(crate) incarnation: u32,
    pub(crate) node: &'a str,
    pub(crate) addr: &'a [u8],
    pub(crate) port: u16,
    pub(crate) meta: &'a [u8],
    pub(crate) vsn: Vsn,
}

impl<'a> AliveRef<'a> {
    /// Decodes an alive's body (after its type byte), as
    /// [`Alive`]'s decoding does.
    pub(crate) fn decode_body(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let mut m = AliveRef::default();
        read_map(r, "alive", |k, r| {
            match k {
                b"Addr" => m.addr = r.read_bytes("Addr")?,
                b"Incarnation" => m.incarnation = r.read_int_as("Incarnation")?,
                b"Meta" => m.meta = r.read_bytes("Meta")?,
                b"Node" => m.node = r.read_str("Node")?,
                b"Port" => m.port = r.read_int_as("Port")?,
                b"Vsn" => m.vsn = read_vsn(r)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }

    /// The owned message.
    pub(crate) fn to_owned(self) -> Alive {
        Alive {
            incarnation: self.incarnation,
            node: self.node.to_owned(),
            addr: self.addr.to_vec(),
            port: self.port,
            meta: self.meta.to_vec(),
            vsn: self.vsn,
        }
    }
}

impl Body for PushPullHeader {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        write_map_len(out, 3);
        key(out, "Join");
        write_bool(out, self.join);
        key(out, "Nodes");
        write_int(out, self.nodes.into());
        key(out, "UserStateLen");
        write_int(out, self.user_state_len.into());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = PushPullHeader::default();
        read_map(r, "pushPullHeader", |k, r| {
            match k {
                b"Join" => m.join = r.read_bool("Join")?,
                b"Nodes" => m.nodes = r.read_int_as("Nodes")?,
                b"UserStateLen" => m.user_state_len = r.read_int_as("UserStateLen")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl Body for PushNodeState {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        write_map_len(out, 7);
        key(out, "Addr");
        write_bytes_or_nil(out, &self.addr);
        key(out, "Incarnation");
        write_uint(out, self.incarnation.into());
        key(out, "Meta");
        write_bytes_or_nil(out, &self.meta);
        key(out, "Name");
        write_raw(out, self.name.as_bytes());
        key(out, "Port");
        write_uint(out, self.port.into());
        key(out, "State");
        write_int(out, self.state.as_i64());
        key(out, "Vsn");
        write_raw(out, &self.vsn);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = PushNodeState::default();
        read_map(r, "pushNodeState", |k, r| {
            match k {
                b"Addr" => m.addr = owned_bytes(r, "Addr")?,
                b"Incarnation" => m.incarnation = r.read_int_as("Incarnation")?,
                b"Meta" => m.meta = owned_bytes(r, "Meta")?,
                b"Name" => m.name = owned_str(r, "Name")?,
                b"Port" => m.port = r.read_int_as("Port")?,
                b"State" => {
                    let v: i64 = r.read_int_as("State")?;
                    m.state =
                        WireState::from_i64(v).ok_or(DecodeError::InvalidState { value: v })?;
                }
                b"Vsn" => m.vsn = read_vsn(r)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

/// `userMsgHeader` of a reliable (stream) user message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UserMsgHeader {
    pub user_msg_len: u32,
}

impl Body for UserMsgHeader {
    fn encode_body<S: Sink>(&self, out: &mut S) {
        write_map_len(out, 1);
        key(out, "UserMsgLen");
        write_int(out, self.user_msg_len.into());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = UserMsgHeader::default();
        read_map(r, "userMsgHeader", |k, r| {
            match k {
                b"UserMsgLen" => m.user_msg_len = r.read_int_as("UserMsgLen")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

/// Write the body of a `compress` message: `{Algo: 0, Buf: data}`.
pub(crate) fn encode_compress_body<S: Sink>(out: &mut S, data: &[u8]) {
    write_map_len(out, 2);
    key(out, "Algo");
    write_uint(out, 0);
    key(out, "Buf");
    write_bytes_or_nil(out, data);
}

/// Read the body of a `compress` message: `(Algo, Buf)`, Buf borrowed.
pub(crate) fn decode_compress_body<'a>(r: &mut Reader<'a>) -> Result<(u8, &'a [u8]), DecodeError> {
    let mut algo = 0u8;
    let mut buf: &'a [u8] = &[];
    read_map(r, "compress", |k, r| {
        match k {
            b"Algo" => algo = r.read_int_as("Algo")?,
            b"Buf" => buf = r.read_bytes("Buf")?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((algo, buf))
}

fn encode_generic<S: Sink>(msg: &Message, out: &mut S) {
    match msg {
        Message::Ping(m) => {
            out.put(&[MessageType::Ping as u8]);
            m.encode_body(out);
        }
        Message::IndirectPing(m) => {
            out.put(&[MessageType::IndirectPing as u8]);
            m.encode_body(out);
        }
        Message::Ack(m) => {
            out.put(&[MessageType::Ack as u8]);
            m.encode_body(out);
        }
        Message::Nack(m) => {
            out.put(&[MessageType::Nack as u8]);
            m.encode_body(out);
        }
        Message::Suspect(m) => {
            out.put(&[MessageType::Suspect as u8]);
            m.encode_body(out);
        }
        Message::Alive(m) => {
            out.put(&[MessageType::Alive as u8]);
            m.encode_body(out);
        }
        Message::Dead(m) => {
            out.put(&[MessageType::Dead as u8]);
            m.encode_body(out);
        }
        Message::User(b) => {
            out.put(&[MessageType::User as u8]);
            out.put(b);
        }
        Message::Err(m) => {
            out.put(&[MessageType::Err as u8]);
            m.encode_body(out);
        }
    }
}

/// Append `msg` as `[type byte][body]` to `out` (no framing). A
/// [`Message::User`] body is the raw user bytes, as in a packet.
pub fn encode_message(msg: &Message, out: &mut Vec<u8>) {
    encode_generic(msg, out);
}

/// The number of bytes [`encode_message`] writes for `msg`, computed
/// without allocating.
pub fn encoded_len(msg: &Message) -> usize {
    let mut c = Counter(0);
    encode_generic(msg, &mut c);
    c.0
}

/// Decode one un-framed message: the type byte, then its body. Bytes after
/// the msgpack body are ignored (as Go does); a [`Message::User`] takes all
/// the bytes after the type byte.
///
/// Framing types (compound, compress, CRC, label, encrypt, push/pull) give
/// [`DecodeError::NotAPlainMessage`]; see [`super::packet::decode_packet`].
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    let (&t, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    let mut r = Reader::new(body);
    let ty = MessageType::from_byte(t).ok_or(DecodeError::UnknownType(t))?;
    let msg = match ty {
        MessageType::Ping => Message::Ping(Ping::decode_body(&mut r)?),
        MessageType::IndirectPing => Message::IndirectPing(IndirectPingReq::decode_body(&mut r)?),
        MessageType::Ack => Message::Ack(AckResp::decode_body(&mut r)?),
        MessageType::Nack => Message::Nack(NackResp::decode_body(&mut r)?),
        MessageType::Suspect => Message::Suspect(Suspect::decode_body(&mut r)?),
        MessageType::Alive => Message::Alive(Alive::decode_body(&mut r)?),
        MessageType::Dead => Message::Dead(Dead::decode_body(&mut r)?),
        MessageType::User => Message::User(body.to_vec()),
        MessageType::Err => Message::Err(ErrResp::decode_body(&mut r)?),
        MessageType::PushPull
        | MessageType::Compound
        | MessageType::Compress
        | MessageType::Encrypt
        | MessageType::HasCrc
        | MessageType::HasLabel => return Err(DecodeError::NotAPlainMessage(t)),
    };
    Ok(msg)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Hex with `"text"` segments standing for raw bytes, as in the spec.
    pub(crate) fn hx(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut parts = s.split('"');
        let mut in_str = false;
        for p in parts.by_ref() {
            if in_str {
                out.extend_from_slice(p.as_bytes());
            } else {
                let h: String = p.chars().filter(|c| !c.is_whitespace()).collect();
                assert!(h.len().is_multiple_of(2), "odd hex {h}");
                for i in (0..h.len()).step_by(2) {
                    out.push(u8::from_str_radix(&h[i..i + 2], 16).unwrap());
                }
            }
            in_str = !in_str;
        }
        out
    }

    pub(crate) fn ping_with_source() -> Ping {
        Ping {
            seq_no: 1,
            node: "b".into(),
            source_addr: vec![10, 0, 0, 1],
            source_port: 7946,
            source_node: "a".into(),
        }
    }

    pub(crate) const PING_WITH_SOURCE: &str = "0085a44e6f6465a162a55365714e6f01aa536f7572636541646472a40a000001aa536f757263654e6f6465a161aa536f75726365506f7274cd1f0a";
    pub(crate) const SUSPECT: &str = "0383a446726f6da161ab496e6361726e6174696f6e05a44e6f6465a162";

    pub(crate) fn suspect() -> Suspect {
        Suspect {
            incarnation: 5,
            node: "b".into(),
            from: "a".into(),
        }
    }

    fn both_ways(msg: Message, hex: &str) {
        let want = hx(hex);
        let mut out = Vec::new();
        encode_message(&msg, &mut out);
        assert_eq!(out, want, "encode {msg:?}");
        assert_eq!(encoded_len(&msg), want.len());
        assert_eq!(decode_message(&want).unwrap(), msg);
    }

    #[test]
    fn golden_ping_with_source() {
        both_ways(Message::Ping(ping_with_source()), PING_WITH_SOURCE);
    }

    #[test]
    fn golden_ping_300() {
        let p = Ping {
            seq_no: 300,
            node: "n2".into(),
            ..Default::default()
        };
        both_ways(
            Message::Ping(p),
            r#"00 82 a4"Node" a2"n2" a5"SeqNo" cd012c"#,
        );
    }

    #[test]
    fn golden_indirect_ping() {
        let m = IndirectPingReq {
            seq_no: 7,
            target: vec![10, 0, 0, 2],
            port: 7946,
            node: "n2".into(),
            nack: true,
            ..Default::default()
        };
        both_ways(
            Message::IndirectPing(m),
            r#"01 85 a4"Nack" c3 a4"Node" a2"n2" a4"Port" cd1f0a a5"SeqNo" 07 a6"Target" a40a000002"#,
        );
    }

    #[test]
    fn golden_ack() {
        let m = AckResp {
            seq_no: 7,
            payload: vec![],
        };
        both_ways(
            Message::Ack(m.clone()),
            r#"02 82 a7"Payload" c0 a5"SeqNo" 07"#,
        );
        assert_eq!(
            decode_message(&hx(r#"02 82 a7"Payload" a0 a5"SeqNo" 07"#)).unwrap(),
            Message::Ack(m)
        );
    }

    #[test]
    fn golden_alive() {
        let m = Alive {
            incarnation: 1,
            node: "n1".into(),
            addr: vec![127, 0, 0, 1],
            port: 7946,
            meta: vec![],
            vsn: [1, 5, 2, 0, 0, 0],
        };
        both_ways(
            Message::Alive(m),
            r#"04 86 a4"Addr" a47f000001 ab"Incarnation" 01 a4"Meta" c0 a4"Node" a2"n1" a4"Port" cd1f0a a3"Vsn" a6010502000000"#,
        );
    }

    #[test]
    fn golden_suspect() {
        both_ways(Message::Suspect(suspect()), SUSPECT);
    }

    #[test]
    fn golden_push_pull_header() {
        let h = PushPullHeader {
            nodes: 200,
            user_state_len: 40000,
            join: true,
        };
        let want = hx(r#"83 a4"Join" c3 a5"Nodes" d100c8 ac"UserStateLen" d200009c40"#);
        let mut out = Vec::new();
        h.encode_body(&mut out);
        assert_eq!(out, want);
        assert_eq!(
            PushPullHeader::decode_body(&mut Reader::new(&want)).unwrap(),
            h
        );
        let old = hx(r#"83 a4"Join" c3 a5"Nodes" ccc8 ac"UserStateLen" cd9c40"#);
        assert_eq!(
            PushPullHeader::decode_body(&mut Reader::new(&old)).unwrap(),
            h
        );
    }

    /// Produced by Debian's go-msgpack (v1, the pre-0.5.1 codec: unsigned
    /// markers for positive signed ints) with memberlist's struct layouts.
    #[test]
    fn go_msgpack_v1_vectors() {
        let st = PushNodeState {
            name: "n2".into(),
            addr: vec![10, 0, 0, 2],
            port: 7946,
            meta: b"role=web".to_vec(),
            incarnation: 1,
            state: WireState::Left,
            vsn: [1, 5, 2, 2, 5, 4],
        };
        let want = hx("87a441646472a40a000002ab496e6361726e6174696f6e01a44d657461a8726f6c653d776562a44e616d65a26e32a4506f7274cd1f0aa5537461746503a356736ea6010502020504");
        let mut out = Vec::new();
        st.encode_body(&mut out);
        assert_eq!(out, want);
        assert_eq!(
            PushNodeState::decode_body(&mut Reader::new(&want)).unwrap(),
            st
        );

        // State 200 (unsigned form): not a state we know.
        let bad = hx("87a441646472a47f000001ab496e6361726e6174696f6ecd012ca44d657461c0a44e616d65a26e31a4506f7274cd1f0aa55374617465ccc8a356736ea6010502020504");
        assert_eq!(
            PushNodeState::decode_body(&mut Reader::new(&bad)),
            Err(DecodeError::InvalidState { value: 200 })
        );

        // userMsgHeader{70000}: Go v1 wrote `ce`, we write `d2`.
        let h = UserMsgHeader {
            user_msg_len: 70000,
        };
        let old = hx("81aa557365724d73674c656ece00011170");
        assert_eq!(
            UserMsgHeader::decode_body(&mut Reader::new(&old)).unwrap(),
            h
        );
        let mut out = Vec::new();
        h.encode_body(&mut out);
        assert_eq!(out, hx("81aa557365724d73674c656ed200011170"));

        both_ways(
            Message::Dead(Dead {
                incarnation: 9,
                node: "b".into(),
                from: "b".into(),
            }),
            "05 83a446726f6da162ab496e6361726e6174696f6e09a44e6f6465a162",
        );
        both_ways(
            Message::Nack(NackResp { seq_no: 70000 }),
            "0b 81a55365714e6fce00011170",
        );
        both_ways(
            Message::Err(ErrResp {
                error: "e".repeat(40),
            }),
            &format!("0d 81a54572726f72da0028{}", "65".repeat(40)),
        );
        both_ways(
            Message::Ping(Ping {
                seq_no: 1,
                ..Default::default()
            }),
            "00 82a44e6f6465a0a55365714e6f01",
        );
    }

    #[test]
    fn tolerant_decoding() {
        // Unknown keys (nested), str8/bin forms, reordered keys, missing keys.
        let data = hx(concat!(
            r#"04 85 a3"Xyz" 92 81 a1"k" 01 c0 a4"Node" d9 02"n1" a4"Addr" c4 04 7f000001"#,
            r#" a3"Vsn" a3 010502 01 ff"#
        ));
        let m = decode_message(&data).unwrap();
        assert_eq!(
            m,
            Message::Alive(Alive {
                node: "n1".into(),
                addr: vec![127, 0, 0, 1],
                ..Default::default()
            })
        );
        assert!(matches!(
            decode_message(&hx(r#"00 81 a5"SeqNo" ff"#)),
            Err(DecodeError::IntegerOutOfRange { what: "SeqNo", .. })
        ));
        assert_eq!(
            decode_message(&hx("ee 80")),
            Err(DecodeError::UnknownType(0xee))
        );
        assert_eq!(decode_message(&[]), Err(DecodeError::Empty));
    }

    pub(crate) fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    pub(crate) fn arb_string() -> impl Strategy<Value = String> {
        prop_oneof![".{0,40}", "[a-z]{30,40}", "x{0,300}"]
    }

    pub(crate) fn arb_vsn() -> impl Strategy<Value = Vsn> {
        any::<[u8; 6]>()
    }

    pub(crate) fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u32>(),
                arb_string(),
                arb_bytes(20),
                any::<u16>(),
                arb_string()
            )
                .prop_map(|(seq_no, node, source_addr, source_port, source_node)| {
                    Message::Ping(Ping {
                        seq_no,
                        node,
                        source_addr,
                        source_port,
                        source_node,
                    })
                }),
            (
                (any::<u32>(), arb_bytes(20), any::<u16>(), arb_string()),
                (any::<bool>(), arb_bytes(20), any::<u16>(), arb_string())
            )
                .prop_map(|((seq_no, target, port, node), (nack, sa, sp, sn))| {
                    Message::IndirectPing(IndirectPingReq {
                        seq_no,
                        target,
                        port,
                        node,
                        nack,
                        source_addr: sa,
                        source_port: sp,
                        source_node: sn,
                    })
                }),
            (any::<u32>(), arb_bytes(300))
                .prop_map(|(seq_no, payload)| Message::Ack(AckResp { seq_no, payload })),
            any::<u32>().prop_map(|seq_no| Message::Nack(NackResp { seq_no })),
            (any::<u32>(), arb_string(), arb_string()).prop_map(|(incarnation, node, from)| {
                Message::Suspect(Suspect {
                    incarnation,
                    node: node.into(),
                    from: from.into(),
                })
            }),
            (any::<u32>(), arb_string(), arb_string()).prop_map(|(incarnation, node, from)| {
                Message::Dead(Dead {
                    incarnation,
                    node: node.into(),
                    from: from.into(),
                })
            }),
            (
                any::<u32>(),
                arb_string(),
                arb_bytes(17),
                any::<u16>(),
                arb_bytes(600),
                arb_vsn()
            )
                .prop_map(|(incarnation, node, addr, port, meta, vsn)| {
                    Message::Alive(Alive {
                        incarnation,
                        node,
                        addr,
                        port,
                        meta,
                        vsn,
                    })
                }),
            arb_bytes(100).prop_map(Message::User),
            arb_string().prop_map(|error| Message::Err(ErrResp { error })),
        ]
    }

    proptest! {
        #[test]
        fn message_round_trip(msg in arb_message()) {
            let mut out = Vec::new();
            encode_message(&msg, &mut out);
            prop_assert_eq!(encoded_len(&msg), out.len());
            prop_assert_eq!(decode_message(&out).unwrap(), msg);
        }

        #[test]
        fn truncations_never_panic(msg in arb_message()) {
            let mut out = Vec::new();
            encode_message(&msg, &mut out);
            for i in 0..out.len() {
                let _ = decode_message(&out[..i]);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in arb_bytes(200)) {
            let _ = decode_message(&data);
            for t in [0u8, 1, 2, 3, 4, 5, 11, 13] {
                let mut d = vec![t];
                d.extend_from_slice(&data);
                let _ = decode_message(&d);
            }
        }
    }
}
