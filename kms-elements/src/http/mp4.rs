//! Which MP4 uploads can be streamed: pure, fed the body chunk by chunk.
//!
//! An upload is not seekable. `qtdemux` plays an MP4 whose index (`moov`)
//! comes before the media data (`mdat`, "faststart") or a fragmented one
//! (`moov` then `moof`/`mdat` pairs) as it arrives; with the index at the
//! end it keeps the whole `mdat` in memory until the index arrives, which a
//! server must not do for a client's file. Such uploads are refused at the
//! first `mdat` box header, before any of it is buffered.

/// What the top-level boxes seen so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Not decided yet.
    Unknown,
    /// Not an MP4 (or an MP4 whose index came first): nothing to check.
    Streamable,
    /// `mdat` before `moov`: cannot be read without seeking.
    IndexAtEnd,
}

/// Top-level box types that may start an ISO BMFF file.
const START_BOXES: [&[u8; 4]; 4] = [b"ftyp", b"styp", b"moov", b"free"];

/// Walks top-level box headers across chunks, keeping at most one header.
#[derive(Debug, Default)]
pub struct Mp4Sniffer {
    /// Offset in the body of the next box header.
    next_box: u64,
    /// Bytes of the body seen.
    seen: u64,
    /// The header being assembled (up to 16 bytes).
    header: Vec<u8>,
    verdict: Option<Layout>,
    boxes: u32,
}

impl Mp4Sniffer {
    pub fn feed(&mut self, mut chunk: &[u8]) -> Layout {
        while self.verdict.is_none() && !chunk.is_empty() {
            if self.seen < self.next_box {
                // Inside a box's payload: skip it.
                let skip = (self.next_box - self.seen).min(chunk.len() as u64) as usize;
                chunk = &chunk[skip..];
                self.seen += skip as u64;
                continue;
            }
            let take = (self.wanted() - self.header.len()).min(chunk.len());
            self.header.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            self.seen += take as u64;
            // A 32-bit size of 1 announces a 64-bit size: 8 more bytes.
            if self.header.len() == self.wanted() {
                self.on_header();
            }
        }
        self.verdict.unwrap_or(Layout::Unknown)
    }

    fn wanted(&self) -> usize {
        if self.header.len() >= 8 && self.header[0..4] == [0, 0, 0, 1] { 16 } else { 8 }
    }

    fn on_header(&mut self) {
        let h = std::mem::take(&mut self.header);
        let size32 = u32::from_be_bytes(h[0..4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = h[4..8].try_into().unwrap();
        let size = if size32 == 1 { u64::from_be_bytes(h[8..16].try_into().unwrap()) } else { size32 };
        if self.boxes == 0 && !START_BOXES.iter().any(|b| **b == kind) {
            self.verdict = Some(Layout::Streamable);
            return;
        }
        self.boxes += 1;
        match &kind {
            b"moov" | b"moof" => self.verdict = Some(Layout::Streamable),
            b"mdat" => self.verdict = Some(Layout::IndexAtEnd),
            // size 0: the box runs to the end; a size smaller than its
            // header is malformed. Either way, leave it to the demuxer.
            _ if size < h.len() as u64 => self.verdict = Some(Layout::Streamable),
            _ => self.next_box += size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], payload: usize) -> Vec<u8> {
        let mut v = ((payload + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend(std::iter::repeat_n(0u8, payload));
        v
    }

    fn sniff_in_chunks(body: &[u8], chunk: usize) -> Layout {
        let mut s = Mp4Sniffer::default();
        let mut last = Layout::Unknown;
        for c in body.chunks(chunk) {
            last = s.feed(c);
            if last != Layout::Unknown {
                break;
            }
        }
        last
    }

    #[test]
    fn faststart_and_fragmented_files_stream() {
        let faststart = [bx(b"ftyp", 20), bx(b"moov", 500), bx(b"mdat", 1000)].concat();
        let fragmented = [bx(b"ftyp", 20), bx(b"moov", 300), bx(b"moof", 50), bx(b"mdat", 100)].concat();
        for chunk in [1, 3, 7, 16, 4096] {
            assert_eq!(sniff_in_chunks(&faststart, chunk), Layout::Streamable, "chunk {chunk}");
            assert_eq!(sniff_in_chunks(&fragmented, chunk), Layout::Streamable, "chunk {chunk}");
        }
    }

    #[test]
    fn index_at_the_end_is_found_at_the_first_mdat_header() {
        let body = [bx(b"ftyp", 20), bx(b"free", 8), bx(b"mdat", 100_000), bx(b"moov", 500)].concat();
        for chunk in [1, 5, 16, 65536] {
            assert_eq!(sniff_in_chunks(&body, chunk), Layout::IndexAtEnd, "chunk {chunk}");
        }
        // Decided before the mdat payload arrived.
        let mut s = Mp4Sniffer::default();
        assert_eq!(s.feed(&body[..28 + 16 + 8]), Layout::IndexAtEnd);
    }

    #[test]
    fn large_sizes_and_other_containers() {
        let mut big = bx(b"ftyp", 8);
        big.extend_from_slice(&1u32.to_be_bytes());
        big.extend_from_slice(b"mdat");
        big.extend_from_slice(&(1u64 << 33).to_be_bytes());
        assert_eq!(sniff_in_chunks(&big, 3), Layout::IndexAtEnd);
        // WebM (EBML magic) is not MP4.
        assert_eq!(sniff_in_chunks(&[0x1a, 0x45, 0xdf, 0xa3, 0, 0, 0, 0, 1, 2], 4), Layout::Streamable);
        assert_eq!(Mp4Sniffer::default().feed(&[0, 0, 0]), Layout::Unknown);
    }
}
