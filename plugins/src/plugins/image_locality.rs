//! ImageLocality: prefer nodes that already hold the pod's container images, weighted by image
//! size and damped by how widely each image has spread.
//!
//! A node's raw sum is, over the pod's containers (init containers included) whose image the
//! node holds, `size * nodes_with_image / total_nodes`: an image that is everywhere gives no
//! node an edge, which keeps pods of one workload from piling onto the first nodes that pulled
//! it. The sum is clamped to [23 MiB, 1000 MiB × containers] and scaled to 0..=100.
//!
//! How many nodes hold each image is a whole-cluster count, which the snapshot keeps per image
//! name, so PreScore costs O(images of the pod); Score then only looks the pod's images up in
//! one node's list.

use std::sync::Arc;

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, PreScorePlugin, ScorePlugin};
use crate::model::Pod;
use crate::nodeinfo::NodeInfo;
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "ImageLocality";

const MB: i64 = 1024 * 1024;
/// Below this, an image sum scores 0 (upstream `minThreshold`).
pub const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container, above this an image sum scores 100 (upstream `maxContainerThreshold`).
pub const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

const PRE_SCORE_KEY: &str = "PreScoreImageLocality";

/// What Score needs, computed once per pod.
#[derive(Clone, Debug)]
struct PreScoreState {
    /// One entry per container: the normalised image name and how many nodes hold it.
    images: Vec<(Arc<str>, usize)>,
    /// Nodes in the snapshot.
    total_nodes: usize,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct ImageLocality;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(ImageLocality))
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// Upstream's `normalizedImageName`: an image with neither tag nor digest means `:latest`.
/// A `:` before the last `/` is a registry port, not a tag.
pub fn normalized_image_name(name: &str) -> String {
    match (name.rfind(':'), name.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => name.to_string(),
        (Some(_), None) => name.to_string(),
        _ => format!("{name}:latest"),
    }
}

impl PreScorePlugin for ImageLocality {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot, _: &[&NodeInfo]) -> Status {
        // With no image on any node every score is 0, which is what skipping gives.
        if pod.images.is_empty() || !snapshot.has_images() {
            return Status::skip();
        }
        let images: Vec<(Arc<str>, usize)> = pod
            .images
            .iter()
            .map(|image| {
                let name: Arc<str> = Arc::from(normalized_image_name(image));
                let count = snapshot.nodes_with_image(&name);
                (name, count)
            })
            .collect();
        state.write(PRE_SCORE_KEY, PreScoreState { images, total_nodes: snapshot.num_nodes() });
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, _: &Pod, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else { return 0 };
        if s.total_nodes == 0 {
            return 0;
        }
        let sum = s
            .images
            .iter()
            .filter_map(|(name, spread)| {
                let &(_, size) = node.node.images.iter().find(|(n, _)| n == name)?;
                Some(scaled_image_score(size, *spread, s.total_nodes))
            })
            .sum();
        calculate_priority(sum, s.images.len())
    }
}

/// Upstream computes the spread in floating point and truncates the product.
fn scaled_image_score(size: i64, nodes_with_image: usize, total_nodes: usize) -> i64 {
    let spread = nodes_with_image as f64 / total_nodes as f64;
    (size as f64 * spread) as i64
}

fn calculate_priority(sum: i64, num_containers: usize) -> i64 {
    let max_threshold = MAX_CONTAINER_THRESHOLD * num_containers as i64;
    if max_threshold <= MIN_THRESHOLD {
        return 0;
    }
    let clamped = sum.clamp(MIN_THRESHOLD, max_threshold);
    MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Node;
    use crate::plugins::testing::*;

    fn with_images(mut n: Node, images: &[(&str, i64)]) -> Node {
        n.images = images.iter().map(|&(name, mb)| (Arc::from(name), mb * MB)).collect();
        n
    }

    fn wanting(images: &[&str]) -> Pod {
        let mut p = pod("p", 0, 0);
        p.images = images.iter().map(|i| Arc::from(*i)).collect();
        p
    }

    fn scores(pod: &Pod, nodes: Vec<Node>) -> Vec<i64> {
        let snap = snapshot(nodes.into_iter().map(|n| (n, vec![])).collect(), &[]);
        let mut cs = CycleState::new();
        let infos: Vec<&NodeInfo> = snap.nodes().map(|n| n.as_ref()).collect();
        let s = ImageLocality.pre_score(&mut cs, pod, &snap, &infos);
        assert!(s.is_success(), "{s}");
        infos.iter().map(|n| ImageLocality.score(&cs, pod, n)).collect()
    }

    fn node_40_300_2000() -> Node {
        let images = [
            ("gcr.io/40:latest", 40),
            ("gcr.io/40:v1", 40),
            ("gcr.io/300:latest", 300),
            ("gcr.io/300:v1", 300),
            ("gcr.io/2000:latest", 2000),
        ];
        with_images(node("node1", 1000, GI), &images)
    }

    fn node_250_10() -> Node {
        with_images(
            node("node2", 1000, GI),
            &[("gcr.io/250:latest", 250), ("gcr.io/10:latest", 10), ("gcr.io/10:v1", 10)],
        )
    }

    fn node_4000_30() -> Node {
        with_images(node("node1", 1000, GI), &[("gcr.io/4000:latest", 4000), ("gcr.io/30:latest", 30)])
    }

    fn node_20_30_40() -> Node {
        with_images(
            node("node2", 1000, GI),
            &[("gcr.io/20:latest", 20), ("gcr.io/30:latest", 30), ("gcr.io/40:latest", 40)],
        )
    }

    fn bare(name: &str) -> Node {
        node(name, 1000, GI)
    }

    // Upstream TestImageLocalityPriority, case by case (comments carry upstream's arithmetic).
    #[test]
    fn score_follows_upstream_cases() {
        // node2: 100 * (250M/2 - 23M) / (1000M*2 - 23M) = 5; node1: 40M/2 < 23M
        assert_eq!(scores(&wanting(&["gcr.io/40", "gcr.io/250"]), vec![node_40_300_2000(), node_250_10()]), vec![0, 5]);
        // node1: 100 * ((40M + 300M)/2 - 23M) / (1000M*2 - 23M) = 7
        assert_eq!(scores(&wanting(&["gcr.io/40", "gcr.io/300"]), vec![node_40_300_2000(), node_250_10()]), vec![7, 0]);
        // node1: 4000M/2 >= 1000M*2, the maximum
        assert_eq!(scores(&wanting(&["gcr.io/10", "gcr.io/4000"]), vec![node_4000_30(), node_250_10()]), vec![100, 0]);
        // node1: 100 * (4000M/3 - 23M) / (1000M*2 - 23M) = 66
        assert_eq!(
            scores(&wanting(&["gcr.io/10", "gcr.io/4000"]), vec![node_4000_30(), node_250_10(), bare("node3")]),
            vec![66, 0, 0]
        );
    }

    #[test]
    fn score_follows_upstream_multi_image_cases() {
        let n1 = with_images(
            bare("node1"),
            &[("gcr.io/600:latest", 600), ("gcr.io/40:latest", 40), ("gcr.io/900:latest", 900)],
        );
        let n2 = with_images(
            bare("node2"),
            &[("gcr.io/300:latest", 300), ("gcr.io/600:latest", 600), ("gcr.io/900:latest", 900)],
        );
        // node1: 100 * (600M*2/3 + 900M*2/3 - 23M) / (1000M*3 - 23M) = 32; node2 adds 300M/3: 36
        assert_eq!(
            scores(&wanting(&["gcr.io/300", "gcr.io/600", "gcr.io/900"]), vec![n1, n2, bare("node3")]),
            vec![32, 36, 0]
        );
        // node1: 100 * (30M + 40M/2 - 23M) / (1000M*2 - 23M) = 1
        assert_eq!(scores(&wanting(&["gcr.io/30", "gcr.io/40"]), vec![node_20_30_40(), node_4000_30()]), vec![1, 0]);
        // Init containers count (they are in pod.images): 100 * (300M/2 - 23M) / (1000M*2 - 23M) = 6
        assert_eq!(
            scores(&wanting(&["gcr.io/300", "gcr.io/30"]), vec![node_40_300_2000(), node_20_30_40()]),
            vec![6, 0]
        );
    }

    // Upstream TestNormalizedImageName.
    #[test]
    fn image_names_are_normalized_like_upstream() {
        assert_eq!(normalized_image_name("root"), "root:latest");
        assert_eq!(normalized_image_name("gcr.io:5000/root"), "gcr.io:5000/root:latest");
        assert_eq!(normalized_image_name("root:tag"), "root:tag");
        let digest = "root@sha256:4813494d137e1631bba301d5acab6e7bb7aa74ce1185d456565ef51d737677b2";
        assert_eq!(normalized_image_name(digest), digest);
    }

    #[test]
    fn pods_without_images_skip_and_missing_state_scores_zero() {
        let snap = snapshot(vec![(node_250_10(), vec![])], &[]);
        let mut cs = CycleState::new();
        assert_eq!(ImageLocality.pre_score(&mut cs, &pod("p", 0, 0), &snap, &[]), Status::skip());
        let ni = node_info(0, node_250_10(), vec![]);
        assert_eq!(ImageLocality.score(&cs, &wanting(&["gcr.io/250"]), &ni), 0);
    }
}
