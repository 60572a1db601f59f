//! What every depacketizer does around its payload format: packets, in sequence order, make up units that share an
//! RTP timestamp and end with the marker bit. A gap in the sequence numbers, a timestamp that changes before the
//! marker (the unit is handed on, damaged) or a malformed payload damages the unit being put together.

/// A payload format's side of reassembly: reading payloads into the unit being put together.
pub trait UnitParser: Default {
    type Unit;
    type Error;
    /// A packet was lost: whatever was being put together across packets (a fragment) is gone.
    fn lost(&mut self);
    fn parse(&mut self, payload: &[u8]) -> Result<(), Self::Error>;
    /// The unit put together so far, if it holds anything (complete unless `damaged` or a fragment is left open);
    /// the parser starts afresh.
    fn take(&mut self, timestamp: u32, damaged: bool) -> Option<Self::Unit>;
}

/// Reassembles units of a payload format from RTP packets given in sequence order.
#[derive(Debug, Default)]
pub struct Reassembler<P> {
    parser: P,
    timestamp: Option<u32>,
    damaged: bool,
    last_seq: Option<u16>,
}

impl<P: UnitParser> Reassembler<P> {
    pub fn new() -> Self {
        Reassembler {
            parser: P::default(),
            timestamp: None,
            damaged: false,
            last_seq: None,
        }
    }

    fn take(&mut self) -> Option<P::Unit> {
        let timestamp = self.timestamp.take()?;
        let damaged = std::mem::take(&mut self.damaged);
        self.parser.take(timestamp, damaged)
    }

    /// Feeds one RTP packet. Returns the units it completed: the previous one when the timestamp changed without
    /// a marker, and the current one on a marker.
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> (Vec<P::Unit>, Option<P::Error>) {
        let mut done = Vec::new();
        if self
            .last_seq
            .is_some_and(|last| seq != last.wrapping_add(1))
        {
            self.damaged = true;
            self.parser.lost();
        }
        self.last_seq = Some(seq);
        if self.timestamp.is_some_and(|t| t != timestamp) {
            // The previous unit never got its marker.
            self.damaged = true;
            done.extend(self.take());
        }
        self.timestamp = Some(timestamp);
        let error = self.parser.parse(payload).err();
        if error.is_some() {
            self.damaged = true;
        }
        if marker {
            done.extend(self.take());
        }
        (done, error)
    }
}

/// What the payload formats' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Reassembler, UnitParser};
    use crate::media::h264_rtp::RtpPayload;

    /// Checks what a packetizer made of one unit — every payload within `budget`, the marker on the last one
    /// alone — and feeds it to a fresh reassembler across a sequence-number wrap: the units it gives back.
    pub fn round_trip<P: UnitParser>(
        out: &[RtpPayload],
        budget: usize,
    ) -> Result<Vec<P::Unit>, String>
    where
        P::Error: std::fmt::Debug,
    {
        if let Some(p) = out.iter().find(|p| p.payload.len() > budget) {
            return Err(format!(
                "a payload of {} bytes, budget {budget}",
                p.payload.len()
            ));
        }
        let markers: Vec<usize> = (0..out.len()).filter(|&i| out[i].marker).collect();
        if markers != [out.len().wrapping_sub(1)] {
            return Err(format!("markers at {markers:?} of {} payloads", out.len()));
        }
        let mut d = Reassembler::<P>::new();
        let mut units = Vec::new();
        for (i, p) in out.iter().enumerate() {
            let (done, err) = d.push((i as u16).wrapping_add(0xfff0), 7, p.marker, &p.payload);
            if let Some(e) = err {
                return Err(format!("payload {i}: {e:?}"));
            }
            units.extend(done);
        }
        Ok(units)
    }

    /// Any packets in any order: no panic, and `check` holds for every unit given back.
    pub fn survives<P: UnitParser>(
        packets: Vec<(u16, u32, bool, Vec<u8>)>,
        check: impl Fn(&P::Unit) -> bool,
    ) -> bool {
        let mut d = Reassembler::<P>::new();
        packets.into_iter().all(|(seq, ts, marker, payload)| {
            d.push(seq, ts, marker, &payload).0.iter().all(&check)
        })
    }
}
