//! The compute devices this host offers to trials.

use albedo_shared::protocol::Device;

/// The CPU (always present), named from `/proc/cpuinfo` where available.
pub fn detect() -> Vec<Device> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    vec![Device {
        kind: "cpu".into(),
        name: format!("{model} ({threads} threads)"),
    }]
}

#[cfg(test)]
mod tests {
    #[test]
    fn always_offers_a_cpu() {
        let d = super::detect();
        assert_eq!(d[0].kind, "cpu");
        assert!(!d[0].name.is_empty());
    }
}
