//! `TokioTransport` sends and receives datagrams in batches (`sendmmsg` /
//! `recvmmsg` on Linux): every datagram of a batch larger than one system
//! call's worth arrives intact, from the right sender, and a datagram that
//! cannot be sent is reported alone while the rest still go.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use headcount::transport::PacketBatch;
use headcount::{TokioTransport, Transport};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Lets the reactor see the new sockets: until it has, tokio does not
/// know they are writable and a send that must not wait fails with
/// `WouldBlock` (as `UdpSocket::try_send_to` does).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Receives until `want` datagrams came (or 5 s passed), by the transport's
/// own `poll_recv`.
async fn receive(t: &TokioTransport, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut got = Vec::new();
    let mut batch = PacketBatch::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got.len() < want {
        let r = tokio::time::timeout_at(
            deadline,
            std::future::poll_fn(|cx| t.poll_recv(cx, &mut batch)),
        )
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("receive error: {e}"),
            Err(_) => break,
        }
        got.extend(batch.iter().map(|(from, d)| (from, d.to_vec())));
        batch.clear();
    }
    got
}

#[tokio::test]
async fn a_batch_of_100_datagrams_arrives_whole() {
    let a = TokioTransport::bind(loopback()).await.unwrap();
    let b = TokioTransport::bind(loopback()).await.unwrap();
    settle().await;
    let mut batch = PacketBatch::new();
    // Sizes from 1 byte to 1,400, content says which datagram it is.
    for i in 0..100u32 {
        let len = 1 + (i as usize * 97) % 1400;
        let mut d = vec![(i % 251) as u8; len];
        d[..4.min(len)].copy_from_slice(&i.to_be_bytes()[..4.min(len)]);
        batch.push(b.local_addr(), &d);
    }
    let mut failed = Vec::new();
    a.send_batch(&batch, &mut |to, e| failed.push((to, e.kind())));
    assert!(failed.is_empty(), "{failed:?}");
    let got = receive(&b, 100).await;
    assert_eq!(got.len(), 100);
    let sent: BTreeMap<Vec<u8>, SocketAddr> = batch
        .iter()
        .map(|(_, d)| (d.to_vec(), a.local_addr()))
        .collect();
    let received: BTreeMap<Vec<u8>, SocketAddr> = got.into_iter().map(|(f, d)| (d, f)).collect();
    assert_eq!(sent, received);
}

#[tokio::test]
async fn a_datagram_that_cannot_go_is_reported_alone() {
    let a = TokioTransport::bind(loopback()).await.unwrap();
    let b = TokioTransport::bind(loopback()).await.unwrap();
    settle().await;
    // An IPv6 destination from an IPv4 socket fails (EAFNOSUPPORT or
    // EINVAL); the datagrams around it must still go.
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    let mut batch = PacketBatch::new();
    for i in 0..40u8 {
        let to = if i == 5 || i == 33 {
            v6
        } else {
            b.local_addr()
        };
        batch.push(to, &[i; 10]);
    }
    let mut failed = Vec::new();
    a.send_batch(&batch, &mut |to, _| failed.push(to));
    assert_eq!(failed, vec![v6, v6]);
    let got = receive(&b, 38).await;
    let mut firsts: Vec<u8> = got.iter().map(|(_, d)| d[0]).collect();
    firsts.sort_unstable();
    let want: Vec<u8> = (0..40).filter(|i| *i != 5 && *i != 33).collect();
    assert_eq!(firsts, want);
}
