//! Placement: which live node should own a tenant, by rendezvous hashing with bounded loads.
//!
//! Each tenant ranks the nodes by a hash of (tenant, node) and goes to the first one in that
//! order whose load is under the bound, `ceil(factor × (tenants + 1) / nodes)`. A node joining
//! or leaving changes the ranking only where it comes first, so only its share of the tenants
//! moves; the bound keeps a node from taking more than its share when hashes are unlucky.
//! `assign` places a whole set of tenants at once (pins first), as rebalancing does.

use std::collections::HashMap;

/// How far over the mean a node's load may go (1.25: a quarter more than its share).
pub const DEFAULT_FACTOR: f64 = 1.25;

/// The node `tenant` should live on, among `nodes` (ids of the live nodes) carrying `loads`
/// tenants each (the tenant itself not counted); `None` when there is no node.
pub fn place<'a>(
    tenant: &str,
    nodes: &'a [String],
    loads: &HashMap<String, usize>,
    factor: f64,
) -> Option<&'a str> {
    if nodes.is_empty() {
        return None;
    }
    let total: usize = nodes
        .iter()
        .map(|n| loads.get(n).copied().unwrap_or(0))
        .sum();
    let bound = ((factor.max(1.0) * (total + 1) as f64) / nodes.len() as f64).ceil() as usize;
    let ranked = rank(tenant, nodes);
    ranked
        .iter()
        .find(|n| loads.get(n.as_str()).copied().unwrap_or(0) < bound)
        .or(ranked.first())
        .map(|n| n.as_str())
}

/// Where every tenant of `tenants` should live among `nodes` (ids of the live nodes): a
/// tenant pinned (`pins`: tenant → node) to a live node goes there; the others, in id order,
/// go to the first node in their ranking whose load is under `ceil(factor × tenants / nodes)`.
/// The same inputs give the same answer on every node. Empty when there is no node.
pub fn assign(
    tenants: &[String],
    nodes: &[String],
    pins: &HashMap<String, String>,
    factor: f64,
) -> HashMap<String, String> {
    let mut placed = HashMap::new();
    if nodes.is_empty() {
        return placed;
    }
    let bound = ((factor.max(1.0) * tenants.len() as f64) / nodes.len() as f64)
        .ceil()
        .max(1.0) as usize;
    let mut loads: HashMap<&str, usize> = HashMap::new();
    let mut free = Vec::new();
    for tenant in tenants {
        match pins.get(tenant).filter(|p| nodes.contains(p)) {
            Some(node) => {
                *loads.entry(node.as_str()).or_default() += 1;
                placed.insert(tenant.clone(), node.clone());
            }
            None => free.push(tenant),
        }
    }
    free.sort();
    for tenant in free {
        let ranked = rank(tenant, nodes);
        let node = ranked
            .iter()
            .find(|n| loads.get(n.as_str()).copied().unwrap_or(0) < bound)
            .or(ranked.first());
        if let Some(node) = node {
            *loads.entry(node.as_str()).or_default() += 1;
            placed.insert(tenant.clone(), (*node).clone());
        }
    }
    placed
}

/// `nodes` in `tenant`'s order of preference.
pub fn rank<'a>(tenant: &str, nodes: &'a [String]) -> Vec<&'a String> {
    let mut ranked: Vec<(u64, &String)> = nodes.iter().map(|n| (score(tenant, n), n)).collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    ranked.into_iter().map(|(_, n)| n).collect()
}

/// A stable 64-bit score of (tenant, node): FNV-1a over both, finished with a 64-bit mixer.
/// Stable across builds and versions, so every node ranks alike.
fn score(tenant: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tenant.bytes().chain([0xff]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finalizer spreads FNV's weak low bits.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    /// Places `tenants` one by one, as a cluster filling up would.
    fn fill(tenants: usize, nodes: &[String], factor: f64) -> HashMap<String, String> {
        let mut loads: HashMap<String, usize> = HashMap::new();
        let mut placed = HashMap::new();
        for t in 0..tenants {
            let tenant = format!("t{t}");
            let node = place(&tenant, nodes, &loads, factor).unwrap().to_string();
            *loads.entry(node.clone()).or_default() += 1;
            placed.insert(tenant, node);
        }
        placed
    }

    #[test]
    fn no_node_places_nothing() {
        assert_eq!(place("t", &[], &HashMap::new(), DEFAULT_FACTOR), None);
    }

    #[test]
    fn every_node_ranks_alike() {
        let n = nodes(5);
        let mut shuffled = n.clone();
        shuffled.reverse();
        assert_eq!(rank("tenant-a", &n), rank("tenant-a", &shuffled));
    }

    #[test]
    fn loads_stay_under_the_bound() {
        let n = nodes(3);
        let placed = fill(3000, &n, DEFAULT_FACTOR);
        let mut loads: HashMap<&str, usize> = HashMap::new();
        for node in placed.values() {
            *loads.entry(node).or_default() += 1;
        }
        for (node, load) in &loads {
            assert!(*load <= 1250, "{node} carries {load} of 3000");
            assert!(*load >= 750, "{node} carries only {load} of 3000");
        }
    }

    #[test]
    fn a_joining_node_takes_about_its_share_and_nothing_else_moves() {
        let before = nodes(3);
        let after = nodes(4);
        let moved = (0..4000)
            .map(|t| format!("t{t}"))
            .filter(|t| rank(t, &before)[0] != rank(t, &after)[0])
            .collect::<Vec<_>>();
        // Every tenant that moved went to the new node.
        assert!(moved.iter().all(|t| rank(t, &after)[0] == "node-3"));
        let share = moved.len() as f64 / 4000.0;
        assert!((0.20..0.30).contains(&share), "moved {share}");
    }

    #[test]
    fn a_leaving_node_gives_up_only_its_own() {
        let before = nodes(4);
        let after: Vec<String> = before.iter().filter(|n| *n != "node-1").cloned().collect();
        for t in (0..2000).map(|t| format!("t{t}")) {
            let was = rank(&t, &before)[0];
            if was != "node-1" {
                assert_eq!(rank(&t, &after)[0], was, "{t} moved");
            }
        }
    }

    #[test]
    fn assigning_after_a_join_moves_about_a_share_only_to_the_new_node() {
        let tenants: Vec<String> = (0..3000).map(|t| format!("t{t}")).collect();
        let none = HashMap::new();
        let before = assign(&tenants, &nodes(2), &none, DEFAULT_FACTOR);
        let after = assign(&tenants, &nodes(3), &none, DEFAULT_FACTOR);
        let to_new = tenants
            .iter()
            .filter(|t| before[*t] != after[*t] && after[*t] == "node-2")
            .count();
        let share = to_new as f64 / 3000.0;
        assert!(
            (0.28..0.40).contains(&share),
            "moved to the new node: {share}"
        );
        let mut loads: HashMap<&str, usize> = HashMap::new();
        for node in after.values() {
            *loads.entry(node).or_default() += 1;
        }
        assert!(loads.values().all(|l| *l <= 1250), "{loads:?}");
    }

    #[test]
    fn a_pin_to_a_live_node_wins_and_to_a_dead_one_is_ignored() {
        let tenants: Vec<String> = (0..300).map(|t| format!("t{t}")).collect();
        let n = nodes(3);
        let pins = HashMap::from([
            ("t1".to_string(), "node-0".to_string()),
            ("t2".to_string(), "node-1".to_string()),
            ("t3".to_string(), "node-9".to_string()),
        ]);
        let placed = assign(&tenants, &n, &pins, DEFAULT_FACTOR);
        assert_eq!(placed["t1"], "node-0");
        assert_eq!(placed["t2"], "node-1");
        assert!(
            n.contains(&placed["t3"]),
            "a pin to a dead node is placed normally"
        );
        assert_eq!(placed.len(), 300);
        assert!(assign(&tenants, &[], &pins, DEFAULT_FACTOR).is_empty());
    }

    #[test]
    fn a_full_preferred_node_sends_the_tenant_to_the_next() {
        let n = nodes(2);
        let first = rank("t", &n)[0].clone();
        let second = rank("t", &n)[1].clone();
        let loads = HashMap::from([(first, 10), (second.clone(), 0)]);
        assert_eq!(
            place("t", &n, &loads, DEFAULT_FACTOR),
            Some(second.as_str())
        );
    }
}
