//! Node groups for the allocation heatmap: zones (`topology.kubernetes.io/zone`), racks (a
//! label whose key names a rack) and GPU models, whichever the cluster has; and each group's
//! allocated share per time bucket, from the pods' placements.

use std::collections::{BTreeMap, HashMap};

use tessera_plugins::model::{GPU_MILLI, Node};
use tessera_plugins::resources::ResourceId;

use crate::sim::record::PodRecord;

/// The well-known zone label.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Rows of one kind beyond this are merged into one "others" row.
pub const MAX_ROWS_PER_KIND: usize = 8;

/// What groups nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The zone label.
    Zone,
    /// A rack label.
    Rack,
    /// The model of the node's GPUs.
    GpuModel,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Zone => "zone",
            Kind::Rack => "rack",
            Kind::GpuModel => "gpu",
        }
    }
}

/// Which resource a heatmap shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Milli-CPU.
    Cpu,
    /// Milli-GPU.
    Gpu,
}

/// What the heatmap needs of a node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeShape {
    /// The node's name.
    pub name: String,
    /// Allocatable milli-CPU.
    pub cpu: f64,
    /// Milli-GPU (1000 per GPU).
    pub gpu: f64,
    /// The groups it belongs to.
    pub groups: Vec<(Kind, String)>,
}

impl NodeShape {
    /// The shape of `node`.
    pub fn of(node: &Node) -> NodeShape {
        let mut groups = Vec::new();
        let label = |key: &str| node.labels.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v.to_string());
        if let Some(zone) = label(ZONE_LABEL) {
            groups.push((Kind::Zone, zone));
        }
        if let Some((_, rack)) = node.labels.iter().find(|(k, _)| is_rack_key(k.as_str())) {
            groups.push((Kind::Rack, rack.to_string()));
        }
        if let Some(gpu) = node.gpus.first() {
            groups.push((Kind::GpuModel, gpu.model.to_string()));
        }
        NodeShape {
            name: node.name.to_string(),
            cpu: node.allocatable.get(ResourceId::CPU) as f64,
            gpu: (node.gpus.len() as u64 * u64::from(GPU_MILLI)) as f64,
            groups,
        }
    }

    fn capacity(&self, resource: Resource) -> f64 {
        match resource {
            Resource::Cpu => self.cpu,
            Resource::Gpu => self.gpu,
        }
    }
}

/// A label key naming a rack: `rack`, `topology.kubernetes.io/rack`, `example.com/rack-id`.
fn is_rack_key(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.split(['-', '_', '.']).any(|part| part.eq_ignore_ascii_case("rack"))
}

/// One row: a group's capacity and what its pods held per time bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRow {
    /// Its kind.
    pub kind: Kind,
    /// The row label (`zone a`, `rack r1`, `gpu A100`, `rack: 3 others`).
    pub label: String,
    /// Capacity of the resource shown.
    pub capacity: f64,
    /// Request × time held in each bucket.
    pub used: Vec<f64>,
}

impl GroupRow {
    /// The allocated share per bucket, % of capacity, for buckets `width` long.
    pub fn shares(&self, width: f64) -> Vec<f64> {
        let denominator = self.capacity * width;
        self.used.iter().map(|u| if denominator > 0.0 { 100.0 * u / denominator } else { 0.0 }).collect()
    }
}

/// Adds `amount` held over `[start, end)` to the buckets of `used`, each `width` long.
pub fn add_interval(used: &mut [f64], start: f64, end: f64, amount: f64, width: f64) {
    if width.is_nan() || width <= 0.0 || end <= start || used.is_empty() {
        return;
    }
    let last = used.len() - 1;
    let first = ((start / width).floor().max(0.0) as usize).min(last);
    let final_bucket = ((end / width).floor().max(0.0) as usize).min(last);
    for (b, slot) in used.iter_mut().enumerate().take(final_bucket + 1).skip(first) {
        let lo = start.max(b as f64 * width);
        let hi = if b == last { end } else { end.min((b + 1) as f64 * width) };
        if hi > lo {
            *slot += amount * (hi - lo);
        }
    }
}

/// The rows of `resource`'s heatmap: each group's use over `buckets` buckets covering
/// `[0, horizon)`, groups with no capacity of the resource left out, each kind capped at
/// [`MAX_ROWS_PER_KIND`].
pub fn group_rows(
    nodes: &[NodeShape],
    records: &[PodRecord],
    resource: Resource,
    horizon: f64,
    buckets: usize,
) -> Vec<GroupRow> {
    let mut rows: BTreeMap<(Kind, String), GroupRow> = BTreeMap::new();
    let mut of_node: HashMap<&str, Vec<(Kind, String)>> = HashMap::new();
    for n in nodes.iter().filter(|n| n.capacity(resource) > 0.0) {
        for (kind, name) in &n.groups {
            let label = format!("{} {name}", kind.word());
            let row = rows.entry((*kind, name.clone())).or_insert_with(|| GroupRow {
                kind: *kind,
                label,
                capacity: 0.0,
                used: vec![0.0; buckets],
            });
            row.capacity += n.capacity(resource);
        }
        of_node.insert(n.name.as_str(), n.groups.clone());
    }
    let width = horizon / buckets.max(1) as f64;
    for r in records {
        let (Some(node), Some(start)) = (r.node, r.start) else { continue };
        let amount = match resource {
            Resource::Cpu => r.cpu_request,
            Resource::Gpu => r.gpu_request,
        };
        let Some(groups) = of_node.get(node.as_str()).filter(|_| amount > 0.0) else { continue };
        for g in groups {
            if let Some(row) = rows.get_mut(g) {
                add_interval(&mut row.used, start, r.end.unwrap_or(horizon), amount, width);
            }
        }
    }
    let mut out = Vec::new();
    for kind in [Kind::Zone, Kind::Rack, Kind::GpuModel] {
        let of_kind: Vec<GroupRow> = rows.values().filter(|r| r.kind == kind).cloned().collect();
        out.extend(cap_rows(of_kind, MAX_ROWS_PER_KIND));
    }
    out
}

/// At most `max` rows: the `max - 1` of largest capacity (ties by label), in their order,
/// then one row merging the rest.
pub fn cap_rows(rows: Vec<GroupRow>, max: usize) -> Vec<GroupRow> {
    if rows.len() <= max || max == 0 {
        return rows;
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| rows[b].capacity.total_cmp(&rows[a].capacity).then(rows[a].label.cmp(&rows[b].label)));
    let mut keep = vec![false; rows.len()];
    for &i in order.iter().take(max - 1) {
        keep[i] = true;
    }
    let merged = rows.len() - (max - 1);
    let mut kept = Vec::with_capacity(max);
    let mut others: Option<GroupRow> = None;
    for (row, keep) in rows.into_iter().zip(keep) {
        if keep {
            kept.push(row);
            continue;
        }
        let o = others.get_or_insert_with(|| GroupRow {
            kind: row.kind,
            label: format!("{}: {merged} others", row.kind.word()),
            capacity: 0.0,
            used: vec![0.0; row.used.len()],
        });
        o.capacity += row.capacity;
        for (a, b) in o.used.iter_mut().zip(&row.used) {
            *a += b;
        }
    }
    kept.extend(others);
    kept
}

#[cfg(test)]
pub(crate) mod tests {
    use tessera_plugins::intern::Sym;
    use tessera_plugins::labels::LabelSet;
    use tessera_plugins::model::{Gpu, Pod};
    use tessera_plugins::resources::ResourceVec;

    use super::*;

    /// A 4-CPU node with `labels` and `gpus` GPUs of `model`.
    pub(crate) fn node_with(name: &str, labels: &[(&str, &str)], gpus: usize, model: &str) -> Node {
        Node {
            name: Sym::new(name),
            labels: LabelSet::from_pairs(labels.iter().copied()),
            taints: vec![],
            unschedulable: false,
            allocatable: ResourceVec::cpu_mem(4000, 1 << 30),
            allowed_pods: 110,
            images: vec![],
            gpus: (0..gpus).map(|_| Gpu::new(Sym::new(model), 0)).collect(),
            devices: Default::default(),
        }
    }

    fn node(name: &str, labels: &[(&str, &str)], gpus: usize) -> Node {
        node_with(name, labels, gpus, "A100")
    }

    fn placed(node: &str, cpu: i64, start: f64, end: Option<f64>) -> PodRecord {
        let pod = Pod::new("default", "p", ResourceVec::cpu_mem(cpu, 0));
        let mut r = PodRecord::arrived(&pod, start);
        (r.node, r.start, r.end) = (Some(Sym::new(node)), Some(start), end);
        r
    }

    #[test]
    fn nodes_are_grouped_by_zone_rack_and_gpu_model() {
        let n = node("n", &[(ZONE_LABEL, "a"), ("topology.kubernetes.io/rack", "r1"), ("team", "x")], 2);
        let shape = NodeShape::of(&n);
        assert_eq!(
            shape.groups,
            vec![(Kind::Zone, "a".into()), (Kind::Rack, "r1".into()), (Kind::GpuModel, "A100".into())]
        );
        assert_eq!((shape.cpu, shape.gpu), (4000.0, 2000.0));
        assert!(NodeShape::of(&node("m", &[("tracker", "x")], 0)).groups.is_empty(), "no rack in `tracker`");
        assert!(is_rack_key("rack") && is_rack_key("example.com/rack-id") && !is_rack_key("backrack"));
    }

    #[test]
    fn intervals_are_spread_over_the_buckets_they_overlap() {
        let mut used = vec![0.0; 4];
        add_interval(&mut used, 5.0, 25.0, 2.0, 10.0);
        assert_eq!(used, vec![10.0, 20.0, 10.0, 0.0]);
        // Past the horizon lands in the last bucket; an empty interval adds nothing.
        add_interval(&mut used, 35.0, 45.0, 1.0, 10.0);
        add_interval(&mut used, 3.0, 3.0, 1.0, 10.0);
        assert_eq!(used, vec![10.0, 20.0, 10.0, 10.0]);
    }

    #[test]
    fn rows_show_each_groups_share_per_bucket() {
        let nodes =
            [NodeShape::of(&node("n1", &[(ZONE_LABEL, "a")], 0)), NodeShape::of(&node("n2", &[(ZONE_LABEL, "b")], 0))];
        // Half of n1's CPU for the first half of the run; all of n2's until the end.
        let records = [placed("n1", 2000, 0.0, Some(50.0)), placed("n2", 4000, 0.0, None)];
        let rows = group_rows(&nodes, &records, Resource::Cpu, 100.0, 2);
        assert_eq!(rows.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(), ["zone a", "zone b"]);
        assert_eq!(rows[0].shares(50.0), vec![50.0, 0.0]);
        assert_eq!(rows[1].shares(50.0), vec![100.0, 100.0]);
        assert!(group_rows(&nodes, &records, Resource::Gpu, 100.0, 2).is_empty(), "no GPU, no GPU rows");
    }

    #[test]
    fn rows_past_the_cap_merge_into_others() {
        let row = |label: &str, capacity: f64, used: f64| GroupRow {
            kind: Kind::Rack,
            label: label.into(),
            capacity,
            used: vec![used],
        };
        let rows =
            vec![row("rack a", 1.0, 1.0), row("rack b", 4.0, 1.0), row("rack c", 2.0, 1.0), row("rack d", 1.0, 0.0)];
        let capped = cap_rows(rows.clone(), 3);
        assert_eq!(capped.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(), ["rack b", "rack c", "rack: 2 others"]);
        assert_eq!((capped[2].capacity, capped[2].used[0]), (2.0, 1.0));
        assert_eq!(cap_rows(rows, 4).len(), 4);
    }
}
