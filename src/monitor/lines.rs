//! Reassembles lines from a byte stream delivered in arbitrary chunks.
//!
//! Docker's non-TTY log stream arrives in frames of up to ~16 KiB per stream that ignore line
//! boundaries. Feed each stream (stdout, stderr) to its own [`LineAssembler`].

use std::mem;

/// The longest line kept whole. A longer line is emitted in pieces of `MAX_LINE` bytes (as if
/// it contained a newline every `MAX_LINE` bytes) so that memory stays bounded.
pub const MAX_LINE: usize = 8 * 1024 * 1024;

/// Splits a chunked byte stream into lines. Only the unterminated tail is buffered; each pushed
/// chunk is scanned once.
#[derive(Debug, Default)]
pub struct LineAssembler {
    /// The unterminated rest; never longer than `MAX_LINE`.
    buf: Vec<u8>,
}

impl LineAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk; returns the complete lines it finished (without the trailing '\n'; a
    /// trailing '\r' is kept as-is).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.push_limited(chunk, MAX_LINE)
    }

    /// The unterminated rest at end of stream, if any. Leaves the assembler empty and reusable.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.buf.is_empty() {
            None
        } else {
            Some(mem::take(&mut self.buf))
        }
    }

    fn push_limited(&mut self, mut chunk: &[u8], limit: usize) -> Vec<Vec<u8>> {
        debug_assert!(limit > 0);
        let mut lines = Vec::new();
        loop {
            let newline = find_newline(chunk);
            let mut segment = &chunk[..newline.unwrap_or(chunk.len())];
            // Emit full pieces while the line would outgrow the limit. A line of exactly `limit`
            // bytes stays whole; `take` is 0 only when the buffer is full (non-empty).
            while self.buf.len() + segment.len() > limit {
                let take = limit - self.buf.len();
                self.buf.extend_from_slice(&segment[..take]);
                lines.push(mem::take(&mut self.buf));
                segment = &segment[take..];
            }
            match newline {
                Some(at) => {
                    if self.buf.is_empty() {
                        lines.push(segment.to_vec());
                    } else {
                        self.buf.extend_from_slice(segment);
                        lines.push(mem::take(&mut self.buf));
                    }
                    chunk = &chunk[at + 1..];
                }
                None => {
                    self.buf.extend_from_slice(segment);
                    return lines;
                }
            }
        }
    }
}

/// Position of the first '\n' (memchr: vectorised, fast even in debug builds).
fn find_newline(haystack: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', haystack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn push_all(a: &mut LineAssembler, input: &[u8], sizes: &[usize], limit: usize) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut rest = input;
        let mut i = 0;
        while !rest.is_empty() {
            let n = if sizes.is_empty() {
                rest.len()
            } else {
                sizes[i % sizes.len()].clamp(1, rest.len())
            };
            i += 1;
            lines.extend(a.push_limited(&rest[..n], limit));
            rest = &rest[n..];
        }
        lines
    }

    /// What the assembler must produce: `split('\n')`, each segment cut in `limit` pieces.
    fn model(input: &[u8], limit: usize) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
        let segments: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let (last, terminated) = segments.split_last().expect("split yields one segment");
        let mut lines = Vec::new();
        for s in terminated {
            if s.is_empty() {
                lines.push(Vec::new());
            } else {
                lines.extend(s.chunks(limit).map(<[u8]>::to_vec));
            }
        }
        let mut pieces: Vec<Vec<u8>> = last.chunks(limit).map(<[u8]>::to_vec).collect();
        let rest = pieces.pop();
        lines.extend(pieces);
        (lines, rest)
    }

    #[test]
    fn splits_lines_across_chunks() {
        let mut a = LineAssembler::new();
        assert_eq!(a.push(b"ab"), Vec::<Vec<u8>>::new());
        assert_eq!(
            a.push(b"c\nde\n\nf"),
            vec![b"abc".to_vec(), b"de".to_vec(), vec![]]
        );
        assert_eq!(a.push(b"g\r\n"), vec![b"fg\r".to_vec()]);
        assert_eq!(a.finish(), None);
        assert_eq!(a.push(b"tail"), Vec::<Vec<u8>>::new());
        assert_eq!(a.finish(), Some(b"tail".to_vec()));
        assert_eq!(a.finish(), None);
    }

    #[test]
    fn empty_pushes_and_lone_newlines() {
        let mut a = LineAssembler::new();
        assert!(a.push(b"").is_empty());
        assert_eq!(a.push(b"\n"), vec![Vec::<u8>::new()]);
        assert_eq!(a.push(b"\n\n"), vec![Vec::<u8>::new(), Vec::new()]);
        assert_eq!(a.finish(), None);
    }

    #[test]
    fn find_newline_matches_naive() {
        let mut data = vec![b'x'; 40];
        assert_eq!(find_newline(&data), None);
        for at in 0..40 {
            data[at] = b'\n';
            assert_eq!(find_newline(&data), Some(at));
            assert_eq!(find_newline(&data[..=at]), Some(at));
            data[at] = 0x0a ^ 0x80; // a byte that differs from '\n' only in the high bit
        }
        assert_eq!(find_newline(&data), None);
    }

    #[test]
    fn long_lines_are_cut_at_the_limit() {
        let mut a = LineAssembler::new();
        // Exactly the limit stays whole; one more byte makes a piece.
        assert!(a.push_limited(b"abcd", 4).is_empty());
        assert_eq!(a.push_limited(b"\n", 4), vec![b"abcd".to_vec()]);
        assert_eq!(
            a.push_limited(b"abcdefghij\nxy", 4),
            vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]
        );
        assert_eq!(a.push_limited(b"zw", 4), Vec::<Vec<u8>>::new());
        assert_eq!(a.push_limited(b"v", 4), vec![b"xyzw".to_vec()]);
        assert_eq!(a.finish(), Some(b"v".to_vec()));
    }

    #[test]
    fn real_limit_bounds_the_buffer() {
        let mut a = LineAssembler::new();
        let big = vec![b'a'; MAX_LINE + 10];
        let lines: Vec<Vec<u8>> = big.chunks(16 * 1024).flat_map(|c| a.push(c)).collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert!(a.buf.len() <= MAX_LINE);
        assert_eq!(a.push(b"\n"), vec![vec![b'a'; 10]]);
    }

    #[test]
    fn fifty_megabytes_in_frames() {
        // Lines of varying length (up to ~100 KB), pushed in 16 KiB frames.
        let mut input = Vec::with_capacity(50 << 20);
        let mut expected = Vec::new();
        let mut len = 1usize;
        while input.len() < 50 << 20 {
            len = (len * 7919 + 13) % 100_000;
            input.extend(std::iter::repeat_n(b'{', len));
            input.push(b'\n');
            expected.push(len);
        }
        let mut a = LineAssembler::new();
        let mut got = Vec::new();
        for frame in input.chunks(16 * 1024) {
            got.extend(a.push(frame).into_iter().map(|l| l.len()));
        }
        assert_eq!(got, expected);
        assert_eq!(a.finish(), None);
    }

    #[test]
    fn long_line_without_newline_is_linear() {
        let mut a = LineAssembler::new();
        for _ in 0..(100_000 / 100) {
            assert!(a.push(&[b'x'; 100]).is_empty());
        }
        assert_eq!(a.push(b"\n")[0].len(), 100_000);
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![3 => Just(b'\n'), 1 => Just(b'\r'), 6 => any::<u8>()],
            0..300,
        )
    }

    proptest! {
        #[test]
        fn reassembles_any_chunking(input in bytes(), sizes in prop::collection::vec(1usize..40, 0..10)) {
            let mut a = LineAssembler::new();
            let lines = push_all(&mut a, &input, &sizes, MAX_LINE);
            let rest = a.finish();

            let mut joined = Vec::new();
            for l in &lines {
                joined.extend_from_slice(l);
                joined.push(b'\n');
            }
            joined.extend(rest.clone().unwrap_or_default());
            prop_assert_eq!(&joined, &input);

            let mut all = lines;
            all.push(rest.unwrap_or_default());
            let split: Vec<Vec<u8>> = input.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            prop_assert_eq!(all, split);
        }

        #[test]
        fn pieces_any_chunking(input in bytes(), sizes in prop::collection::vec(1usize..40, 0..10), limit in 1usize..12) {
            let mut a = LineAssembler::new();
            let lines = push_all(&mut a, &input, &sizes, limit);
            let rest = a.finish();
            prop_assert!(lines.iter().all(|l| l.len() <= limit));
            prop_assert_eq!((lines, rest), model(&input, limit));
        }
    }
}
