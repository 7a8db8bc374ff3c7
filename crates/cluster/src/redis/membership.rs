//! Membership: each node announces `(id, url, weight)` with a TTL heartbeat, and every node keeps
//! the live member list and the rendezvous placement built from it.
//!
//! State in Redis: a sorted set `members` (member id scored by its expiry, in Redis' own clock,
//! so node clocks may disagree) and a hash `member-info` (id -> JSON). One Lua script per beat
//! drops the expired, renews this node and returns the live list, so a beat is one round trip.
//! A node killed with SIGKILL stops beating and leaves the list within one TTL; one that drains
//! leaves at once ([`Membership::leave`]).
//!
//! If Redis cannot be reached for longer than the TTL, the node stops trusting its last list and
//! places every key on itself: forwarding to peers it cannot see would only add timeouts.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use imgd_core::Result;
use imgd_core::port::{Member, Placement};
use serde::{Deserialize, Serialize};

use super::RedisConn;
use crate::Rendezvous;

const BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(expired) do redis.call('HDEL', KEYS[2], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local info = redis.call('HGET', KEYS[2], id)
  if info then out[#out + 1] = info end
end
return out";

#[derive(Serialize, Deserialize)]
struct Announcement {
    id: String,
    url: String,
    weight: f64,
}

/// The live view of the cluster, refreshed by [`Membership::run`].
pub struct Membership {
    redis: RedisConn,
    me: Member,
    ttl: Duration,
    beat: redis::Script,
    view: RwLock<View>,
}

struct View {
    ring: Arc<Rendezvous>,
    last_beat: Option<Instant>,
}

impl Membership {
    /// Membership of `me` with heartbeats that expire after `ttl`. Until the first beat the ring
    /// holds only this node.
    pub fn new(redis: RedisConn, me: Member, ttl: Duration) -> Arc<Self> {
        Arc::new(Membership {
            redis,
            view: RwLock::new(View {
                ring: Arc::new(Rendezvous::new(vec![me.clone()])),
                last_beat: None,
            }),
            me,
            ttl,
            beat: redis::Script::new(BEAT),
        })
    }

    /// This node.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// Whether the last heartbeat reached Redis within the TTL.
    pub fn is_connected(&self) -> bool {
        self.view
            .read()
            .expect("view")
            .last_beat
            .is_some_and(|at| at.elapsed() < self.ttl)
    }

    /// One heartbeat: renews this node (unless `announce` is false) and refreshes the view.
    pub async fn beat(&self, announce: bool) -> Result<()> {
        let me = serde_json::to_string(&Announcement {
            id: self.me.id.to_string(),
            url: self.me.url.to_string(),
            weight: self.me.weight,
        })
        .expect("serialisable");
        let id = if announce { &*self.me.id } else { "" };
        let mut invocation = self.beat.key(self.redis.key("members"));
        invocation
            .key(self.redis.key("member-info"))
            .arg(id)
            .arg(me)
            .arg(self.ttl.as_millis() as u64);
        let infos: Vec<String> = self.redis.invoke(&invocation).await?;
        let mut members: Vec<Member> = infos
            .iter()
            .filter_map(|info| serde_json::from_str::<Announcement>(info).ok())
            .map(|a| Member {
                id: a.id.into(),
                url: a.url.into(),
                weight: a.weight,
            })
            .collect();
        if !members.iter().any(|m| m.id == self.me.id) {
            members.push(self.me.clone());
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        let mut view = self.view.write().expect("view");
        if view.ring.members() != members.as_slice() {
            let ids: Vec<&str> = members.iter().map(|m| &*m.id).collect();
            tracing::info!(members = ?ids, "cluster membership changed");
            view.ring = Arc::new(Rendezvous::new(members));
        }
        metrics::gauge!("imgd_cluster_members").set(view.ring.members().len() as f64);
        view.last_beat = Some(Instant::now());
        Ok(())
    }

    /// Beats every third of the TTL until `stop` resolves, then leaves the cluster.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.beat(true).await {
                        tracing::warn!(error = %e, "membership heartbeat failed");
                        self.fall_back_to_self_when_stale();
                    }
                }
                _ = &mut stop => break,
            }
        }
        self.leave().await;
    }

    fn fall_back_to_self_when_stale(&self) {
        let mut view = self.view.write().expect("view");
        let stale = view.last_beat.is_none_or(|at| at.elapsed() >= self.ttl);
        if stale && view.ring.members().len() > 1 {
            tracing::warn!("lost redis for longer than the membership TTL; owning every key");
            view.ring = Arc::new(Rendezvous::new(vec![self.me.clone()]));
            metrics::gauge!("imgd_cluster_members").set(1.0);
        }
    }

    /// Removes this node now, so its keys move before it stops (graceful drain).
    pub async fn leave(&self) {
        let removed: Result<i64> = self
            .redis
            .query(
                redis::cmd("ZREM")
                    .arg(self.redis.key("members"))
                    .arg(&*self.me.id),
            )
            .await;
        if let Err(e) = removed {
            tracing::warn!(error = %e, "could not leave the cluster; the TTL will");
        }
    }
}

impl Placement for Membership {
    fn owner(&self, key: &str) -> Option<Member> {
        let ring = self.view.read().expect("view").ring.clone();
        ring.owner(key)
    }

    fn members(&self) -> Vec<Member> {
        self.view.read().expect("view").ring.members().to_vec()
    }

    fn coordination(&self) -> String {
        if self.is_connected() {
            "redis".into()
        } else {
            "degraded: redis unreachable, locks and placement are local to this node".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::test_conn;

    fn member(id: &str) -> Member {
        Member {
            id: id.into(),
            url: format!("http://{id}").into(),
            weight: 1.0,
        }
    }

    #[tokio::test]
    async fn nodes_see_each_other_and_a_silent_node_drops_out_within_the_ttl() {
        let Some(conn) = test_conn() else { return };
        let ttl = Duration::from_millis(600);
        let a = Membership::new(conn.clone(), member("a"), ttl);
        let b = Membership::new(conn.clone(), member("b"), ttl);
        let c = Membership::new(conn, member("c"), ttl);
        for node in [&a, &b, &c] {
            node.beat(true).await.unwrap();
        }
        a.beat(true).await.unwrap();
        let ids = |m: &Membership| {
            m.members()
                .iter()
                .map(|m| m.id.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ["a", "b", "c"]);
        assert!(a.is_connected());

        // c stops beating (SIGKILL); a and b keep going and lose it within the TTL.
        let started = Instant::now();
        while ids(&a).contains(&"c".to_owned()) {
            assert!(started.elapsed() < ttl * 3, "c never dropped out");
            tokio::time::sleep(ttl / 3).await;
            a.beat(true).await.unwrap();
            b.beat(true).await.unwrap();
        }
        assert_eq!(ids(&a), ["a", "b"]);

        // b leaves gracefully: gone on the next beat, and keys it owned move to a.
        b.leave().await;
        a.beat(true).await.unwrap();
        assert_eq!(ids(&a), ["a"]);
        assert_eq!(&*a.owner("any key").unwrap().id, "a");
    }

    #[tokio::test]
    async fn without_redis_a_node_owns_every_key() {
        let conn =
            RedisConn::new("redis://127.0.0.1:9/", "down", Duration::from_millis(200)).unwrap();
        let node = Membership::new(conn, member("alone"), Duration::from_millis(300));
        assert!(node.beat(true).await.is_err());
        node.fall_back_to_self_when_stale();
        assert!(!node.is_connected());
        assert_eq!(&*node.owner("k").unwrap().id, "alone");
    }
}
