//! `recvmmsg` and `sendmmsg` (Linux): many datagrams per system call.
//!
//! The only `unsafe` of the shell. Why it is here: neither tokio nor
//! socket2 offers these calls, `quinn-udp` batches receives but sends
//! several datagrams only to one destination (GSO), while a gossip round
//! sends to several peers, and it would also change the socket's options
//! (don't-fragment, GRO) that Go peers expect as they are. The two calls
//! are thin: arrays of headers on the stack, pointing into buffers that
//! outlive the call; what the kernel wrote is read back only up to the
//! lengths it reported.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Most datagrams per call (quinn-udp's batch size on Linux).
pub(super) const BATCH: usize = 32;

/// A socket address in the C form `sendmmsg` takes, and its length.
fn to_c(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for any
            // sockaddr type; this writes a sockaddr_in at its start.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo().to_be(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for a sockaddr_in6.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The address the kernel wrote into `storage`, if it is IPv4 or IPv6.
fn from_c(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is aligned for it.
            let sin: &libc::sockaddr_in = unsafe { &*std::ptr::addr_of!(*storage).cast() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 = unsafe { &*std::ptr::addr_of!(*storage).cast() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Sends `packets` (at most [`BATCH`]) with one `sendmmsg`, without
/// blocking. Returns how many were sent, from the first: fewer than all
/// when one could not go (the next call, starting with it, says why), or
/// the error of the first.
pub(super) fn send(fd: RawFd, packets: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
    let n = packets.len().min(BATCH);
    if n == 0 {
        return Ok(0);
    }
    let mut addrs = [MaybeUninit::<(libc::sockaddr_storage, libc::socklen_t)>::uninit(); BATCH];
    let mut iovs = [MaybeUninit::<libc::iovec>::uninit(); BATCH];
    let mut hdrs = [MaybeUninit::<libc::mmsghdr>::uninit(); BATCH];
    for (i, (to, data)) in packets[..n].iter().enumerate() {
        let addr = addrs[i].write(to_c(to));
        let iov = iovs[i].write(libc::iovec {
            // The kernel only reads through it (sendmsg's iovec is not const).
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        });
        // SAFETY: mmsghdr is plain C data, valid when zeroed.
        let h = &mut hdrs[i].write(unsafe { std::mem::zeroed() }).msg_hdr;
        h.msg_name = std::ptr::addr_of_mut!(addr.0).cast();
        h.msg_namelen = addr.1;
        h.msg_iov = iov;
        h.msg_iovlen = 1;
    }
    // SAFETY: the first n headers (initialized above) point to addresses and iovecs that live
    // until the call returns, each iovec to a datagram borrowed for as
    // long; the socket is non-blocking.
    let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr().cast(), n as libc::c_uint, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Buffers and headers for one `recvmmsg` of up to [`BATCH`] datagrams of
/// up to `slot` bytes each. Made once per thread and set up once: the
/// headers point to their address buffers and to their slot of `buf` for
/// the life of the struct (all on the heap, never resized), so a
/// call only resets the address lengths the kernel overwrote. Pages of
/// `buf` are touched only where datagrams land.
pub(super) struct RecvBuffers {
    /// `BATCH * slot` bytes of capacity, never initialized by us: the
    /// kernel writes into it and only what it wrote is read.
    buf: Vec<u8>,
    slot: usize,
    // Vecs, not boxes: the headers keep raw pointers into them.
    addrs: Vec<libc::sockaddr_storage>,
    /// Only the kernel reads these (through `hdrs`); kept for their storage.
    #[allow(dead_code)]
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl RecvBuffers {
    pub(super) fn new(slot: usize) -> Self {
        let mut buf = Vec::<u8>::with_capacity(BATCH * slot);
        let base = buf.as_mut_ptr();
        // SAFETY: plain C data, valid when zeroed.
        let mut addrs: Vec<libc::sockaddr_storage> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        let mut iovs: Vec<libc::iovec> = (0..BATCH)
            .map(|i| libc::iovec {
                // SAFETY: i * slot + slot <= the buffer's capacity.
                iov_base: unsafe { base.add(i * slot) }.cast(),
                iov_len: slot,
            })
            .collect();
        // SAFETY: plain C data, valid when zeroed.
        let mut hdrs: Vec<libc::mmsghdr> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (i, h) in hdrs.iter_mut().enumerate() {
            h.msg_hdr.msg_name = std::ptr::addr_of_mut!(addrs[i]).cast();
            h.msg_hdr.msg_iov = std::ptr::addr_of_mut!(iovs[i]);
            h.msg_hdr.msg_iovlen = 1;
        }
        RecvBuffers {
            buf,
            slot,
            addrs,
            iovs,
            hdrs,
        }
    }

    /// Receives the datagrams waiting now, up to `max` (at most
    /// [`BATCH`]), with one `recvmmsg`, without blocking, and hands each to
    /// `each` (sender and bytes, truncated to the slot size). Returns how
    /// many were read; fewer than `max` means none was left (see the
    /// caller).
    pub(super) fn recv(
        &mut self,
        fd: RawFd,
        max: usize,
        mut each: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let max = max.min(BATCH);
        for h in &mut self.hdrs[..max] {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: the first `max` headers point to address buffers and
        // iovecs owned by `self`, each iovec to its own slot of the
        // buffer's capacity (see `new`); the socket is non-blocking, and no
        // timeout is given.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                max as libc::c_uint,
                0,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = r as usize;
        let base = self.buf.as_ptr();
        for (i, h) in self.hdrs[..n].iter().enumerate() {
            // A datagram longer than its slot was truncated to it.
            let len = (h.msg_len as usize).min(self.slot);
            // SAFETY: the kernel wrote `len` bytes at the start of slot i.
            let data = unsafe { std::slice::from_raw_parts(base.add(i * self.slot), len) };
            if let Some(from) = from_c(&self.addrs[i], h.msg_hdr.msg_namelen) {
                each(from, data);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_the_c_form() {
        for a in [
            "127.0.0.1:7946",
            "10.1.2.3:1",
            "[::1]:65535",
            "[fe80::1%3]:7946",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let (s, len) = to_c(&a);
            assert_eq!(from_c(&s, len), Some(a));
        }
    }

    #[test]
    fn an_unknown_family_or_short_length_gives_no_address() {
        let (s, _) = to_c(&"127.0.0.1:1".parse().unwrap());
        assert_eq!(from_c(&s, 4), None);
        // SAFETY: plain data.
        let zero: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        assert_eq!(from_c(&zero, 128), None);
    }
}
