//! Beacon downtime, which challenge windows and game clocks do not count.
//!
//! Windows and clocks are measured in slots, and slots pass whether or not
//! the beacon runs. While it is down nobody can open a game or move, so a
//! window or a clock that kept running would let a lie become final
//! unchallenged, or make a side lose on time for a silence it could not
//! break. The beacon records each stretch of slots it sealed nothing in
//! (a pause), and measures windows in *live* slots: `live(s)` is `s` minus
//! every paused slot up to `s`. Game clocks are moved on by the pause
//! instead (their turn started before it), and so are pending withdrawals.

use serde::{Deserialize, Serialize};

use crate::codec::{Decode, Encode};
use crate::error::DecodeError;

/// Most pauses kept; the oldest are merged into one beyond it (which only
/// moves slots before them, long final, later in live time).
pub const MAX_PAUSES: usize = 1024;

/// The beacon's pauses: `(resumed, total)` pairs, `resumed` the first slot
/// after a pause, `total` every paused slot up to it, both increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pauses {
    entries: Vec<(u64, u64)>,
}

impl Pauses {
    /// Records that slots `resumed - len .. resumed` were paused (`len > 0`,
    /// `resumed` after every recorded pause).
    pub fn record(&mut self, resumed: u64, len: u64) {
        if len == 0 || self.entries.last().is_some_and(|(r, _)| *r >= resumed) {
            return;
        }
        let total = self.total().saturating_add(len);
        self.entries.push((resumed, total));
        if self.entries.len() > MAX_PAUSES {
            // the two oldest become one at the second's slot
            self.entries.remove(0);
        }
    }

    /// Every paused slot so far.
    pub fn total(&self) -> u64 {
        self.entries.last().map_or(0, |(_, t)| *t)
    }

    /// Paused slots before `slot`.
    fn paused_before(&self, slot: u64) -> u64 {
        let i = self.entries.partition_point(|(r, _)| *r <= slot);
        if i == 0 { 0 } else { self.entries[i - 1].1 }
    }

    /// Live slots from `from` to `to` (0 if `to` is not after `from`).
    pub fn elapsed(&self, from: u64, to: u64) -> u64 {
        let live = |s: u64| s.saturating_sub(self.paused_before(s));
        live(to).saturating_sub(live(from))
    }

    /// The first slot by which `live` live slots have passed since `from`,
    /// given the pauses known so far.
    pub fn deadline(&self, from: u64, live: u64) -> u64 {
        let later = self.total().saturating_sub(self.paused_before(from));
        from.saturating_add(live).saturating_add(later)
    }

    /// How many pauses are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the beacon never paused.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Encode for Pauses {
    fn encode_to(&self, out: &mut Vec<u8>) {
        (self.entries.len() as u32).encode_to(out);
        for (r, t) in &self.entries {
            r.encode_to(out);
            t.encode_to(out);
        }
    }
}

impl Decode for Pauses {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let n = u32::decode(input)? as usize;
        if n > MAX_PAUSES {
            return Err(DecodeError::TooLong { what: "pauses", len: n, limit: MAX_PAUSES });
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let e = (u64::decode(input)?, u64::decode(input)?);
            if entries.last().is_some_and(|(r, t): &(u64, u64)| *r >= e.0 || *t >= e.1) {
                return Err(DecodeError::Invalid("pauses out of order"));
            }
            entries.push(e);
        }
        Ok(Pauses { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_exact;

    #[test]
    fn live_slots_skip_the_pauses() {
        let mut p = Pauses::default();
        assert_eq!(p.elapsed(10, 30), 20);
        assert_eq!(p.deadline(10, 20), 30);
        // down for slots 21..=70, resumed at 71
        p.record(71, 50);
        assert_eq!(p.elapsed(10, 20), 10, "before the pause");
        assert_eq!(p.elapsed(10, 71), 11, "slots 11..=20 and 71");
        assert_eq!(p.elapsed(10, 80), 20);
        assert_eq!(p.deadline(10, 20), 80);
        assert_eq!(p.elapsed(75, 80), 5, "after the pause");
        assert_eq!(p.deadline(75, 5), 80);
        assert_eq!(p.elapsed(80, 10), 0);
        // a second one, and a header included between them
        p.record(101, 10);
        assert_eq!(p.total(), 60);
        assert_eq!(p.elapsed(75, 105), 20);
        assert_eq!(p.deadline(75, 20), 105);
        // out of order or empty ones are ignored
        p.record(90, 5);
        p.record(200, 0);
        assert_eq!(p.len(), 2);
        let bytes = p.encode();
        assert_eq!(decode_exact::<Pauses>(&bytes).unwrap(), p);
    }

    #[test]
    fn hostile_encodings_are_refused_and_the_list_stays_bounded() {
        let mut bytes = Vec::new();
        (MAX_PAUSES as u32 + 1).encode_to(&mut bytes);
        assert!(decode_exact::<Pauses>(&bytes).is_err());
        let mut bytes = Vec::new();
        2u32.encode_to(&mut bytes);
        for (r, t) in [(10u64, 5u64), (9, 6)] {
            r.encode_to(&mut bytes);
            t.encode_to(&mut bytes);
        }
        assert!(decode_exact::<Pauses>(&bytes).is_err());
        let mut p = Pauses::default();
        for i in 1..=(MAX_PAUSES as u64 + 10) {
            p.record(i * 10, 1);
        }
        assert_eq!(p.len(), MAX_PAUSES);
        assert_eq!(p.total(), MAX_PAUSES as u64 + 10);
        assert_eq!(decode_exact::<Pauses>(&p.encode()).unwrap(), p);
    }
}
