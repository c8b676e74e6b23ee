//! Every input in `tests/fuzz-regressions/<target>/` (crashes the fuzzers
//! found, and small seeds) runs through the same code as the cargo-fuzz
//! target of that name in `fuzz/`.

mod fuzz_harness;

use std::path::Path;

fn run_dir(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut n = 0;
    for e in entries {
        let path = e.expect("readable directory").path();
        let data = std::fs::read(&path).expect("readable file");
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{} failed", path.display());
        n += 1;
    }
    eprintln!("{target}: {n} inputs");
}

#[test]
fn packet_decode_regressions() {
    run_dir("packet_decode", fuzz_harness::packet_decode);
}

#[test]
fn stream_decode_regressions() {
    run_dir("stream_decode", fuzz_harness::stream_decode);
}

#[test]
fn node_inputs_regressions() {
    run_dir("node_inputs", fuzz_harness::node_inputs);
}

/// A short deterministic pseudo-random smoke run of every target, so the
/// harness itself stays exercised without cargo-fuzz.
#[test]
fn harness_smoke() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..300usize {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fuzz_harness::packet_decode(&data);
        fuzz_harness::stream_decode(&data);
        fuzz_harness::node_inputs(&data);
    }
}

/// Writes the seed corpora of the fuzz targets (valid encodings of every
/// message kind) to `fuzz/corpus/<target>/seed-*`. Run with
/// `HEADCOUNT_WRITE_SEEDS=1 cargo test -p headcount-proto --test
/// fuzz_regressions write_seeds -- --ignored`.
#[test]
#[ignore]
fn write_seeds() {
    use headcount_proto::wire::{self, Keyring, Message, PacketOptions, StreamMessage};
    if std::env::var_os("HEADCOUNT_WRITE_SEEDS").is_none() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let write = |target: &str, name: String, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    };
    let mut msgs: Vec<Message> = Vec::new();
    let mut x: u64 = 7;
    for i in 0..24u8 {
        let noise: Vec<u8> = std::iter::once(i)
            .chain((0..64).map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            }))
            .collect();
        msgs.push(fuzz_harness::pick_message(&mut fuzz_harness::Bytes::new(
            &noise,
        )));
    }
    let keyring = Keyring::new(&fuzz_harness::KEY).unwrap();
    for (i, m) in msgs.iter().enumerate() {
        let mut body = Vec::new();
        wire::encode_message(m, &mut body);
        for (j, flags) in [0u8, 1, 4].into_iter().enumerate() {
            let opts = PacketOptions {
                compress: j == 1,
                crc: j != 0,
                label: if flags & 1 != 0 { b"fz" } else { b"" },
                encryption: (flags & 4 != 0).then(|| wire::Encryption {
                    keyring: &keyring,
                    version: wire::EncryptionVersion::for_protocol(5),
                    nonce: [i as u8; 12],
                }),
            };
            let mut pkt = vec![flags];
            wire::frame_packet(&body, &opts, &mut pkt).unwrap();
            write("packet_decode", format!("{i}-{j}"), &pkt);
        }
    }
    let parts: Vec<Vec<u8>> = msgs
        .iter()
        .map(|m| {
            let mut v = Vec::new();
            wire::encode_message(m, &mut v);
            v
        })
        .collect();
    let compound = wire::encode_compound(&parts).unwrap().remove(0);
    let mut pkt = vec![0u8];
    wire::frame_packet(&compound, &PacketOptions::default(), &mut pkt).unwrap();
    write("packet_decode", "compound".into(), &pkt);

    for i in 0..8u8 {
        let noise: Vec<u8> = (0..200)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        let mut b = fuzz_harness::Bytes::new(&noise);
        let msg = match i % 4 {
            0 => StreamMessage::PushPull(fuzz_harness::pick_push_pull(&mut b)),
            1 => StreamMessage::User(noise[..20].to_vec()),
            2 => StreamMessage::Ping(wire::Ping {
                seq_no: 9,
                node: "a".into(),
                ..Default::default()
            }),
            _ => StreamMessage::Err(wire::ErrResp {
                error: "bad".into(),
            }),
        };
        for (flags, compress) in [(0u8, false), (1, true)] {
            let label: &[u8] = if flags & 1 != 0 { b"fz" } else { b"" };
            let mut s = vec![flags, 7];
            wire::encode_stream(&msg, label, compress, &mut s).unwrap();
            write("stream_decode", format!("{i}-{flags}"), &s);
        }
    }
    for i in 0..6u8 {
        let script: Vec<u8> = std::iter::once(i % 2)
            .chain((0..600).map(|k| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Bias towards well-formed packets and time.
                if k % 40 == 0 {
                    [1u8, 4, 6, 8][(x >> 60) as usize % 4]
                } else {
                    (x >> 56) as u8
                }
            }))
            .collect();
        write("node_inputs", format!("{i}"), &script);
    }
}
