//! Limits and nonces shared through a real three-master Redis Cluster (three replicas), started
//! by each test on loopback ports: two gateways admit exactly what one would, one request's
//! keys sit in one slot under their counter group's hash tag, a nonce spent at one gateway is
//! a replay at the other, and a master killed mid-run gives each limit's `on store error`
//! answer within the Redis timeout until its replica takes over — with the counts it kept.
//! Skipped unless redis-server and redis-cli are installed (required when
//! `RULEGATE_REDIS=required`, as in CI).

use crate::common::*;
use crate::limits_support::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

/// Six `redis-server`s in cluster mode (a quick node timeout, so a failover takes seconds),
/// each with its own directory and ports; every one killed on drop, panics included.
struct Cluster {
    nodes: Vec<Node>,
}

struct Node {
    port: u16,
    child: Option<Child>,
    _dir: TempDir,
}

impl Node {
    /// A node that answers PING. Its ports were free a moment before it binds them: one taken
    /// in between (by a test running in parallel, or the two picks being the same port) makes
    /// redis-server exit at once, and the node is started again on two others.
    fn spawn() -> Node {
        for _ in 0..5 {
            let mut node = Node::spawn_on(free_addr().port(), free_addr().port());
            if node.answers() {
                return node;
            }
        }
        panic!("redis-server did not start on five pairs of free ports");
    }

    /// Whether it answers PING (`true`) or exits (`false`) first; neither within WAIT panics.
    fn answers(&mut self) -> bool {
        let (port, child) = (self.port, &mut self.child);
        poll(WAIT, "redis-server to answer PING or exit", || {
            if let Some(Ok(Some(_))) = child.as_mut().map(Child::try_wait) {
                return Some(false);
            }
            (cli(port, &["PING"]).trim() == "PONG").then_some(true)
        })
    }

    fn spawn_on(port: u16, bus: u16) -> Node {
        let dir = TempDir::new();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-node-timeout", "1000"])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        Node {
            port,
            child: Some(child),
            _dir: dir,
        }
    }
}

impl Cluster {
    fn start() -> Option<Cluster> {
        if !redis_installed(&["redis-server", "redis-cli"]) {
            return None;
        }
        // Built node by node, so that a failure half-way still kills what started.
        let mut cluster = Cluster { nodes: Vec::new() };
        for _ in 0..6 {
            cluster.nodes.push(Node::spawn());
        }
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for n in &cluster.nodes {
            poll(WAIT, "cluster_state:ok on every node", || {
                cli(n.port, &["CLUSTER", "INFO"])
                    .contains("cluster_state:ok")
                    .then_some(())
            });
        }
        Some(cluster)
    }

    /// `--redis` options naming every node as a seed.
    fn seed_args(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| ["--redis".into(), format!("redis://127.0.0.1:{}", n.port)])
            .collect()
    }

    fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.child.is_some())
    }

    /// `CLUSTER NODES` as a live node sees it: (port, flags, master id or "-", slots, id).
    fn topology(&self) -> Vec<(u16, String, String, Vec<String>, String)> {
        let port = self.live().next().expect("a live node").port;
        cli(port, &["CLUSTER", "NODES"])
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let port = f.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                let slots = f.iter().skip(8).map(|s| s.to_string()).collect();
                Some((port, f[2].into(), f[3].into(), slots, f[0].into()))
            })
            .collect()
    }

    /// The port of the master serving `key`'s slot, as soon as the node asked knows one (after
    /// a failover, gossip may reach it after the promoted replica already answers).
    fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = self.keyslot(key).trim().parse().unwrap();
        poll(WAIT, &format!("a master serving slot {slot}"), || {
            self.topology()
                .into_iter()
                .find(|(_, flags, _, slots, _)| {
                    flags.contains("master") && !flags.contains("fail") && covers(slots, slot)
                })
                .map(|(port, ..)| port)
        })
    }

    /// The port of a replica of `master`, as soon as the node asked knows one (a replica that
    /// has just attached may not be in its gossip yet: CI once asked too early).
    fn replica_of(&self, master: u16) -> u16 {
        poll(
            WAIT,
            &format!("a replica of the master on {master}"),
            || {
                let nodes = self.topology();
                let id = &nodes.iter().find(|n| n.0 == master)?.4;
                nodes.iter().find(|n| &n.2 == id).map(|n| n.0)
            },
        )
    }

    /// Wait until `replica` has everything `master` wrote.
    fn wait_replicated(&self, master: u16, replica: u16) {
        let field = |port: u16, name: &str| -> Option<u64> {
            let info = cli(port, &["INFO", "replication"]);
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        };
        poll(WAIT, "the replica to catch up", || {
            let written = field(master, "master_repl_offset:")?;
            (written > 0 && field(replica, "slave_repl_offset:")? == written).then_some(())
        });
    }

    /// Every `rulegate:` key, with the port of the master holding it.
    fn keys(&self) -> Vec<(u16, String)> {
        let masters: Vec<u16> = self
            .topology()
            .into_iter()
            .filter(|n| n.1.contains("master") && !n.1.contains("fail"))
            .map(|n| n.0)
            .collect();
        let mut keys: Vec<(u16, String)> = masters
            .iter()
            .flat_map(|&p| {
                cli(p, &["KEYS", "rulegate:*"])
                    .lines()
                    .map(|k| (p, k.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys
    }

    fn keyslot(&self, key: &str) -> String {
        cli(
            self.live().next().unwrap().port,
            &["CLUSTER", "KEYSLOT", key],
        )
    }

    /// SIGKILL the node on `port`.
    fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ports: Vec<u16> = self.nodes.iter().map(|n| n.port).collect();
        for port in ports {
            self.kill(port);
        }
    }
}

/// Whether a `CLUSTER NODES` slot list (`0-5460`, `5461`, `[…]` migrations) holds `slot`.
fn covers(slots: &[String], slot: u16) -> bool {
    slots.iter().filter(|s| !s.starts_with('[')).any(|s| {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        (a.parse().unwrap_or(u16::MAX)..=b.parse().unwrap_or(0)).contains(&slot)
    })
}

/// `redis-cli -p PORT ARGS…`'s output (empty when the node does not answer).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn gateway(dir: &TempDir, redis: &[String], extra: &[&str]) -> Gateway {
    let mut args: Vec<&str> = redis.iter().map(String::as_str).collect();
    args.extend(extra);
    Gateway::start_with(dir.path(), &args)
}

// ---------------------------------------------------------------------------------------------
// Sharing: zero over-admission, one slot per request, nonces
// ---------------------------------------------------------------------------------------------

const WEATHER: &str = r#"
default dialect jdcloud
service weather {
    dialect jdcloud
    hosts "weather.test"
    route GET "/shared" {
        rate 20 per day burst 19
        mock 200 text "ok"
    }
}
"#;

const PARTNERS: &str = r#"
service partners {
    dialect tencent
    hosts "partners.test"
    auth keys keypair {
        algorithms hmac-sha1
    }
    app partner {
        key "ak-partner"
        secret file "partner.secret"
        quota 3 per day
    }
    route GET "/q" {
        auth keys
        rate 100 per day burst 99
        mock 200 text "ok"
    }
}
"#;

const PARTNER_SECRET: &str = "s3cret-partner";

fn sharing_policies() -> TempDir {
    let dir = TempDir::new();
    dir.write("weather.policy", WEATHER);
    dir.write("partners.policy", PARTNERS);
    dir.write("partner.secret", PARTNER_SECRET);
    dir
}

/// The issue's acceptance case: two gateways on one cluster, 8 concurrent clients, a route
/// rate of 20 per day (burst 19: all 20 at once, the next a day later): exactly 20 pass in
/// total, every other answer is JD's throttling row byte for byte. Then a batch of a route
/// rate and an app quota: both keys carry the `{partners}` hash tag and sit on the one master
/// serving that slot; and a signed request spent at one gateway is a replay at the other.
#[test]
fn two_gateways_share_a_cluster_with_one_slot_per_request_and_no_over_admission() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let seeds = cluster.seed_args();
    let dir = sharing_policies();
    let a = gateway(&dir, &seeds, &[]);
    let b = gateway(&dir, &seeds, &[]);

    let (answers, _) = hammer(&[&a, &b], 8, 120, || {
        request("GET", "/shared", "weather.test", &[], b"")
    });
    let passed: Vec<&Resp> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(passed.len(), 20, "admitted in total by the two gateways");
    let mut left: Vec<u64> = passed
        .iter()
        .map(|r| {
            assert_eq!(r.header("x-jdcloud-limit-day"), Some("20"));
            r.header("x-jdcloud-remaining-day")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    left.sort();
    assert_eq!(
        left,
        (0..20).collect::<Vec<u64>>(),
        "each unit admitted once"
    );
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_jd_throttled(
            r,
            "day",
            "20",
            r.header("retry-after").expect("Retry-After"),
        );
    }

    // A rate and a quota in one batch: one slot, one master.
    let get = |gw: &Gateway| {
        gw.send(&signed_get(
            "/q",
            "partners.test",
            "ak-partner",
            PARTNER_SECRET,
        ))
    };
    for (gw, rate_left, quota_left) in [(&a, "99/100", "2/3"), (&b, "98/100", "1/3")] {
        assert_mock(
            &get(gw),
            200,
            "X-Api-RequestId",
            "text/plain; charset=utf-8",
            &[
                ("X-Api-RateLimit", rate_left),
                ("X-UsagePlan-Quota", quota_left),
            ],
            "ok",
        );
    }
    let partners: Vec<(u16, String)> = cluster
        .keys()
        .into_iter()
        .filter(|(_, k)| k.starts_with("rulegate:{partners}:"))
        .collect();
    assert!(
        partners.iter().any(|(_, k)| k.contains(":rate|"))
            && partners.iter().any(|(_, k)| k.contains(":quota|")),
        "a rate key and a quota key: {partners:?}"
    );
    let master = cluster.master_of("{partners}");
    let slot = cluster.keyslot("{partners}");
    for (port, key) in &partners {
        assert_eq!(*port, master, "{key} is on the master of {{partners}}");
        assert_eq!(cluster.keyslot(key), slot, "{key}'s slot");
    }
    let weather = cluster.keys();
    let weather: Vec<&(u16, String)> = weather
        .iter()
        .filter(|(_, k)| k.starts_with("rulegate:{weather}:rate|"))
        .collect();
    assert_eq!(weather.len(), 1, "{weather:?}");

    // A nonce spent at one gateway is a replay at the other, and lives in its group's slot.
    let vector = JdVector::load();
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let (_d1, a) = vector.gateway(&seeds);
    let (_d2, b) = vector.gateway(&seeds);
    vector.spend_then_replay(&a, &b);
    let nonces: Vec<(u16, String)> = cluster
        .keys()
        .into_iter()
        .filter(|(_, k)| k.starts_with("rulegate:{users}:nonce|"))
        .collect();
    assert_eq!(nonces.len(), 1, "{nonces:?}");
    assert_eq!(nonces[0].0, cluster.master_of("{users}"));
}

// ---------------------------------------------------------------------------------------------
// A master killed mid-run
// ---------------------------------------------------------------------------------------------

const FAILOVER: &str = r#"
service weather {
    dialect jdcloud
    hosts "weather.test"
    route GET "/closed" {
        rate 100 per day burst 99 on store error deny
        mock 200 text "closed"
    }
    route GET "/open" {
        rate 100 per day burst 99 on store error allow
        mock 200 text "open"
    }
}
service orders {
    dialect jdcloud
    hosts "orders.test"
    route GET "/closed" {
        rate 100 per day burst 99 on store error deny
        mock 200 text "orders"
    }
}
"#;

/// The Redis timeout of these gateways, and the most an answer may take beyond it on a busy
/// two-core machine.
const TIMEOUT: Duration = Duration::from_millis(300);
const MARGIN: Duration = Duration::from_millis(700);

/// `on store error deny`: JD's rate row with `Retry-After: 1` and no limit headers.
fn refused_row(r: &Resp) {
    assert_jd_row(
        r,
        429,
        "RATE_LIMIT_EXCEEDED",
        "Your requests are too frequent",
        &[("retry-after", "1")],
    );
}

fn counted(r: &Resp, body: &str, left: &str) {
    expect_status(r, 200);
    assert_eq!(r.body_str(), body);
    assert_eq!(r.header("x-jdcloud-limit-day"), Some("100"));
    assert_eq!(r.header("x-jdcloud-remaining-day"), Some(left));
}

/// A request and how long its answer took, which must be within the Redis timeout (and a
/// margin): a dead master never makes a request hang.
fn timed(gw: &Gateway, host: &str, path: &str, slowest: &mut Duration) -> Resp {
    let t = Instant::now();
    let r = gw.get(host, path);
    let took = t.elapsed();
    assert!(took < TIMEOUT + MARGIN, "{path} took {took:?}");
    *slowest = (*slowest).max(took);
    r
}

/// The master holding `{weather}` is killed (SIGKILL). Until its replica takes over, every
/// `/closed` answer is JD's rate row with `Retry-After: 1` and every `/open` passes — each
/// within the timeout. `orders`, whose slot is on another master, is counted meanwhile, or
/// (while the client re-reads the slot map) gets the store-error row, never a hang. Then counting resumes on the same keys: the promoted replica kept the
/// count (98 left before, 97 after: nothing was charged while the master was down).
#[test]
fn a_master_killed_mid_run_keeps_the_store_error_promise_then_its_replica_counts_on() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let dir = TempDir::new();
    dir.write("weather.policy", FAILOVER);
    let gw = gateway(&dir, &cluster.seed_args(), &["--redis-timeout", "300ms"]);
    let mut slowest = Duration::ZERO;
    counted(
        &timed(&gw, "weather.test", "/closed", &mut slowest),
        "closed",
        "99",
    );
    counted(
        &timed(&gw, "weather.test", "/closed", &mut slowest),
        "closed",
        "98",
    );
    counted(
        &timed(&gw, "weather.test", "/open", &mut slowest),
        "open",
        "99",
    );
    // `orders` is counted on another master; while the cluster client re-reads the slot map
    // it holds every request (the `redis` crate recovers before it sends anything), so an
    // `orders` call may fail too — within the timeout, uncounted, with the store-error row.
    let (mut orders_left, mut orders_failed) = (99, 0);
    let mut orders = |slowest: &mut Duration| {
        let r = timed(&gw, "orders.test", "/closed", slowest);
        if r.status == 429 {
            refused_row(&r);
            orders_failed += 1;
            return;
        }
        counted(&r, "orders", &orders_left.to_string());
        orders_left -= 1;
    };
    orders(&mut slowest);

    let master = cluster.master_of("{weather}");
    assert_ne!(
        cluster.master_of("{orders}"),
        master,
        "groups on two masters"
    );
    let replica = cluster.replica_of(master);
    cluster.wait_replicated(master, replica);
    cluster.kill(master);
    let killed = Instant::now();

    let (mut refused, mut passed_open) = (0, 0);
    let resumed = poll(
        2 * WAIT,
        "counting to resume on the promoted replica",
        || {
            let r = timed(&gw, "weather.test", "/closed", &mut slowest);
            if r.status == 200 {
                return Some(r);
            }
            refused_row(&r);
            refused += 1;
            let r = timed(&gw, "weather.test", "/open", &mut slowest);
            expect_status(&r, 200);
            assert_eq!(r.body_str(), "open");
            passed_open += 1;
            orders(&mut slowest);
            None
        },
    );
    let recovered = killed.elapsed();
    counted(&resumed, "closed", "97");
    counted(
        &timed(&gw, "weather.test", "/closed", &mut slowest),
        "closed",
        "96",
    );
    assert!(refused > 0, "the master's death went unnoticed");
    assert_eq!(
        cluster.master_of("{weather}"),
        replica,
        "the replica took over"
    );
    orders(&mut slowest);
    eprintln!(
        "failover: {refused} refused and {passed_open} passed uncounted; counting again after \
         {recovered:?}; slowest answer {slowest:?} (timeout {TIMEOUT:?}); the other master's \
         group: {} counted, {orders_failed} store errors",
        99 - orders_left
    );
}

// ---------------------------------------------------------------------------------------------
// A careless operator
// ---------------------------------------------------------------------------------------------

/// A malformed cluster URL stops the gateway at start with a message naming it (exit 1, no
/// panic); seeds nobody listens on give each limit's `on store error` answer, in time.
#[test]
fn a_careless_operator_gets_a_clear_error_or_the_store_error_promise() {
    let dir = TempDir::new();
    dir.write("weather.policy", FAILOVER);
    for (url, says) in [
        (
            "redis+cluster://",
            "rulegate: --redis redis+cluster://: expected redis+cluster://HOST:PORT[,HOST:PORT…]",
        ),
        (
            "redis+cluster://127.0.0.1:7000,,127.0.0.1:7001",
            "expected redis+cluster://HOST:PORT[,HOST:PORT…]",
        ),
        (
            "redis+cluster://127.0.0.1:7000/2",
            "rulegate: --redis redis+cluster://127.0.0.1:7000/2: a Redis Cluster has only database 0",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rulegate"))
            .arg("serve")
            .arg(dir.path())
            .args(["--listen", &free_addr().to_string()])
            .args(["--redis", url])
            .output()
            .expect("run rulegate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {stderr}");
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(!stderr.contains("panicked"), "{url}: {stderr}");
    }

    let port = |url: String| url.rsplit(':').next().unwrap().to_string();
    let seeds = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
        port(closed_url()),
        port(closed_url())
    );
    let gw = gateway(
        &dir,
        &["--redis".into(), seeds],
        &["--redis-timeout", "300ms"],
    );
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        refused_row(&timed(&gw, "weather.test", "/closed", &mut slowest));
        let r = timed(&gw, "weather.test", "/open", &mut slowest);
        assert_mock(
            &r,
            200,
            "X-Jdcloud-Request-Id",
            "text/plain; charset=utf-8",
            &[],
            "open",
        );
    }
}
