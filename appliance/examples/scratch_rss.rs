#[path = "../tests/support/plugin_wasm.rs"]
#[allow(dead_code)]
mod plugin_wasm;
use tungate::plugin_host::{Limits, PluginHost};
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}
fn main() {
    let host = PluginHost::new(Limits {
        max_instances: 1024,
        ..Limits::default()
    })
    .unwrap();
    println!("engine: {} KiB", rss());
    for (name, cfg) in [
        ("cidr-filter", r#"{ allow = ["198.51.100.0/24"] }"#),
        (
            "port-filter",
            r#"{ allow = [{ protocol = "udp", ports = [443] }] }"#,
        ),
        ("rate-limit", r#"{ unit = "packets", rate = 10000000000 }"#),
        (
            "accounting",
            r#"{ prefixes = ["198.51.100.0/24", "0.0.0.0/0"] }"#,
        ),
    ] {
        let mut text = String::from("[gateway]\naddress = \"10.0.1.1\"\nworkers = 1\n");
        for i in 0..100 {
            text += &format!(
                "[[vips]]\naddress = \"192.0.2.{}\"\nplugins = [{{ plugin = \"{name}\", config = {cfg} }}]\n",
                10 + i
            );
        }
        let doc = tungate::config::parse_toml(&text).unwrap();
        let before = rss();
        let g = host.build(&doc, &plugin_wasm::example_module, 1).unwrap();
        let after = rss();
        println!(
            "{name}: 100 instances: +{} KiB ({} KiB each)",
            after - before,
            (after - before) / 100
        );
        std::mem::forget(g);
    }
}
