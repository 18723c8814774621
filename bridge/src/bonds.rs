//! Bonds: what every bonded party (validators and registered challengers)
//! has free, staked in games, being withdrawn, paid out, slashed and won,
//! and the treasury that keeps what slashing does not pay to a winner.
//! Slashing moves value and never creates it ([`Bonds::total`] is constant).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Address, Decode, DecodeError, Encode};

/// One party's bond, in gwei.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bond {
    /// Free to stake in a game or withdraw.
    pub free: u64,
    /// Staked in open games.
    pub locked: u64,
    /// Being withdrawn: `(amount, slot it is paid out)`.
    pub withdrawing: Vec<(u64, u64)>,
    /// Paid out by withdrawals so far.
    pub withdrawn: u64,
    /// Lost in games so far.
    pub slashed: u64,
    /// Won from other parties' stakes so far.
    pub rewarded: u64,
    /// Withdrawals started so far (the next `Withdraw` names this count).
    pub withdrawals: u64,
}

/// Most withdrawals one party may have pending (each paid a challenge
/// window after it was asked; asked in the same slot, they are one).
pub const MAX_PENDING_WITHDRAWALS: usize = 8;

impl Encode for Bond {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.free.encode_to(out);
        self.locked.encode_to(out);
        (self.withdrawing.len() as u32).encode_to(out);
        for (a, s) in &self.withdrawing {
            a.encode_to(out);
            s.encode_to(out);
        }
        self.withdrawn.encode_to(out);
        self.slashed.encode_to(out);
        self.rewarded.encode_to(out);
        self.withdrawals.encode_to(out);
    }
}

impl Decode for Bond {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let free = u64::decode(input)?;
        let locked = u64::decode(input)?;
        let n = u32::decode(input)? as usize;
        let mut withdrawing = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            withdrawing.push((u64::decode(input)?, u64::decode(input)?));
        }
        Ok(Bond {
            free,
            locked,
            withdrawing,
            withdrawn: u64::decode(input)?,
            slashed: u64::decode(input)?,
            rewarded: u64::decode(input)?,
            withdrawals: u64::decode(input)?,
        })
    }
}

/// Every bond and the treasury: what slashing pays into and out of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bonds {
    /// Bonds by party.
    pub parties: BTreeMap<Address, Bond>,
    /// Slashed stakes not paid to a winner.
    pub treasury: u64,
}

impl Bonds {
    /// The genesis bonds.
    pub fn genesis(parties: impl IntoIterator<Item = (Address, u64)>) -> Self {
        let mut b = Bonds::default();
        for (a, gwei) in parties {
            b.parties.entry(a).or_default().free += gwei;
        }
        b
    }

    /// Total gwei held: free, locked, being withdrawn, paid out, and the
    /// treasury (constant: slashing moves value, never creates it).
    pub fn total(&self) -> u128 {
        let parties: u128 = self
            .parties
            .values()
            .map(|b| {
                u128::from(b.free)
                    + u128::from(b.locked)
                    + b.withdrawing.iter().map(|(a, _)| u128::from(*a)).sum::<u128>()
                    + u128::from(b.withdrawn)
            })
            .sum();
        parties + u128::from(self.treasury)
    }

    /// Locks up to `amount` of `who`'s bond: free first, then what it is
    /// still withdrawing (a withdrawal does not escape a game opened before
    /// it is paid out). Returns what was locked.
    pub fn lock(&mut self, who: &Address, amount: u64) -> u64 {
        let Some(b) = self.parties.get_mut(who) else { return 0 };
        let mut n = amount.min(b.free);
        b.free -= n;
        while n < amount {
            let Some((a, at)) = b.withdrawing.pop() else { break };
            let take = a.min(amount - n);
            if a > take {
                b.withdrawing.push((a - take, at));
            }
            n += take;
        }
        b.locked += n;
        n
    }

    /// Whether `who`'s bond (free and staked) covers `stake`.
    pub fn covers(&self, who: &Address, stake: u64) -> bool {
        self.parties.get(who).is_some_and(|b| b.free.saturating_add(b.locked) >= stake)
    }

    /// Returns a locked stake to its owner.
    pub fn unlock(&mut self, who: &Address, amount: u64) {
        if let Some(b) = self.parties.get_mut(who) {
            let n = amount.min(b.locked);
            b.locked -= n;
            b.free += n;
        }
    }

    /// Slashes `loser`'s locked `stake`: `reward_percent` of it to
    /// `winner`'s free bond, the rest to the treasury. Returns (reward, to treasury).
    pub fn slash(
        &mut self,
        loser: &Address,
        stake: u64,
        winner: &Address,
        reward_percent: u64,
    ) -> (u64, u64) {
        let Some(b) = self.parties.get_mut(loser) else { return (0, 0) };
        let n = stake.min(b.locked);
        b.locked -= n;
        b.slashed += n;
        let reward = (u128::from(n) * u128::from(reward_percent.min(100)) / 100) as u64;
        let w = self.parties.entry(*winner).or_default();
        w.free += reward;
        w.rewarded += reward;
        self.treasury += n - reward;
        (reward, n - reward)
    }

    /// Starts withdrawing `amount` of `who`'s free bond, paid at `release`;
    /// `nonce` must be the party's count of withdrawals so far.
    pub fn withdraw(&mut self, who: &Address, amount: u64, nonce: u64, release: u64) -> Result<(), String> {
        let b = self.parties.get_mut(who).ok_or_else(|| format!("{who} has no bond"))?;
        if nonce != b.withdrawals {
            return Err(format!("withdrawal {nonce} of {who}: the next is {}", b.withdrawals));
        }
        if amount == 0 || amount > b.free {
            return Err(format!("cannot withdraw {amount} gwei of {} free", b.free));
        }
        // one entry per release slot, at most MAX_PENDING_WITHDRAWALS: a
        // party withdrawing every slot would otherwise grow the beacon
        // state (encoded and hashed at every seal) by an entry a slot
        let merges = b.withdrawing.last().is_some_and(|(_, at)| *at == release);
        if !merges && b.withdrawing.len() >= MAX_PENDING_WITHDRAWALS {
            let next = b.withdrawing.first().map_or(release, |(_, at)| *at);
            return Err(format!(
                "{who} has {MAX_PENDING_WITHDRAWALS} withdrawals pending, the most; the next is paid at slot {next}"
            ));
        }
        b.free -= amount;
        b.withdrawals += 1;
        match b.withdrawing.last_mut() {
            Some((a, at)) if *at == release => *a += amount,
            _ => b.withdrawing.push((amount, release)),
        }
        Ok(())
    }

    /// Moves every pending withdrawal `slots` later (the beacon paused:
    /// windows are longer by that much, and a withdrawal must not pay out
    /// before a game on its owner's headers can still open).
    pub fn postpone(&mut self, slots: u64) {
        for b in self.parties.values_mut() {
            for (_, at) in &mut b.withdrawing {
                *at = at.saturating_add(slots);
            }
        }
    }

    /// Pays out every withdrawal due by `slot`.
    pub fn release(&mut self, slot: u64) {
        for b in self.parties.values_mut() {
            let due: u64 = b.withdrawing.iter().filter(|(_, at)| *at <= slot).map(|(a, _)| *a).sum();
            if due > 0 {
                b.withdrawing.retain(|(_, at)| *at > slot);
                b.withdrawn += due;
            }
        }
    }
}

impl Encode for Bonds {
    fn encode_to(&self, out: &mut Vec<u8>) {
        (self.parties.len() as u32).encode_to(out);
        for (a, b) in &self.parties {
            a.encode_to(out);
            b.encode_to(out);
        }
        self.treasury.encode_to(out);
    }
}

impl Decode for Bonds {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let n = u32::decode(input)? as usize;
        let mut parties = BTreeMap::new();
        for _ in 0..n {
            let a = Address::decode(input)?;
            parties.insert(a, Bond::decode(input)?);
        }
        Ok(Bonds { parties, treasury: u64::decode(input)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A party withdrawing a gwei every slot cannot grow its pending list
    /// (the beacon state) past the cap; once one is paid, it may again.
    #[test]
    fn pending_withdrawals_are_bounded() {
        let who = Address([7; 20]);
        let mut bonds = Bonds::default();
        bonds.parties.insert(who, Bond { free: 1_000, ..Default::default() });
        let window = 100;
        for slot in 0..MAX_PENDING_WITHDRAWALS as u64 {
            bonds.withdraw(&who, 1, slot, slot + window).unwrap();
        }
        let n = MAX_PENDING_WITHDRAWALS as u64;
        let err = bonds.withdraw(&who, 1, n, n + window).unwrap_err();
        assert!(err.contains("withdrawals pending"), "{err}");
        // the same slot's withdrawal merges into its entry
        bonds.withdraw(&who, 1, n, n - 1 + window).unwrap();
        assert_eq!(bonds.parties[&who].withdrawing.len(), MAX_PENDING_WITHDRAWALS);
        bonds.release(window);
        bonds.withdraw(&who, 1, n + 1, n + window).unwrap();
        assert_eq!(bonds.parties[&who].withdrawing.len(), MAX_PENDING_WITHDRAWALS);
    }

    #[test]
    fn slashing_moves_value_and_never_creates_it() {
        let (a, b) = (Address([1; 20]), Address([2; 20]));
        let mut bonds = Bonds::genesis([(a, 1000), (b, 500)]);
        let total = bonds.total();
        assert_eq!(bonds.lock(&a, 300), 300);
        assert_eq!(bonds.lock(&b, 800), 500, "locks no more than is free");
        assert_eq!(bonds.slash(&b, 500, &a, 40), (200, 300));
        bonds.unlock(&a, 300);
        assert_eq!(bonds.parties[&a].free, 1200);
        assert_eq!(bonds.parties[&b].slashed, 500);
        assert_eq!(bonds.treasury, 300);
        assert_eq!(bonds.total(), total);
        // challenging oneself never pays: the treasury keeps its share
        let mut own = Bonds::genesis([(a, 1000)]);
        own.lock(&a, 100);
        own.slash(&a, 100, &a, 50);
        assert_eq!(own.parties[&a].free, 950);
        bonds.withdraw(&a, 200, 0, 10).unwrap();
        assert!(bonds.withdraw(&a, 200, 0, 10).is_err(), "a replayed withdrawal");
        assert!(bonds.withdraw(&a, 5000, 1, 10).is_err());
        // a withdrawal still pending is at stake in a game opened meanwhile
        let mut pending = Bonds::genesis([(b, 100)]);
        pending.withdraw(&b, 100, 0, 50).unwrap();
        assert_eq!(pending.lock(&b, 30), 30);
        assert_eq!(pending.parties[&b].withdrawing, vec![(70, 50)]);
        assert_eq!(pending.total(), 100);
        bonds.release(9);
        assert_eq!(bonds.parties[&a].withdrawn, 0);
        bonds.release(10);
        assert_eq!(bonds.parties[&a].withdrawn, 200);
        assert_eq!(bonds.total(), total);
    }
}
