//! Serf tags in node metadata, encoded as Serf encodes them (Go:
//! `encodeTags`/`decodeTags` in serf/serf.go): a magic byte `0xff`, then a
//! MessagePack map of strings as Go's `codec.MsgpackHandle` writes it (raw
//! strings: fixstr, str16 or str32, never str8; fixmap, map16 or map32).
//! Checked against Debian's serf 0.8.2.

use std::collections::BTreeMap;

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

/// Encodes `tags` as Serf does: the magic byte, then a MessagePack map.
pub fn encode(tags: &Tags) -> Vec<u8> {
    fn len_prefix(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, m16: u8, m32: u8) {
        if len <= fix_max {
            out.push(fix | len as u8);
        } else if let Ok(n) = u16::try_from(len) {
            out.push(m16);
            out.extend_from_slice(&n.to_be_bytes());
        } else {
            out.push(m32);
            let n = u32::try_from(len).expect("tags are far smaller than 4 GiB");
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    fn string(out: &mut Vec<u8>, s: &str) {
        len_prefix(out, s.len(), 0xa0, 31, 0xda, 0xdb);
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = vec![TAG_MAGIC];
    len_prefix(&mut out, tags.len(), 0x80, 15, 0xde, 0xdf);
    for (k, v) in tags {
        string(&mut out, k);
        string(&mut out, v);
    }
    out
}

/// Decodes metadata that holds Serf tags. `None` when it does not start
/// with the magic byte (plain metadata; Serf itself would read it as the
/// `role` tag of its old protocol) or is not a well-formed map of strings.
pub fn decode(meta: &[u8]) -> Option<Tags> {
    let (&TAG_MAGIC, mut rest) = meta.split_first()? else {
        return None;
    };
    let n = match byte(&mut rest)? {
        b @ 0x80..=0x8f => usize::from(b & 0x0f),
        0xde => uint(&mut rest, 2)?,
        0xdf => uint(&mut rest, 4)?,
        _ => return None,
    };
    let mut tags = Tags::new();
    for _ in 0..n {
        let k = string(&mut rest)?;
        let v = string(&mut rest)?;
        tags.insert(k, v);
    }
    rest.is_empty().then_some(tags)
}

fn byte(buf: &mut &[u8]) -> Option<u8> {
    Some(take(buf, 1)?[0])
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Some(head)
}

/// A big-endian unsigned integer of `n` bytes.
fn uint(buf: &mut &[u8], n: usize) -> Option<usize> {
    Some(
        take(buf, n)?
            .iter()
            .fold(0, |acc, &b| (acc << 8) | usize::from(b)),
    )
}

/// A MessagePack string (raw, in the old spec Go's codec follows), or bin.
fn string(buf: &mut &[u8]) -> Option<String> {
    let n = match byte(buf)? {
        b @ 0xa0..=0xbf => usize::from(b & 0x1f),
        0xd9 | 0xc4 => uint(buf, 1)?,
        0xda | 0xc5 => uint(buf, 2)?,
        0xdb | 0xc6 => uint(buf, 4)?,
        _ => return None,
    };
    Some(String::from_utf8_lossy(take(buf, n)?).into_owned())
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
