//! Serf tags in node metadata, encoded as Serf encodes them (Go:
//! `encodeTags`/`decodeTags` in serf/serf.go): a magic byte `0xff`, then a
//! MessagePack map of strings as Go's `codec.MsgpackHandle` writes it (raw
//! strings: fixstr, str16 or str32, never str8; fixmap, map16 or map32).
//! Checked against Debian's serf 0.8.2.

use std::collections::BTreeMap;

use headcount_proto::wire::msgpack;

/// Serf's first metadata byte when it holds tags (Go: `tagMagicByte`).
pub const TAG_MAGIC: u8 = 0xff;

/// Tags by name, in a stable (sorted) order.
pub type Tags = BTreeMap<String, String>;

/// Parses one `KEY=VALUE` tag argument (the key must not be empty; the
/// value may be).
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Encodes `tags` as Serf does: the magic byte, then a MessagePack map,
/// written by the same msgpack writer as the wire protocol (Go's codec
/// forms).
pub fn encode(tags: &Tags) -> Vec<u8> {
    let mut out = vec![TAG_MAGIC];
    msgpack::write_map_len(&mut out, tags.len());
    for (k, v) in tags {
        msgpack::write_raw(&mut out, k.as_bytes());
        msgpack::write_raw(&mut out, v.as_bytes());
    }
    out
}

/// Decodes metadata that holds Serf tags. `None` when it does not start
/// with the magic byte (plain metadata; Serf itself would read it as the
/// `role` tag of its old protocol) or is not a well-formed map of strings.
pub fn decode(meta: &[u8]) -> Option<Tags> {
    let (&TAG_MAGIC, rest) = meta.split_first()? else {
        return None;
    };
    let mut r = msgpack::Reader::new(rest);
    let n = r.read_map_len("tags").ok()?;
    let mut tags = Tags::new();
    for _ in 0..n {
        let k = r.read_bytes("tag name").ok()?;
        let v = r.read_bytes("tag value").ok()?;
        tags.insert(
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        );
    }
    r.rest().is_empty().then_some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn round_trips_small_and_large() {
        let long = "x".repeat(300);
        let many: Tags = (0..20)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        for t in [
            Tags::new(),
            tags(&[("role", "web"), ("zone", "a")]),
            tags(&[("empty", ""), ("long", &long), (&long, "key is long")]),
            many,
        ] {
            assert_eq!(decode(&encode(&t)), Some(t));
        }
    }

    #[test]
    fn encodes_as_go_codec_does() {
        // The bytes Go's codec.MsgpackHandle writes for
        // map[string]string{"role": "web"} after Serf's magic byte.
        assert_eq!(
            encode(&tags(&[("role", "web")])),
            b"\xff\x81\xa4role\xa3web".to_vec()
        );
        // Strings of 32 bytes or more are str16 (0xda), never str8 (0xd9),
        // which Serf 0.8's codec does not read.
        let v = "v".repeat(32);
        let mut want = b"\xff\x81\xa1k\xda\x00\x20".to_vec();
        want.extend_from_slice(v.as_bytes());
        assert_eq!(encode(&tags(&[("k", &v)])), want);
        // 16 tags or more: map16.
        let many: Tags = (0..16)
            .map(|i| (format!("{i:02}"), String::new()))
            .collect();
        assert_eq!(&encode(&many)[..4], b"\xff\xde\x00\x10");
    }

    #[test]
    fn plain_or_broken_metadata_is_not_tags() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"hello"), None);
        assert_eq!(decode(b"\xff"), None);
        assert_eq!(decode(b"\xff\x81\xa4role"), None);
        assert_eq!(decode(b"\xff\x81\xa4role\xa3webX"), None);
        assert_eq!(decode(b"\xff\x91\xa1x"), None);
        // str8, which newer msgpack writers use, is read too.
        assert_eq!(decode(b"\xff\x81\xd9\x01k\xa1v"), Some(tags(&[("k", "v")])));
    }

    #[test]
    fn parses_tag_arguments() {
        assert_eq!(parse_tag("role=web"), Ok(("role".into(), "web".into())));
        assert_eq!(parse_tag("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert_eq!(parse_tag("k="), Ok(("k".into(), String::new())));
        assert!(parse_tag("=v").is_err());
        assert!(parse_tag("novalue").is_err());
    }
}
