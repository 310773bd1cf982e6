use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const SEC: Millis = 1000;
const ACCOUNT: Rules = Rules {
    backoff_after: 5,
    lockout_after: 10,
    backoff_ms: SEC,
    lockout_ms: 300 * SEC,
    forget_after_ms: 900 * SEC,
};
const PEER: Rules = Rules {
    backoff_after: 50,
    lockout_after: 100,
    ..ACCOUNT
};
const HOME: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));

fn throttle() -> Throttle {
    Throttle::new(ACCOUNT, PEER, 10_000)
}

/// Admits and fails one attempt at `now`.
fn fail_once(t: &mut Throttle, account: &str, now: Millis) {
    t.admit(account, HOME, now).expect("admitted");
    t.failed(account, HOME, now);
}

fn refused(t: &mut Throttle, account: &str, now: Millis) -> Millis {
    t.admit(account, HOME, now)
        .expect_err("refused")
        .retry_after_ms
}

#[test]
fn free_failures_then_doubling_waits_then_a_lockout() {
    let mut t = throttle();
    let mut now = 1_000_000;
    for _ in 0..4 {
        fail_once(&mut t, "ana", now);
    }
    // The fifth failure is the first to cost a wait: 1 s, then 2, 4, 8, 16.
    for wait in [1, 2, 4, 8, 16] {
        fail_once(&mut t, "ana", now);
        assert_eq!(refused(&mut t, "ana", now), wait * SEC);
        assert_eq!(refused(&mut t, "ana", now + wait * SEC - 1), 1);
        now += wait * SEC;
    }
    // The tenth failure locks the account out: even the right password is not checked.
    assert!(t.admit("ana", HOME, now).is_ok());
    assert_eq!(t.failed("ana", HOME, now), vec![Key::Account("ana".into())]);
    assert_eq!(refused(&mut t, "ana", now), 300 * SEC);
    assert_eq!(refused(&mut t, "ana", now + 299 * SEC), SEC);
    // After it, one more failure locks it out again.
    now += 300 * SEC;
    fail_once(&mut t, "ana", now);
    assert_eq!(refused(&mut t, "ana", now + 1), 300 * SEC - 1);
    // Other accounts are not affected.
    assert!(t.admit("bob", HOME, now).is_ok());
}

#[test]
fn refused_attempts_do_not_count() {
    let mut t = throttle();
    for _ in 0..5 {
        fail_once(&mut t, "ana", 0);
    }
    for _ in 0..100 {
        refused(&mut t, "ana", 10);
    }
    // Still the first wait: the refusals added nothing.
    assert_eq!(refused(&mut t, "ana", 10), SEC - 10);
}

#[test]
fn a_success_clears_the_account_but_not_the_peer() {
    let mut t = throttle();
    for i in 0..9 {
        fail_once(&mut t, "ana", i * 100 * SEC);
    }
    let now = 900 * SEC;
    t.admit("ana", HOME, now).unwrap();
    t.succeeded("ana");
    assert_eq!(t.tracked(), 1, "only the peer is left");
    for _ in 0..4 {
        fail_once(&mut t, "ana", now);
    }
    assert!(t.admit("ana", HOME, now).is_ok());
}

#[test]
fn parallel_attempts_cannot_outrun_the_count() {
    let mut t = throttle();
    for _ in 0..5 {
        t.admit("ana", HOME, 0).unwrap();
    }
    assert_eq!(refused(&mut t, "ana", 0), SEC);
    // Decided or withdrawn, they make room again.
    t.withdrawn("ana", 0);
    t.admit("ana", HOME, 0).unwrap();
    // Past the free failures, one at a time.
    for _ in 0..5 {
        t.failed("ana", HOME, 0);
    }
    t.admit("ana", HOME, SEC).unwrap();
    assert!(t.admit("ana", HOME, SEC).is_err());
}

#[test]
fn a_peer_is_throttled_across_accounts() {
    let mut t = throttle();
    for n in 0..50 {
        fail_once(&mut t, &format!("agent-{n}"), 0);
    }
    // A fresh account from that address waits; from another address it does not.
    assert_eq!(refused(&mut t, "fresh", 0), SEC);
    let elsewhere = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    assert!(t.admit("fresh", elsewhere, 0).is_ok());
    assert!(t.admit("fresh", None, 0).is_ok());
}

#[test]
fn failures_are_forgotten_after_a_quiet_window() {
    let mut t = throttle();
    for i in 0..9 {
        fail_once(&mut t, "ana", i * 20 * SEC);
    }
    let later = 160 * SEC + 900 * SEC;
    t.admit("ana", HOME, later).unwrap();
    t.failed("ana", HOME, later);
    // Counted from zero again: a first failure costs nothing.
    assert!(t.admit("ana", HOME, later).is_ok());
}

#[test]
fn the_number_of_keys_is_capped() {
    let mut t = Throttle::new(ACCOUNT, PEER, 64);
    for n in 0..10_000u32 {
        let peer = Some(IpAddr::V4(Ipv4Addr::from(n)));
        let account = format!("ghost-{n}");
        t.admit(&account, peer, Millis::from(n)).unwrap();
        t.failed(&account, peer, Millis::from(n));
        assert!(t.tracked() <= 64, "{} keys", t.tracked());
    }
    // The most recent failures are the ones kept.
    for _ in 0..4 {
        fail_once(&mut t, "ghost-9999", 10_000);
    }
    assert!(t.admit("ghost-9999", HOME, 10_000).is_err());
}

#[test]
fn peers_are_keyed_by_address_or_ipv6_prefix() {
    let mapped: IpAddr = Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped().into();
    assert_eq!(
        Key::peer(mapped),
        Key::Peer(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
    );
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse::<Ipv6Addr>().unwrap().into();
    let b: IpAddr = "2001:db8:1:2:bbbb::9".parse::<Ipv6Addr>().unwrap().into();
    assert_eq!(Key::peer(a), Key::peer(b));
    assert_eq!(Key::peer(a), Key::Peer("2001:db8:1:2::".parse().unwrap()));
}
