//! Placement implementations: [`SingleNode`] (always self) and [`Rendezvous`], weighted
//! rendezvous (highest random weight) hashing.
//!
//! Rendezvous rather than a ring of virtual nodes: no ring to rebuild or tune, an owner lookup is
//! one hash per member (a cluster is tens of nodes, not thousands), and removing a node moves
//! exactly the keys it owned. Weights use the logarithmic method (Schindelhauer and Schomaker):
//! score = -weight / ln(u), with u uniform in (0, 1) from the hash of (key, member); the highest
//! score wins, and each member's share is its weight over the total.

use imgd_core::port::{Member, Placement};

/// One node that owns everything.
pub struct SingleNode {
    me: Member,
}

impl SingleNode {
    /// Placement for a node running alone.
    pub fn new(me: Member) -> Self {
        SingleNode { me }
    }
}

impl Placement for SingleNode {
    fn owner(&self, _key: &str) -> Option<Member> {
        Some(self.me.clone())
    }

    fn members(&self) -> Vec<Member> {
        vec![self.me.clone()]
    }

    fn coordination(&self) -> String {
        "single node".into()
    }
}

/// Weighted rendezvous hashing over a member list.
pub struct Rendezvous {
    members: Vec<Member>,
}

impl Rendezvous {
    /// Placement over `members`; members with a non-positive weight own nothing.
    pub fn new(members: Vec<Member>) -> Self {
        Rendezvous { members }
    }

    /// The members, as given.
    pub fn members(&self) -> &[Member] {
        &self.members
    }
}

/// A uniform value in (0, 1) for (key, member), stable across processes and versions.
fn unit_hash(key: &str, member: &str) -> f64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(key.len() as u64).to_le_bytes());
    hasher.update(key.as_bytes());
    hasher.update(member.as_bytes());
    let bytes: [u8; 8] = hasher.finalize().as_bytes()[..8]
        .try_into()
        .expect("8 bytes");
    // 53 random bits, offset by half a step so the value is never 0 or 1.
    ((u64::from_le_bytes(bytes) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

impl Placement for Rendezvous {
    fn owner(&self, key: &str) -> Option<Member> {
        self.members
            .iter()
            .filter(|m| m.weight > 0.0)
            .map(|m| (-m.weight / unit_hash(key, &m.id).ln(), m))
            .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.id.cmp(&a.1.id)))
            .map(|(_, m)| m.clone())
    }

    fn members(&self) -> Vec<Member> {
        self.members.clone()
    }

    fn coordination(&self) -> String {
        "static".into()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEYS: usize = 60_000;

    fn member(i: usize, weight: f64) -> Member {
        Member {
            id: format!("node-{i}").into(),
            url: format!("http://10.0.0.{i}:8080").into(),
            weight,
        }
    }

    fn keys() -> Vec<String> {
        (0..KEYS).map(|i| format!("variant-{i:08}")).collect()
    }

    fn owners(placement: &Rendezvous, keys: &[String]) -> Vec<String> {
        keys.iter()
            .map(|k| placement.owner(k).unwrap().id.to_string())
            .collect()
    }

    fn shares(owners: &[String]) -> HashMap<String, f64> {
        let mut counts: HashMap<String, f64> = HashMap::new();
        for o in owners {
            *counts.entry(o.clone()).or_default() += 1.0;
        }
        counts.values_mut().for_each(|c| *c /= owners.len() as f64);
        counts
    }

    #[test]
    fn equal_nodes_own_equal_shares_within_ten_percent() {
        let keys = keys();
        for n in 3..=10 {
            let placement = Rendezvous::new((0..n).map(|i| member(i, 1.0)).collect());
            let shares = shares(&owners(&placement, &keys));
            assert_eq!(shares.len(), n);
            let fair = 1.0 / n as f64;
            for (node, share) in shares {
                assert!(
                    (share - fair).abs() <= 0.1 * fair,
                    "{n} nodes: {node} owns {share:.4}, fair is {fair:.4}"
                );
            }
        }
    }

    #[test]
    fn weights_are_honoured() {
        let keys = keys();
        let weights = [1.0, 2.0, 3.0, 1.0];
        let placement = Rendezvous::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, &w)| member(i, w))
                .collect(),
        );
        let shares = shares(&owners(&placement, &keys));
        let total: f64 = weights.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            let expected = w / total;
            let share = shares[&format!("node-{i}")];
            assert!(
                (share - expected).abs() <= 0.1 * expected,
                "node-{i} (weight {w}) owns {share:.4}, expected {expected:.4}"
            );
        }
        let zero = Rendezvous::new(vec![member(0, 1.0), member(1, 0.0)]);
        assert!(
            keys.iter()
                .take(1000)
                .all(|k| &*zero.owner(k).unwrap().id == "node-0"),
            "weight 0 owns nothing"
        );
    }

    #[test]
    fn adding_or_removing_one_node_moves_at_most_its_share() {
        let keys = keys();
        for n in 3..=10 {
            let all: Vec<Member> = (0..n).map(|i| member(i, 1.0)).collect();
            let before = owners(&Rendezvous::new(all.clone()), &keys);
            let removed = owners(&Rendezvous::new(all[1..].to_vec()), &keys);
            let moved =
                before.iter().zip(&removed).filter(|(a, b)| a != b).count() as f64 / KEYS as f64;
            assert!(
                moved <= 1.2 / n as f64,
                "removing 1 of {n} moved {moved:.4}"
            );
            assert!(
                before
                    .iter()
                    .zip(&removed)
                    .all(|(a, b)| a == b || a == "node-0"),
                "only the removed node's keys move"
            );
            let mut grown = all.clone();
            grown.push(member(n, 1.0));
            let added = owners(&Rendezvous::new(grown), &keys);
            let moved =
                before.iter().zip(&added).filter(|(a, b)| a != b).count() as f64 / KEYS as f64;
            assert!(moved <= 1.2 / n as f64, "adding 1 to {n} moved {moved:.4}");
            assert!(
                before
                    .iter()
                    .zip(&added)
                    .all(|(a, b)| a == b || *b == format!("node-{n}")),
                "keys only move to the new node"
            );
        }
    }

    #[test]
    fn owners_are_stable_and_order_independent() {
        let a = Rendezvous::new(vec![member(0, 1.0), member(1, 1.0), member(2, 1.0)]);
        let b = Rendezvous::new(vec![member(2, 1.0), member(0, 1.0), member(1, 1.0)]);
        for k in keys().iter().take(2000) {
            assert_eq!(a.owner(k).unwrap().id, b.owner(k).unwrap().id);
        }
        assert!(Rendezvous::new(Vec::new()).owner("k").is_none());
        let single = SingleNode::new(member(7, 1.0));
        assert_eq!(&*single.owner("anything").unwrap().id, "node-7");
    }
}
