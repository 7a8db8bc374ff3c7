//! The placement port: which node owns a key (a variant), so one node renders it and keeps it hot.

/// A node of the cluster as placement sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Stable node id (`IMGD_NODE_ID`).
    pub id: String,
    /// How peers reach it (`IMGD_ADVERTISE_URL`).
    pub url: String,
    /// Relative capacity; a node of weight 2 owns about twice the keys of a node of weight 1.
    pub weight: f64,
}

/// Maps keys to owners.
pub trait Placement: Send + Sync + 'static {
    /// The member that owns `key`, or `None` when there are no members.
    fn owner(&self, key: &str) -> Option<&Member>;
}
