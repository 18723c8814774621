//! The referee model's named attacks, deterministic: each plays one
//! attack move by move on the model's world (issues 15 and 16).

use super::*;

/// A descent is refused unless it names the item the game pinned, proven
/// under the header's items root, and a trace no longer than an item of
/// the header's gas could have (`item_trace_bound`): a liar cannot descend
/// into another item or claim 2^40 steps to buy itself rounds.
#[test]
fn a_descent_names_the_pinned_item_and_a_trace_an_item_can_have() {
    // a lying header of one item: the game is at its single step at once
    let sched = Schedule::scripted([1, 1], [true, false], 1, true);
    let mut w = World::new(sched, Faults::default());
    let liar = w.cast.coalition[0];
    let quiet = Slot { ops: vec![], honest_at: 0, pause: 0 };
    w.play(&quiet).unwrap(); // the honest challenger opens
    let id = *w.referee.open.keys().next().expect("opened");
    let g = w.referee.open[&id].clone();
    assert_eq!(g.game.phase, Phase::Step);
    let h = w.header_of(&g);
    let (item, proof) = (h.items[0], MerkleTree::new(&h.items).proof(0).unwrap());
    let most = bridge::game::item_trace_bound(h.header.gas_limit);
    let descend =
        |item, last| Action::Descend { game: id, at: g.position(), item, proof: proof.clone(), last };
    w.slot += 1;
    for (action, why) in [
        (descend(Hash::of(b"another item"), 3), "another item"),
        (descend(item, most + 1), "a trace longer than any item's"),
        (descend(item, 0), "an empty trace"),
    ] {
        assert!(matches!(w.apply(liar, action), Err(MoveRejection::BadDescent(_))), "{why}");
    }
    assert_eq!(w.referee.open[&id].game.descent, None, "nothing changed");
    w.apply(liar, descend(item, most)).expect("the pinned item, a trace an item can have");
    assert_eq!(w.referee.open[&id].game.descent.as_ref().map(|d| d.last), Some(most));
}

/// The first named attack of issue 15, deterministic: a colluding stand-in
/// steers the honest challenger's round-0 pick, loses, and the lying
/// proposer replays that pick in the game's next run. Refused: the pick
/// names the first run's position.
#[test]
fn a_pick_from_an_earlier_run_is_refused() {
    let sched = Schedule::scripted([8, 1], [true, false], 2, true);
    let mut w = World::new(sched, Faults::default());
    let (liar, mate) = (w.cast.coalition[0], w.cast.coalition[1]);
    let quiet = Slot { ops: vec![], honest_at: 0, pause: 0 };
    w.play(&quiet).unwrap(); // the honest challenger opens
    let id = *w.referee.open.keys().next().expect("opened");
    // the liar stays silent until its shard-mate may stand in
    while !w.referee.open[&id].defender_overdue(w.slot + 1) {
        w.idle();
    }
    w.slot += 1;
    let g = w.referee.open[&id].clone();
    let garbage = g.game.points().iter().map(|p| Hash::of(&p.to_be_bytes())).collect();
    w.apply(mate, Action::Bisect { game: id, at: g.position(), commitments: garbage }).unwrap();
    w.seal().unwrap();
    let first_run = w.referee.open[&id].position();
    let honest_pick =
        w.honest_moves().into_iter().find(|(who, _)| *who == w.cast.challenger).expect("a pick");
    w.slot += 1;
    w.apply(honest_pick.0, honest_pick.1.clone()).unwrap();
    // the stand-in goes silent and loses: the game starts over
    w.seal().unwrap();
    while w.referee.open[&id].resets == 0 {
        w.idle();
    }
    let g = w.referee.open[&id].clone();
    w.slot += 1;
    let points = g.game.points();
    let truth = w.header_of(&g).truth_hashes();
    w.apply(
        liar,
        Action::Bisect {
            game: id,
            at: g.position(),
            commitments: points.iter().map(|p| truth[*p as usize]).collect(),
        },
    )
    .unwrap();
    let replay = w.referee.apply(honest_pick.0, &honest_pick.1, w.slot, 0, &w.model);
    assert!(
        matches!(replay, Err(MoveRejection::StalePosition { got, .. }) if got == first_run),
        "{replay:?}"
    );
    // and the honest challenger, playing on, wins
    for s in 0..200 {
        if !w.referee.open.contains_key(&id) {
            break;
        }
        assert!(s < 199, "the game never ended");
        w.play(&quiet).unwrap();
    }
    assert!(w.model.discarded.contains(&1), "the lie is discarded");
    assert_eq!(w.referee.bonds.parties[&w.cast.challenger].slashed, 0);
}

/// A shard-mate stands in once per game: after its run is lost, its
/// defender moves are refused in the next runs, so stand-ins cannot keep a
/// header undecided for more runs than the shard has validators.
#[test]
fn a_shard_mate_stands_in_once_per_game() {
    let sched = Schedule::scripted([4, 1], [true, false], 2, true);
    let mut w = World::new(sched, Faults::default());
    let mate = w.cast.coalition[1];
    w.play(&Slot { ops: vec![], honest_at: 0, pause: 0 }).unwrap();
    let id = *w.referee.open.keys().next().expect("opened");
    let stand_in = |w: &mut World| {
        while !w.referee.open[&id].defender_overdue(w.slot + 1) {
            w.idle();
        }
        w.slot += 1;
        let g = w.referee.open[&id].clone();
        let garbage = g.game.points().iter().map(|p| Hash::of(&p.to_be_bytes())).collect();
        let r = w.apply(mate, Action::Bisect { game: id, at: g.position(), commitments: garbage });
        w.seal().unwrap();
        r
    };
    stand_in(&mut w).unwrap();
    // the honest challenger picks; the stand-in goes silent and loses
    let quiet = Slot { ops: vec![], honest_at: 0, pause: 0 };
    while w.referee.open[&id].resets == 0 {
        w.play(&quiet).unwrap();
    }
    assert_eq!(w.referee.open[&id].stood_in, vec![mate]);
    assert!(matches!(stand_in(&mut w), Err(MoveRejection::NotAParty { .. })));
}

/// A late `Claim` is paid for: the claim does not move the turn's start,
/// so the defender's next move is charged from when the receipt game
/// opened, and a defender that claims at the last moment and then stays
/// silent loses on time as if it never claimed (issue 15's suspected
/// "late Claim charging no clock").
#[test]
fn a_late_claim_is_charged_to_the_defenders_clock() {
    let sched = Schedule::scripted([8, 1], [true, false], 4, false);
    let mut w = World::new(sched, Faults::default());
    let griefer = w.cast.coalition[2];
    let h = &w.model.headers[0];
    let open = Action::Open { shard: SHARD, height: 1, header: h.header.hash(), item: Some(5) };
    w.slot += 1;
    let id = w.apply(griefer, open).unwrap().expect("a game");
    let opened = w.slot;
    w.seal().unwrap();
    // the (coalition's) proposer claims late, just before its clock runs out
    while w.slot + 2 < opened + CLOCK {
        w.idle();
    }
    w.slot += 1;
    let g = w.referee.open[&id].clone();
    let (commitment, receipts, proof) = w.header_of(&g).claim(5);
    let claim = Action::Claim { game: id, at: g.position(), commitment, receipts, proof };
    w.apply(w.cast.coalition[0], claim).unwrap();
    w.seal().unwrap();
    let g = &w.referee.open[&id];
    assert!(g.claimed());
    assert_eq!(g.game.turn_since, opened, "the claim did not restart the defender's turn");
    // silent after it: the clock counted from the opening runs out
    w.idle();
    w.idle();
    let log = &w.referee.logs[&id];
    assert!(
        matches!(log.record.ended, Some((slot, Ending::Decided { outcome: Outcome::Timeout { winner: Side::Challenger } })) if slot == opened + CLOCK),
        "{:?}",
        log.record.ended
    );
}

/// Junk steps cost the referee a re-execution each: a party has at most
/// `MAX_REFUSED_STEPS_PER_SLOT` refused per slot over all its games (and
/// `MAX_REJECTED_STEPS` per game), so spreading junk over games does not
/// multiply it; the next slot it may try again, and an honest step (never
/// refused) is never held back.
#[test]
fn refused_steps_are_bounded_per_party_and_slot() {
    let sched = Schedule::scripted([1, 1], [false, false], 3, true);
    let mut w = World::new(sched, Faults::default());
    let griefer = w.cast.coalition[2];
    w.slot += 1;
    let mut games = Vec::new();
    for height in [1, 2] {
        let header = w.model.headers[height as usize - 1].header.hash();
        let open = Action::Open { shard: SHARD, height, header, item: None };
        games.push(w.apply(griefer, open).unwrap().expect("a game"));
    }
    w.seal().unwrap();
    w.slot += 1;
    let junk = |w: &World, id: Hash| {
        let g = &w.referee.open[&id];
        Action::Step { game: id, at: g.position(), step: step_bytes(g.game.lo, true) }
    };
    for _ in 0..MAX_REFUSED_STEPS_PER_SLOT {
        let a = junk(&w, games[0]);
        assert!(matches!(w.apply(griefer, a), Err(MoveRejection::BadStep(_))));
    }
    let a = junk(&w, games[1]);
    assert!(matches!(w.apply(griefer, a), Err(MoveRejection::Full)), "another game, same slot");
    assert_eq!(w.model.checked.get(), MAX_REFUSED_STEPS_PER_SLOT, "not re-executed");
    w.seal().unwrap();
    w.slot += 1;
    let a = junk(&w, games[1]);
    assert!(matches!(w.apply(griefer, a), Err(MoveRejection::BadStep(_))), "the next slot it is looked at");
}

/// A proven liar pays a whole stake even when a colluder's game on its
/// own descendant held its only stake when the honest game opened (an
/// attacker's review found it escaping: the shortfall was only taken from
/// games on the same header, and the discard then voided the descendant's
/// game and returned the stake).
#[test]
fn a_liar_pays_a_whole_stake_even_when_a_game_on_its_descendant_holds_it() {
    let sched = Schedule {
        // the descendant is true, and the liar's too: the honest
        // challenger has no game on it
        coalition_proposes: [false, true],
        ..Schedule::scripted([4, 24], [true, false], 3, true)
    };
    let mut w = World::new(sched, Faults::default());
    let (liar, colluder) = (w.cast.coalition[0], w.cast.coalition[2]);
    // the liar is bonded for exactly one stake
    w.referee.bonds.parties.get_mut(&liar).unwrap().free = STAKE;
    w.slot += 1;
    let h2 = w.model.headers[1].header.hash();
    let kept =
        w.apply(colluder, Action::Open { shard: SHARD, height: 2, header: h2, item: None }).unwrap().unwrap();
    w.seal().unwrap();
    assert_eq!(w.referee.bonds.parties[&liar].free, 0, "the colluder's game holds the liar's stake");
    let quiet = Slot { ops: vec![], honest_at: 0, pause: 0 };
    for _ in 0..200 {
        if w.model.discarded.contains(&1) {
            break;
        }
        // the coalition keeps its own game on the descendant going (the
        // liar stays silent in the honest challenger's game)
        if let Some(g) = w.referee.open.get(&kept).cloned() {
            let truth = w.header_of(&g).truth_hashes();
            let mv = match &g.game.phase {
                Phase::Bisect => Some((
                    liar,
                    Action::Bisect {
                        game: kept,
                        at: g.position(),
                        commitments: g.game.points().iter().map(|p| truth[*p as usize]).collect(),
                    },
                )),
                Phase::Pick { .. } => {
                    Some((colluder, Action::Pick { game: kept, at: g.position(), index: 0 }))
                }
                _ => None,
            };
            w.slot += 1;
            if let Some((who, action)) = mv {
                w.apply(who, action).unwrap();
            }
            w.seal().unwrap();
        }
        w.play(&quiet).unwrap();
    }
    assert!(w.model.discarded.contains(&1), "the lie is discarded");
    let log = &w.referee.logs;
    assert!(
        log.get(&kept).is_none_or(|l| matches!(l.record.ended, Some((_, Ending::Void)))),
        "the descendant's game ended void"
    );
    assert!(w.referee.bonds.parties[&liar].slashed >= STAKE, "the liar paid a whole stake");
    assert!(w.referee.bonds.parties[&w.cast.challenger].rewarded > 0, "to the honest challenger");
}
