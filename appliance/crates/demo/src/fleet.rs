//! `tungate demo --gateways N`: the fleet of issue 15 on one host. A `router` namespace runs
//! BIRD with ECMP (`merge paths`, hash policy 3 over the inner addresses and ports), N
//! gateway namespaces each run `tungate run --fleet demo` and their own BIRD announcing the
//! shared GIP while tungate is ready, the real server's replies of many flows (its
//! userspace encapsulator, as in the single demo) cross the router to all of them, and
//! each gateway forwards its share back through the router to the client:
//!
//! ```text
//!  client c0 10.99.1.2 ── r1 10.99.1.1 rs r0 10.99.0.2 ── rs0 10.99.0.1 router
//!  client c1 10.99.2.2 ── cl0 10.99.2.1 router gwI 10.1.I.1 ── eth0 10.1.I.2 gwI (GIP on lo)
//! ```
//!
//! Gateway 1's web UI is on `--listen` (as in the single demo), gateway I's on the next
//! ports. Every few seconds it prints what each gateway carried. The BIRD configurations
//! are the shipped `deploy/fleet/` files ([`crate::bird`]); the host's own namespace is
//! never changed, and the cleanup guard removes every namespace, daemon and file.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tungate_api::client::ApiClient;
use tungate_api::token::read_token_file;
use tungate_api::wire::Stats;

use super::bird::{self, BirdTools};
use super::cleanup::Cleanup;
use super::encap::{self, DemoTunnel, EncapCounters};
use super::netns::{self, ip_in};
use super::topology::{self, CLIENT_GW_SIDE, CLIENT_PREFIXES, RIP, RS_CLIENT_SIDE, VIP};
use super::traffic::{self, TrafficCounters};
use super::{DemoError, DemoOptions, detail, etcd, gateway, relay, servers, step_of};

/// The fleet's shared gateway address (held on every gateway's `lo`).
pub(crate) const FLEET_GIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The router's address towards the real server (the real server's next hop to GIP).
const ROUTER_RS_SIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The router's address towards the client.
const ROUTER_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 2, 1);
/// The fleet name the gateways run with (`--fleet`).
pub(crate) const FLEET_NAME: &str = "demo";
/// The admin listener inside each gateway's namespace (reached through a relay).
const INNER_ADMIN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9080);
/// How long the router may take to learn every gateway's route.
const ROUTES_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the per-gateway lines are printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Steps of the set-up.
const STEPS: u32 = 8;

/// The namespaces of one fleet demo (`tgdemo-<pid>-<role>`).
#[derive(Debug, Clone)]
struct FleetNames {
    router: String,
    rs: String,
    client: String,
    gateways: Vec<String>,
}

impl FleetNames {
    fn for_pid(pid: u32, gateways: usize) -> FleetNames {
        let name = |role: &str| format!("{}{pid}-{role}", topology::NAME_PREFIX);
        FleetNames {
            router: name("router"),
            rs: name("rs"),
            client: name("client"),
            gateways: (1..=gateways).map(|i| name(&format!("gw{i}"))).collect(),
        }
    }
}

/// The configuration file of every gateway: GIP, the packet I/O path on its link to the
/// router, one worker, the real server as its one peer.
fn gateway_toml() -> String {
    format!(
        "# Written by `tungate demo --gateways`.\n\
         [gateway]\naddress = \"{FLEET_GIP}\"\nio = \"packet\"\ningress_interface = \"eth0\"\n\
         workers = 1\n\n\
         [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\nvips = [\"{VIP}\"]\n"
    )
}

/// The host address of gateway `i`'s (1-based) web UI: `--listen`, then the next ports.
fn listen_address(listen: SocketAddr, i: usize) -> Result<SocketAddr, DemoError> {
    if listen.port() == 0 {
        return Ok(listen);
    }
    let port = u16::try_from(i - 1)
        .ok()
        .and_then(|offset| listen.port().checked_add(offset))
        .ok_or_else(|| {
            DemoError::Options(format!(
                "--listen {listen}: gateway {i}'s web UI needs the port {} + {}, above 65535",
                listen.port(),
                i - 1
            ))
        })?;
    Ok(SocketAddr::new(listen.ip(), port))
}

/// Builds the namespaces, links, addresses and routes of the fleet.
fn build(names: &FleetNames, cleanup: &mut Cleanup) -> Result<(), DemoError> {
    let all = [&names.router, &names.rs, &names.client]
        .into_iter()
        .chain(names.gateways.iter());
    for ns in all {
        netns::add(ns)?;
        cleanup.namespace(ns);
        for conf in ["default", "all"] {
            netns::sysctl_in(ns, &format!("net/ipv4/conf/{conf}/rp_filter"), "0")?;
        }
    }
    for (path, value) in bird::ROUTER_SYSCTLS {
        netns::sysctl_in(&names.router, path, value)?;
    }
    let (router, rs, client) = (&names.router, &names.rs, &names.client);
    topology::veth(router, "rs0", rs, "r0")?;
    topology::veth(rs, "r1", client, "c0")?;
    topology::veth(router, "cl0", client, "c1")?;
    topology::address(router, format!("{ROUTER_RS_SIDE}/24"), "rs0")?;
    topology::address(rs, format!("{RIP}/24"), "r0")?;
    topology::address(rs, format!("{RS_CLIENT_SIDE}/24"), "r1")?;
    topology::address(rs, format!("{VIP}/32"), "lo")?;
    topology::address(client, "10.99.1.2/24".into(), "c0")?;
    topology::address(router, format!("{ROUTER_CLIENT_SIDE}/24"), "cl0")?;
    topology::address(client, format!("{CLIENT_GW_SIDE}/24"), "c1")?;
    // The tunnelled replies go to GIP through the router.
    ip_in(
        rs,
        &[
            "route",
            "add",
            "default",
            "via",
            &ROUTER_RS_SIDE.to_string(),
        ],
    )?;
    for (prefix, clients) in CLIENT_PREFIXES {
        for c in clients {
            topology::address(client, format!("{c}/32"), "lo")?;
        }
        // The gateways' forwarded replies reach the client through the router.
        ip_in(
            router,
            &["route", "add", prefix, "via", &CLIENT_GW_SIDE.to_string()],
        )?;
    }
    // Requests go straight to the real server (the demo stands in for LD-IN).
    ip_in(
        client,
        &[
            "route",
            "add",
            &format!("{VIP}/32"),
            "via",
            &RS_CLIENT_SIDE.to_string(),
        ],
    )?;
    for (i, gw) in names.gateways.iter().enumerate() {
        let (router_side, own) = bird::gateway_link(i + 1);
        topology::veth(router, &format!("gw{}", i + 1), gw, "eth0")?;
        topology::address(router, format!("{router_side}/24"), &format!("gw{}", i + 1))?;
        topology::address(gw, format!("{own}/24"), "eth0")?;
        ip_in(
            gw,
            &["route", "add", "default", "via", &router_side.to_string()],
        )?;
    }
    Ok(())
}

/// The router's next hops for GIP, from `ip -j route` in its namespace.
fn next_hops(router: &str) -> Vec<Ipv4Addr> {
    let Ok(out) = std::process::Command::new("ip")
        .args([
            "-n",
            router,
            "-j",
            "route",
            "show",
            &format!("{FLEET_GIP}/32"),
        ])
        .output()
    else {
        return Vec::new();
    };
    parse_next_hops(&String::from_utf8_lossy(&out.stdout))
}

/// The next hops in `ip -j route show` output (one `gateway`, or `nexthops`).
fn parse_next_hops(json: &str) -> Vec<Ipv4Addr> {
    let Ok(routes) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut hops = Vec::new();
    for route in routes.as_array().into_iter().flatten() {
        let single = route.get("gateway").into_iter();
        let multi = route["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.get("gateway"));
        hops.extend(
            single
                .chain(multi)
                .filter_map(|g| g.as_str()?.parse::<Ipv4Addr>().ok()),
        );
    }
    hops.sort();
    hops
}

/// One gateway of the running fleet, as the demo talks to it.
struct Member {
    /// `gw1` ...
    name: String,
    /// Its address on its link (the router's next hop to it).
    next_hop: Ipv4Addr,
    /// Its web UI and API on the host.
    url: String,
    /// Its admin token file.
    token_file: PathBuf,
    token: String,
    api: ApiClient,
    /// Whether its process has exited (reported once).
    stopped: bool,
}

/// Runs the fleet demo until Ctrl-C, SIGTERM or `--duration`.
pub(crate) async fn demo(
    options: &DemoOptions,
    cleanup: &mut Cleanup,
    stop: Arc<AtomicBool>,
) -> Result<(), DemoError> {
    let n = options.gateways;
    if !(2..=bird::MAX_GATEWAYS).contains(&n) {
        return Err(DemoError::Options(format!(
            "--gateways {n}: give 1 to {}",
            bird::MAX_GATEWAYS
        )));
    }
    if options.tunnel != DemoTunnel::Ipip {
        return Err(DemoError::Options(
            "--gateways with --tunnel gue is not supported: the demo's router spreads flows \
             by the inner headers of IPIP (hash policy 3); use --tunnel ipip"
                .into(),
        ));
    }
    // Everything that can be checked before touching the kernel is checked first.
    let tools = BirdTools::find()?;
    let etcd_program = etcd::find();
    let plugins = gateway::find_plugins(&super::plugin_dirs(options))?;
    let mut listeners = Vec::new();
    for i in 1..=n {
        let address = listen_address(options.listen, i)?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| DemoError::Listen { address, source })?;
        listeners.push((address, listener));
    }
    let pid = std::process::id();
    let names = FleetNames::for_pid(pid, n);
    let mut stale = topology::remove_stale()?;
    stale.extend(super::remove_stale_work_dirs());
    out!(
        "tungate demo: a fleet of {n} gateways behind a BIRD router with ECMP, a real server \
         and a client, in {} network namespaces",
        n + 3
    );
    if !stale.is_empty() {
        detail(&format!(
            "removed leftovers of a killed demo: {}",
            stale.join(", ")
        ));
    }
    let work = super::work_dir(pid);
    let _ = std::fs::remove_dir_all(&work);
    let io = |what: &'static str| move |source| DemoError::Io { what, source };
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&work)
        .map_err(io("creating the demo's temporary directory"))?;
    cleanup.temp_dir(work.clone());

    step_of(1, STEPS, "namespaces and veth links");
    build(&names, cleanup)?;
    detail(&format!(
        "{} (ECMP: fib_multipath_hash_policy 3 over the inner addresses and ports), {} (real \
         server {RIP}, VIP {VIP}), {} (clients {}), {}",
        names.router,
        names.rs,
        names.client,
        CLIENT_PREFIXES.map(|(p, _)| p).join(" and "),
        names.gateways.join(", ")
    ));

    step_of(2, STEPS, "reply tunnel on the real server");
    let encap_counters = Arc::new(EncapCounters::default());
    let (tun_ready, tun_made) = std::sync::mpsc::channel();
    let (counters, flag) = (encap_counters.clone(), stop.clone());
    let handle = netns::spawn_in(&names.rs, "tgdemo-encap", move || {
        let tun = match encap::open_tun(topology::TUN_NAME) {
            Ok(t) => t,
            Err(e) => {
                let _ = tun_ready.send(Err(e.to_string()));
                return Err(e);
            }
        };
        let _ = tun_ready.send(Ok(()));
        encap::run(tun, DemoTunnel::Ipip, RIP, FLEET_GIP, &flag, &counters)
    })?;
    cleanup.thread("the encapsulator", handle);
    match tun_made.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(DemoError::Gateway(e)),
        Err(_) => return Err(DemoError::Panicked("the encapsulator")),
    }
    topology::route_replies_into_tun(&names.rs)?;
    detail(&format!(
        "replies from {VIP} -> TUN {} -> IPIP {RIP} -> {FLEET_GIP} via the router",
        topology::TUN_NAME
    ));

    step_of(3, STEPS, "real server applications on the VIP");
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    let handle = netns::spawn_in(&names.rs, "tgdemo-servers", move || {
        servers::run(flag, bound_tx)
    })?;
    cleanup.thread("the real server's applications", handle);
    if bound_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        return Err(DemoError::Gateway(
            "the real server's applications did not start".into(),
        ));
    }

    step_of(4, STEPS, "BIRD on the router and on every gateway");
    let router_dir = work.join("router");
    std::fs::create_dir(&router_dir).map_err(io("creating the router's directory"))?;
    let etcd_url = match &etcd_program {
        Some(program) => {
            let child = etcd::start(program, &names.router, ROUTER_RS_SIDE, &router_dir)?;
            cleanup.daemon("etcd on the router", child);
            let url = etcd::url(ROUTER_RS_SIDE);
            detail(&format!(
                "etcd (one member) in {} at {url}: the fleet's configuration and plugins",
                names.router
            ));
            Some(url)
        }
        None => {
            detail(
                "no etcd-server installed (apt-get install etcd-server): each gateway keeps \
                 its own configuration",
            );
            None
        }
    };
    let router_config = bird::router_config(ROUTER_RS_SIDE, FLEET_GIP, n);
    let (child, router_socket) = tools.start(&names.router, &router_dir, "bird", &router_config)?;
    cleanup.daemon("BIRD on the router", child);
    let mut dirs = Vec::new();
    for (i, gw) in names.gateways.iter().enumerate() {
        let dir = work.join(format!("gw{}", i + 1));
        std::fs::create_dir(&dir).map_err(io("creating a gateway's directory"))?;
        let config = bird::gateway_config(i + 1, FLEET_GIP);
        let (child, _) = tools.start(gw, &dir, "bird", &config)?;
        cleanup.daemon(&format!("BIRD on gw{}", i + 1), child);
        dirs.push(dir);
    }
    detail(&format!(
        "router AS {} <-> gateways AS {}, one BGP session each; a gateway announces \
         {FLEET_GIP}/32 while its tungate is ready",
        bird::ROUTER_AS,
        bird::FLEET_AS
    ));

    step_of(
        5,
        STEPS,
        &format!("gateways: tungate run --fleet {FLEET_NAME} in each"),
    );
    let mut members = Vec::new();
    for ((i, gw), ((address, listener), dir)) in names
        .gateways
        .iter()
        .enumerate()
        .zip(listeners.into_iter().zip(&dirs))
    {
        let name = format!("gw{}", i + 1);
        let mut flags = vec!["--fleet", FLEET_NAME, "--fleet-member", &name];
        if let Some(url) = &etcd_url {
            flags.extend(["--etcd", url.as_str()]);
        }
        let child = cleanup.named_gateway(
            &format!("tungate on {name}"),
            gateway::spawn(gw, dir, INNER_ADMIN, &gateway_toml(), &flags)?,
        );
        let url = format!("http://{}", listener.local_addr().unwrap_or(address));
        tokio::spawn(relay::serve(listener, gw.clone(), INNER_ADMIN));
        gateway::wait_ready(&ApiClient::new(&url, None)?, child, dir).await?;
        let token_file = dir.join("state/admin-token");
        let token = read_token_file(&token_file)?;
        let api = ApiClient::new(&url, Some(token.clone()))?;
        detail(&format!("{name} ready: {url}"));
        members.push(Member {
            name,
            next_hop: bird::gateway_link(i + 1).1,
            url,
            token_file,
            token,
            api,
            stopped: false,
        });
    }
    let started = Instant::now();
    loop {
        let hops = next_hops(&names.router);
        if hops.len() == n {
            detail(&format!(
                "the router has {n} next hops for {FLEET_GIP}: {}",
                hops.iter()
                    .map(Ipv4Addr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            break;
        }
        if started.elapsed() > ROUTES_TIMEOUT {
            return Err(DemoError::Gateway(format!(
                "the router learnt {} of {n} routes to {FLEET_GIP} within {ROUTES_TIMEOUT:?}; \
                 BIRD says: {}",
                hops.len(),
                tools
                    .birdc(&router_socket, &["show", "protocols"])
                    .lines()
                    .collect::<Vec<_>>()
                    .join(" / ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    step_of(6, STEPS, "plugins, through the admin API");
    // With etcd, through gateway 1 only: etcd brings them to the others.
    let through = if etcd_url.is_some() {
        &members[..1]
    } else {
        &members[..]
    };
    for m in through {
        for (name, file) in &plugins {
            gateway::upload(&m.api, name, file).await?;
        }
        gateway::bind_accounting(&m.api).await?;
    }
    if etcd_url.is_some() {
        wait_bound_everywhere(&members).await?;
    }
    detail(&format!(
        "{} {} and bound accounting to {VIP} (each gateway counts only the replies it \
         carries: plugin state is per gateway)",
        if etcd_url.is_some() {
            "uploaded through gw1, in force on every gateway through etcd:"
        } else {
            "uploaded to every gateway:"
        },
        plugins
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    ));

    step_of(7, STEPS, "clients");
    let traffic_counters = Arc::new(TrafficCounters::default());
    let (counters, flag, rate) = (traffic_counters.clone(), stop.clone(), options.rate);
    let handle = netns::spawn_in(&names.client, "tgdemo-clients", move || {
        traffic::run(rate, counters, flag)
    })?;
    cleanup.thread("the clients", handle);
    detail(&format!(
        "{} requests/s in all, HTTP and UDP echo in turn, each from its own port: many flows",
        options.rate
    ));

    step_of(8, STEPS, "running");
    print_welcome(&members, &names, &router_socket, &tools);
    watch(
        options,
        cleanup,
        &mut members,
        &names.router,
        &traffic_counters,
        &encap_counters,
    )
    .await
}

/// Waits until every gateway has `accounting` bound to the VIP (a change made through
/// gateway 1, reaching the others through etcd).
async fn wait_bound_everywhere(members: &[Member]) -> Result<(), DemoError> {
    let started = Instant::now();
    for m in members {
        loop {
            if let Ok(stats) = m.api.get_json::<Stats>("/api/v1/stats").await
                && stats
                    .bindings
                    .iter()
                    .any(|b| b.vip == VIP.to_string() && b.plugin == "accounting")
            {
                break;
            }
            if started.elapsed() > ROUTES_TIMEOUT {
                return Err(DemoError::Gateway(format!(
                    "{} did not apply the fleet's plugins from etcd within {ROUTES_TIMEOUT:?}",
                    m.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

fn print_welcome(members: &[Member], names: &FleetNames, router_socket: &Path, tools: &BirdTools) {
    let first = &members[0];
    out!("");
    out!(
        "  web UI   {}/   gateway 1 (sign in with its token)",
        first.url
    );
    out!("  token    {}", first.token);
    for m in &members[1..] {
        out!("  {}      {}/   token {}", m.name, m.url, m.token);
    }
    out!(
        "  status   tungate status --url {} --token-file {}",
        first.url,
        first.token_file.display()
    );
    out!("  routes   ip -n {} route show {FLEET_GIP}", names.router);
    out!(
        "  BGP      {} -s {} show protocols",
        tools.birdc.display(),
        router_socket.display()
    );
    if let Some(m) = members.get(1) {
        out!(
            "  Try it: tungate drain --url {} --token-file {}",
            m.url,
            m.token_file.display()
        );
        out!(
            "  — {}'s route leaves the router, the others carry its flows.",
            m.name
        );
    }
    out!("");
    out!("  Ctrl-C stops the demo and removes everything it made.");
    out!("");
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// What one gateway carried since the last line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Carried {
    forwarded: u64,
    dropped: u64,
}

/// `      gw2 10.1.2.2  forwarded +310 dropped +0  routed`: one gateway's line (counts
/// since the previous line; whether the router has its next hop).
fn gateway_line(
    name: &str,
    next_hop: Ipv4Addr,
    now: Result<Carried, &str>,
    last: Carried,
    routed: bool,
) -> String {
    let route = if routed { "routed" } else { "not routed" };
    match now {
        Ok(now) => format!(
            "      {name} {next_hop}  forwarded +{} dropped +{}  {route}",
            now.forwarded.saturating_sub(last.forwarded),
            now.dropped.saturating_sub(last.dropped)
        ),
        Err(e) => format!("      {name} {next_hop}  stats unavailable: {e}  {route}"),
    }
}

async fn carried(api: &ApiClient) -> Result<Carried, String> {
    let stats = api
        .get_json::<Stats>("/api/v1/stats")
        .await
        .map_err(|e| e.to_string())?;
    Ok(stats
        .vips
        .iter()
        .filter(|v| v.address == VIP.to_string())
        .fold(Carried::default(), |c, v| Carried {
            forwarded: c.forwarded + v.forwarded_packets,
            dropped: c.dropped + v.dropped.values().sum::<u64>(),
        }))
}

/// Prints, every [`PROGRESS_EVERY`], the clients' answers and one line per gateway, until a
/// signal or `--duration`. A gateway that stops (drained, killed) is reported and the rest
/// of the fleet goes on; a part of the demo itself dying ends it.
async fn watch(
    options: &DemoOptions,
    cleanup: &mut Cleanup,
    members: &mut [Member],
    router: &str,
    traffic: &TrafficCounters,
    encap: &EncapCounters,
) -> Result<(), DemoError> {
    use tokio::signal::unix::{SignalKind, signal};
    let signal_error = |source| DemoError::Socket {
        what: "installing the signal handlers",
        source,
    };
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let mut last_gateways = vec![Carried::default(); members.len()];
    let mut last_answers = (
        vec![0u64; CLIENT_PREFIXES.len()],
        vec![0u64; CLIENT_PREFIXES.len()],
    );
    let mut last_tunnelled = 0u64;
    loop {
        let until_deadline = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            _ = interrupt.recv() => { out!("\nCtrl-C"); return Ok(()); }
            _ = terminate.recv() => { out!("\nSIGTERM"); return Ok(()); }
            _ = tokio::time::sleep(until_deadline) => {
                out!("--duration reached");
                return Ok(());
            }
            _ = tick.tick() => {}
        }
        while let Some((name, status)) = cleanup.gateway_exited() {
            out!("{name} exited ({status}): the others carry its flows");
            if let Some(m) = members.iter_mut().find(|m| name.ends_with(&m.name)) {
                m.stopped = true;
            }
        }
        if let Some((name, status)) = cleanup.daemon_exited() {
            return Err(DemoError::Gateway(format!(
                "{name} exited unexpectedly ({status})"
            )));
        }
        if let Some(name) = cleanup.ended_thread() {
            return Err(DemoError::Gateway(format!("{name} stopped unexpectedly")));
        }
        let mut line = format!("[+{}s] answered", started.elapsed().as_secs());
        for (i, (prefix, _)) in CLIENT_PREFIXES.iter().enumerate() {
            let answered = traffic.prefixes[i].answered.load(Ordering::Relaxed);
            let lost = traffic.prefixes[i].lost.load(Ordering::Relaxed);
            let (a, l) = (
                answered.saturating_sub(last_answers.0[i]),
                lost.saturating_sub(last_answers.1[i]),
            );
            line.push_str(&format!(" {prefix} {a}/{}", a + l));
            last_answers.0[i] = answered;
            last_answers.1[i] = lost;
        }
        let tunnelled = encap.sent.load(Ordering::Relaxed);
        line.push_str(&format!(
            " | tunnelled +{}",
            tunnelled.saturating_sub(last_tunnelled)
        ));
        last_tunnelled = tunnelled;
        out!("{line}");
        let hops = next_hops(router);
        for (m, last) in members.iter().zip(last_gateways.iter_mut()) {
            let routed = hops.contains(&m.next_hop);
            if m.stopped {
                out!(
                    "      {} {}  stopped  {}",
                    m.name,
                    m.next_hop,
                    if routed { "routed" } else { "not routed" }
                );
                continue;
            }
            let now = carried(&m.api).await;
            out!(
                "{}",
                gateway_line(
                    &m.name,
                    m.next_hop,
                    now.as_ref().copied().map_err(String::as_str),
                    *last,
                    routed
                )
            );
            if let Ok(now) = now {
                *last = now;
            }
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_are_read_from_a_single_or_a_multipath_route() {
        let multi = r#"[{"dst":"10.200.0.1","protocol":"bird","metric":32,"flags":[],
            "nexthops":[{"gateway":"10.1.2.2","dev":"gw2","weight":1,"flags":[]},
                        {"gateway":"10.1.1.2","dev":"gw1","weight":1,"flags":[]}]}]"#;
        assert_eq!(
            parse_next_hops(multi),
            vec![Ipv4Addr::new(10, 1, 1, 2), Ipv4Addr::new(10, 1, 2, 2)]
        );
        let single = r#"[{"dst":"10.200.0.1","gateway":"10.1.3.2","dev":"gw3","flags":[]}]"#;
        assert_eq!(parse_next_hops(single), vec![Ipv4Addr::new(10, 1, 3, 2)]);
        assert!(parse_next_hops("[]").is_empty());
        assert!(parse_next_hops("").is_empty());
        assert!(parse_next_hops("not json").is_empty());
    }

    #[test]
    fn gateway_i_listens_on_the_next_ports_and_overflow_is_refused() {
        let listen: SocketAddr = "127.0.0.1:9180".parse().unwrap();
        assert_eq!(listen_address(listen, 1).unwrap(), listen);
        assert_eq!(
            listen_address(listen, 3).unwrap(),
            "127.0.0.1:9182".parse().unwrap()
        );
        let top: SocketAddr = "127.0.0.1:65535".parse().unwrap();
        assert!(listen_address(top, 1).is_ok());
        let e = listen_address(top, 2).unwrap_err().to_string();
        assert!(e.contains("above 65535"), "{e}");
    }

    #[test]
    fn a_gateway_line_shows_what_it_carried_since_the_last() {
        let hop = Ipv4Addr::new(10, 1, 2, 2);
        let last = Carried {
            forwarded: 100,
            dropped: 1,
        };
        let now = Carried {
            forwarded: 410,
            dropped: 1,
        };
        assert_eq!(
            gateway_line("gw2", hop, Ok(now), last, true),
            "      gw2 10.1.2.2  forwarded +310 dropped +0  routed"
        );
        assert_eq!(
            gateway_line("gw2", hop, Err("refused"), last, false),
            "      gw2 10.1.2.2  stats unavailable: refused  not routed"
        );
    }

    #[test]
    fn the_gateways_configuration_is_a_fleet_members() {
        let text = gateway_toml();
        let doc = tungate_config::parse_toml(&text).expect("it parses");
        tungate_config::validate(&doc).expect("it validates");
        assert!(text.contains("ingress_interface = \"eth0\""), "{text}");
        assert!(
            text.contains(&format!("address = \"{FLEET_GIP}\"")),
            "{text}"
        );
    }
}
