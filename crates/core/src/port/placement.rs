//! The placement port: which node owns a key (a variant), so one node renders it and keeps it hot.

use std::sync::Arc;

/// A node of the cluster as placement sees it. Cheap to clone (shared strings), because the
/// current owner is handed out per request while membership may change underneath.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Stable node id (`IMGD_NODE_ID`).
    pub id: Arc<str>,
    /// How peers reach it (`IMGD_ADVERTISE_URL`), without a trailing slash.
    pub url: Arc<str>,
    /// Relative capacity; a node of weight 2 owns about twice the keys of a node of weight 1.
    pub weight: f64,
}

/// Maps keys to owners.
pub trait Placement: Send + Sync + 'static {
    /// The member that owns `key`, or `None` when there are no members.
    fn owner(&self, key: &str) -> Option<Member>;

    /// The members placement currently spreads keys over.
    fn members(&self) -> Vec<Member>;

    /// How this node coordinates with others, for `/readyz`: `"single node"`, `"redis"`, or a
    /// description of a degraded state (still serving, but rendering without cluster locks).
    fn coordination(&self) -> String;
}
