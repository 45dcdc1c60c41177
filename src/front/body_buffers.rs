//! Buffers of large request bodies, used again. A body of a megabyte (inline GML, base64
//! data) is read into one buffer that the request's job keeps (its inputs are parts of it)
//! until it ends. A new allocation for every such body is memory that no core has touched
//! lately, and copying the body into it out of Apache's buckets was the largest part of
//! reading it (more than the kernel's copy from the socket; bench/RESULTS.md). So when the
//! last part of a body is dropped its buffer comes back here, and the next large body is read
//! into the buffer given back last, which is still in the caches.

use bytes::Bytes;
use std::sync::Mutex;

/// Bodies smaller than this get a buffer of their own (the allocator's small blocks are warm
/// anyway); buffers smaller than this are not kept.
pub const MIN_CAPACITY: usize = 64 * 1024;
/// Buffers larger than this are not kept (a rare large body is not worth holding its memory).
pub const MAX_CAPACITY: usize = 4 * 1024 * 1024;
/// Buffers kept at most (per process); the oldest one goes when another comes back.
pub const KEPT: usize = 4;

pub struct BodyBuffers {
    /// Buffers given back, empty; the last one given back last.
    free: Mutex<Vec<Vec<u8>>>,
}

/// The buffers of this process's request bodies.
pub static BODY_BUFFERS: BodyBuffers = BodyBuffers::new();

impl BodyBuffers {
    pub const fn new() -> Self {
        BodyBuffers {
            free: Mutex::new(Vec::new()),
        }
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // the list is valid whatever a panicking holder did: a push or a remove
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer for a body of `size` bytes: from `MIN_CAPACITY` on, the buffer given
    /// back last that holds `size` without being more than four times as large, if any.
    pub fn take(&self, size: usize) -> Vec<u8> {
        if size >= MIN_CAPACITY {
            let mut free = self.free();
            let fits = |b: &Vec<u8>| b.capacity() >= size && b.capacity() / 4 <= size;
            if let Some(i) = free.iter().rposition(fits) {
                return free.remove(i);
            }
        }
        Vec::with_capacity(size)
    }

    /// The body read into `buf`, shared (no copy); a buffer of a kept size comes back when
    /// the body and every part of it are dropped.
    pub fn share(&'static self, buf: Vec<u8>) -> Bytes {
        if (MIN_CAPACITY..=MAX_CAPACITY).contains(&buf.capacity()) {
            Bytes::from_owner(Kept { buf, home: self })
        } else {
            Bytes::from(buf)
        }
    }

    /// How many buffers are kept now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free().len()
    }
}

impl Default for BodyBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// A shared body's buffer, given back to `home` when dropped.
struct Kept {
    buf: Vec<u8>,
    home: &'static BodyBuffers,
}

impl AsRef<[u8]> for Kept {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut free = self.home.free();
        if free.len() >= KEPT {
            free.remove(0);
        }
        free.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffers() -> &'static BodyBuffers {
        Box::leak(Box::new(BodyBuffers::new()))
    }

    fn body(b: &'static BodyBuffers, size: usize, fill: u8) -> Bytes {
        let mut buf = b.take(size);
        buf.resize(size, fill);
        b.share(buf)
    }

    #[test]
    fn a_large_body_is_read_into_the_buffer_of_the_last_one() {
        let b = buffers();
        let first = body(b, 700_000, b'a');
        let at = first.as_ptr();
        drop(first);
        assert_eq!(b.kept(), 1);
        let buf = b.take(650_000);
        assert_eq!(buf.as_ptr(), at, "the buffer given back is used again");
        assert!(buf.is_empty(), "and holds nothing of the body before");
        assert_eq!(b.kept(), 0);
        // the buffer given back last is taken first
        let (x, y) = (body(b, 700_000, b'x'), body(b, 700_000, b'y'));
        let last = y.as_ptr();
        drop(x);
        drop(y);
        let buf = b.take(700_000);
        assert_eq!(buf.as_ptr(), last);
    }

    #[test]
    fn a_buffer_comes_back_only_when_every_part_of_its_body_is_gone() {
        let b = buffers();
        let whole = body(b, 100_000, b'g');
        let at = whole.as_ptr();
        let part = whole.slice(10..20);
        drop(whole);
        assert_eq!(b.kept(), 0, "a part of the body still uses it");
        let other = b.take(100_000);
        assert_ne!(other.as_ptr(), at);
        assert_eq!(&part[..], &[b'g'; 10]);
        drop(part);
        assert_eq!(b.kept(), 1);
        let buf = b.take(100_000);
        assert_eq!(buf.as_ptr(), at);
    }

    #[test]
    fn small_huge_and_ill_fitting_buffers_are_not_used_again() {
        let b = buffers();
        drop(body(b, MIN_CAPACITY - 1, 0));
        drop(body(b, MAX_CAPACITY + 1, 0));
        assert_eq!(b.kept(), 0, "neither a small nor a huge buffer is kept");
        drop(body(b, 1_000_000, 0));
        assert_eq!(b.kept(), 1);
        assert_eq!(
            b.take(100_000).capacity(),
            100_000,
            "over four times the size: not used"
        );
        assert_eq!(
            b.take(2_000_000).capacity(),
            2_000_000,
            "too small: not used"
        );
        assert_eq!(b.take(1_000).capacity(), 1_000, "a small body gets its own");
        assert_eq!(b.kept(), 1);
        assert!(b.take(300_000).capacity() >= 1_000_000);
    }

    #[test]
    fn at_most_kept_buffers_stay() {
        let b = buffers();
        let bodies: Vec<Bytes> = (0..KEPT + 2).map(|_| body(b, 80_000, 1)).collect();
        let ptrs: Vec<*const u8> = bodies.iter().map(|x| x.as_ptr()).collect();
        drop(bodies);
        assert_eq!(b.kept(), KEPT);
        // the oldest ones went; the last ones given back are taken, newest first
        for p in ptrs.iter().rev().take(KEPT) {
            let buf = b.take(80_000);
            assert_eq!(buf.as_ptr(), *p);
        }
        assert_eq!(b.kept(), 0);
    }
}
