//! `gateway.worker_cpus` with the real `tungate run` in a namespace (needs root and 2 CPUs):
//! the worker runs on its CPU alone and every other thread of the process (API, plugin epoch
//! ticker, resolver, …) off it, read back from `/proc/PID/task/TID/status`, and the gateway
//! forwards; a CPU the process may not run on is refused at start with a message that names
//! the ones it may (exit status 2, as any setting that does not fit the host), leaving no
//! fence or XDP program behind; through the API the placement follows a change (and its
//! removal), and such a CPU is refused as invalid for this host.

use serde_json::json;
use tungate_test_support::http::Api;
use tungate_test_support::process::{run_once_through, threads_of};
use tungate_test_support::topology::IoPath;
use tungate_test_support::{Topology, Tungate};

/// A `0-2,5`-style CPU list as a list of CPU numbers.
fn parse_cpu_list(list: &str) -> Vec<u32> {
    list.trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<u32>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

/// The `Cpus_allowed_list` of a `/proc/…/status` file.
fn allowed(path: &str) -> Vec<u32> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {path}"));
    parse_cpu_list(line)
}

/// Every thread of `pid`: (name, the CPUs it may run on).
fn threads(pid: u32) -> Vec<(String, Vec<u32>)> {
    threads_of(pid)
        .into_iter()
        .map(|(name, task)| {
            let cpus = allowed(&task.join("status").to_string_lossy());
            (name, cpus)
        })
        .collect()
}

/// The last CPU this test may run on, if it may run on more than one.
fn a_cpu_to_give_away() -> Option<u32> {
    let mine = allowed("/proc/thread-self/status");
    if mine.len() < 2 {
        eprintln!("skipped: needs 2 CPUs, this test may run on {mine:?}");
        return None;
    }
    mine.last().copied()
}

fn the_worker_has_its_cpu_to_itself(io: IoPath) {
    let Some(cpu) = a_cpu_to_give_away() else {
        return;
    };
    let t = Topology::on(io);
    let tg = Tungate::start(
        &t.gw,
        &t.config(&format!("workers = 1\nworker_cpus = [{cpu}]")),
    );
    let all = threads(tg.pid());
    let (workers, others): (Vec<_>, Vec<_>) =
        all.iter().partition(|t| t.0.starts_with("tg-worker-"));
    assert_eq!(workers.len(), 1, "{all:?}");
    assert_eq!(workers[0].1, vec![cpu], "{all:?}");
    assert!(others.iter().any(|t| t.0 == "tg-wasm-epoch"), "{all:?}");
    for other in &others {
        assert!(!other.1.is_empty() && !other.1.contains(&cpu), "{all:?}");
    }
    // And it forwards.
    assert_eq!(t.replies_reaching_the_client(20), 20);
    // Threads started later (the API's, on a request) stay off it too.
    let api = Api::new(&t.gw, "127.0.0.1:9080", Some(tg.token()));
    assert_eq!(api.get("/api/v1/status").status, 200);
    for other in threads(tg.pid())
        .iter()
        .filter(|t| !t.0.starts_with("tg-worker-"))
    {
        assert!(!other.1.contains(&cpu), "{other:?}");
    }
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
}

crate::on_both_io_paths!(the_worker_has_its_cpu_to_itself);

#[test]
fn through_the_api_the_placement_follows_the_config_and_a_foreign_cpu_is_refused() {
    let Some(cpu) = a_cpu_to_give_away() else {
        return;
    };
    let t = Topology::new();
    let tg = Tungate::start(&t.gw, &t.config("workers = 1"));
    let api = Api::new(&t.gw, "127.0.0.1:9080", Some(tg.token()));
    let on_cpu = |pid: u32| -> Vec<String> {
        threads(pid)
            .into_iter()
            .filter(|t| t.1.contains(&cpu))
            .map(|t| t.0)
            .collect()
    };
    assert!(
        on_cpu(tg.pid()).len() > 1,
        "unplaced, every thread may use every CPU"
    );
    let mut config = api.get("/api/v1/config").json();
    config["gateway"]["worker_cpus"] = json!([cpu]);
    let r = api.put_json("/api/v1/config", &config);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(on_cpu(tg.pid()), vec!["tg-worker-0".to_owned()]);
    let mut foreign = config.clone();
    foreign["gateway"]["worker_cpus"] = json!([1023]);
    let r = api.put_json("/api/v1/config", &foreign);
    assert_eq!(r.status, 422, "{}", r.text());
    let error = r.json();
    assert_eq!(error["error"]["details"][0]["field"], "gateway.worker_cpus");
    assert!(
        error["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("CPU 1023 is not one this process may run on"),
        "{error}"
    );
    assert_eq!(
        on_cpu(tg.pid()),
        vec!["tg-worker-0".to_owned()],
        "unchanged"
    );
    config["gateway"]
        .as_object_mut()
        .unwrap()
        .remove("worker_cpus");
    let r = api.put_json("/api/v1/config", &config);
    assert_eq!(r.status, 200, "{}", r.text());
    let all = threads(tg.pid());
    assert!(
        all.iter().all(|t| t.1.contains(&cpu)),
        "every thread may use every CPU again: {all:?}"
    );
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
}

#[test]
fn a_cpu_it_may_not_run_on_is_refused_at_start_naming_the_ones_it_may() {
    let Some(cpu) = a_cpu_to_give_away() else {
        return;
    };
    let other = allowed("/proc/thread-self/status")[0];
    let t = Topology::new();
    // The process may run on one other CPU only.
    let out = run_once_through(
        &t.gw,
        &["taskset", "-c", &other.to_string()],
        &t.config(&format!("worker_cpus = [{cpu}]")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit status 2: the configuration does not fit this host (checked before anything
    // is set up).
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the configuration file does not fit this host:\ngateway.worker_cpus: CPU {cpu} is \
             not one this process may run on (it may run on {other})"
        )),
        "{stderr}"
    );
    t.assert_gateway_left_nothing();
}
