//! `GpuTopologyArgs`: the scoring strategy and, for FGD, what it knows of the workload.
//!
//! ```yaml
//! pluginConfig:
//!   - name: GpuTopology
//!     args:
//!       scoringStrategy: FGD          # MostAllocated (default) | Packing | FGD | CpuAwareFGD |
//!                                     # ModelAwareFGD | Spread | DotProduct
//!       strandingWeight: 0.5          # CpuAwareFGD, ModelAwareFGD: weight of the GPU its CPU
//!                                     # cannot feed
//!       modelWeight: 2                # ModelAwareFGD: weight of the GPU taken from a model
//!                                     # that pods constrained to it need
//!       remainderWeight: 0            # CpuAwareFGD, ModelAwareFGD: weight of the free share
//!                                     # a shared-GPU pod leaves that no typical shares fill
//!       popularityThreshold: 95       # FGD: % of pods the typical pods cover
//!       learn: true                   # FGD: keep learning pod shapes from the pods seen
//!       bestWiredFirst: true          # pods asking whole GPUs go first to the nodes where
//!                                     # those GPUs are wired best and break the fewest islands
//!       typicalPods:                  # FGD: shapes known up front, counted as pods seen
//!         - {cpu: "4", gpuCount: 1, gpuMilli: 500, count: 300}
//!         - {cpu: 8, gpuCount: 8, gpuMilli: 1000, gpuModels: [G2], count: 20}
//! ```

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::gpu_frag::PodShape;
use crate::intern::Sym;
use crate::model::GPU_MILLI;
use crate::quantity::parse_milli;
use crate::registry::{PluginArgs, PluginError, decode_args};

use super::NAME;

/// How GpuTopology scores nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScoringStrategy {
    /// The node whose usable GPUs end up fullest (pods without GPUs are not scored).
    #[default]
    MostAllocated,
    /// Best fit (the FGD paper's BestFit baseline): the node with the least CPU and GPU left
    /// once the pod is placed.
    Packing,
    /// Fragmentation Gradient Descent: the node (and GPUs) where the expected GPU
    /// fragmentation grows least. Written `FGD`.
    Fgd,
    /// The node whose usable GPUs stay emptiest (pods without GPUs are not scored).
    Spread,
    /// The FGD paper's DotProd baseline: the node whose free CPU and GPU align least with the
    /// request.
    DotProduct,
    /// FGD that also counts the idle GPU a node's free CPU can no longer feed. Written
    /// `CpuAwareFGD`.
    CpuAwareFgd,
    /// CpuAwareFGD that also counts the GPU a pod takes from a model which pods constrained to
    /// a few models will need, when it could run on a model under less pressure. Written
    /// `ModelAwareFGD`.
    ModelAwareFgd,
}

impl ScoringStrategy {
    /// Whether the strategy learns the workload's typical pods and chooses GPUs itself.
    pub fn learns(self) -> bool {
        matches!(self, ScoringStrategy::Fgd | ScoringStrategy::CpuAwareFgd | ScoringStrategy::ModelAwareFgd)
    }

    /// Whether the strategy has CpuAwareFGD's stranding term.
    pub fn strands(self) -> bool {
        matches!(self, ScoringStrategy::CpuAwareFgd | ScoringStrategy::ModelAwareFgd)
    }
}

impl<'de> Deserialize<'de> for ScoringStrategy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "MostAllocated" => Ok(ScoringStrategy::MostAllocated),
            "Packing" => Ok(ScoringStrategy::Packing),
            "FGD" => Ok(ScoringStrategy::Fgd),
            "Spread" => Ok(ScoringStrategy::Spread),
            "DotProduct" => Ok(ScoringStrategy::DotProduct),
            "CpuAwareFGD" => Ok(ScoringStrategy::CpuAwareFgd),
            "ModelAwareFGD" => Ok(ScoringStrategy::ModelAwareFgd),
            _ => Err(de::Error::custom(format!(
                "scoringStrategy: unknown value {s:?}; expected MostAllocated, Packing, FGD, CpuAwareFGD, ModelAwareFGD, Spread or DotProduct"
            ))),
        }
    }
}

/// A pod shape the workload is known to have, and how many pods of it to count.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TypicalPodArg {
    /// CPU request: a quantity (`"500m"`, `"4"`) or a number of cores.
    #[serde(deserialize_with = "cpu_quantity")]
    pub cpu: i64,
    /// GPUs (0 for a CPU-only pod).
    #[serde(default)]
    pub gpu_count: u32,
    /// Milli-GPU of each GPU, 1..=1000 (0 for a CPU-only pod).
    #[serde(default)]
    pub gpu_milli: u32,
    /// Acceptable GPU models; empty accepts any.
    #[serde(default)]
    pub gpu_models: Vec<String>,
    /// How many pods of this shape to count.
    pub count: u64,
}

/// Millicores from a quantity string or a number of cores.
fn cpu_quantity<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => parse_milli(&s).map_err(|e| de::Error::custom(format!("cpu: {e}"))),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(cores) if (0.0..1e15).contains(&cores) => Ok((cores * 1000.0).ceil() as i64),
            _ => Err(de::Error::custom(format!("cpu: {n} is not a CPU amount"))),
        },
        other => Err(de::Error::custom(format!("cpu: expected a quantity, got {other}"))),
    }
}

/// CpuAwareFGD's and ModelAwareFGD's default `strandingWeight`: 0.25–8 all strand 4.15–4.25% of
/// the GPUs on the openb default trace. With ModelAwareFGD's model term, 1 strands fewer than 0.5
/// on the CPU-heavy traces (10 seeds: cpu235 4.39% against 4.58, cpu250 5.29 against 5.65), and
/// `manifests/config/gpu.yaml` sets it; the default stays that of the README's CpuAwareFGD figures.
pub const DEFAULT_STRANDING_WEIGHT: f64 = 0.5;

/// ModelAwareFGD's default `modelWeight`: a milli-GPU taken from the pods that need the model
/// counts as two of fragmentation (openb `gpuspec33`, 10 seeds: 5.63% unallocated at 1, 5.11
/// at 2; equal on `gpuspec20/25`).
pub const DEFAULT_MODEL_WEIGHT: f64 = 2.0;

/// CpuAwareFGD's and ModelAwareFGD's default `remainderWeight`: off, the strategies of the
/// README's tables; `manifests/config/gpu.yaml` sets 2 (openb default trace, 10 seeds: 4.09%
/// unallocated against 4.20 without, 4.12 at 1, 4.10 at 4).
pub const DEFAULT_REMAINDER_WEIGHT: f64 = 0.0;

/// GpuTopology's args.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GpuTopologyArgs {
    /// How nodes are scored.
    #[serde(default)]
    pub scoring_strategy: ScoringStrategy,
    /// FGD: the share of pods, in percent, the typical pods cover (the paper's 95).
    #[serde(default)]
    pub popularity_threshold: Option<u32>,
    /// FGD: pod shapes counted before any pod is seen.
    #[serde(default)]
    pub typical_pods: Vec<TypicalPodArg>,
    /// FGD: whether the pods seen are counted too (the workload is learned online).
    #[serde(default = "yes")]
    pub learn: bool,
    /// CpuAwareFGD: milli-GPU of fragmentation one milli-GPU of stranded GPU (idle GPU the
    /// node's free CPU cannot feed) counts as; 0 is FGD.
    #[serde(default)]
    pub stranding_weight: Option<f64>,
    /// ModelAwareFGD: milli-GPU of fragmentation one milli-GPU taken from a model under more
    /// pressure than the pod needs counts as; 0 is CpuAwareFGD.
    #[serde(default)]
    pub model_weight: Option<f64>,
    /// CpuAwareFGD, ModelAwareFGD: milli-GPU of fragmentation one milli-GPU of a GPU's free
    /// share counts as once no mix of typical shares can fill it (the remainder term); 0 is
    /// off.
    #[serde(default)]
    pub remainder_weight: Option<f64>,
    /// Whether a pod asking whole GPUs is steered first to the nodes where they would be wired
    /// best (NVLink, one PCIe root, one NUMA node) and break up the fewest whole NVLink
    /// islands, whatever the strategy.
    #[serde(default = "yes")]
    pub best_wired_first: bool,
}

fn yes() -> bool {
    true
}

impl Default for GpuTopologyArgs {
    fn default() -> Self {
        GpuTopologyArgs {
            scoring_strategy: ScoringStrategy::default(),
            popularity_threshold: None,
            typical_pods: Vec::new(),
            learn: true,
            stranding_weight: None,
            model_weight: None,
            remainder_weight: None,
            best_wired_first: true,
        }
    }
}

impl GpuTopologyArgs {
    /// Decodes and validates `args`; every error names its field.
    pub fn decode(args: Option<&PluginArgs>) -> Result<GpuTopologyArgs, PluginError> {
        let a: GpuTopologyArgs = decode_args(NAME, args)?;
        a.validate()?;
        Ok(a)
    }

    fn validate(&self) -> Result<(), PluginError> {
        let bad = |field: &str, what: String| Err(PluginError::bad_args(NAME, format!("{field}: {what}")));
        let fgd = self.scoring_strategy.learns();
        if !fgd {
            let only_fgd = "only applies to scoringStrategy FGD, CpuAwareFGD or ModelAwareFGD".to_string();
            if self.popularity_threshold.is_some() {
                return bad("popularityThreshold", only_fgd);
            }
            if !self.typical_pods.is_empty() {
                return bad("typicalPods", only_fgd);
            }
            if !self.learn {
                return bad("learn", only_fgd);
            }
        }
        if self.stranding_weight.is_some() && !self.scoring_strategy.strands() {
            return bad("strandingWeight", "only applies to scoringStrategy CpuAwareFGD or ModelAwareFGD".to_string());
        }
        if self.remainder_weight.is_some() && !self.scoring_strategy.strands() {
            return bad("remainderWeight", "only applies to scoringStrategy CpuAwareFGD or ModelAwareFGD".to_string());
        }
        if self.model_weight.is_some() && self.scoring_strategy != ScoringStrategy::ModelAwareFgd {
            return bad("modelWeight", "only applies to scoringStrategy ModelAwareFGD".to_string());
        }
        let weights = [
            ("strandingWeight", self.stranding_weight),
            ("modelWeight", self.model_weight),
            ("remainderWeight", self.remainder_weight),
        ];
        for (field, weight) in weights {
            if let Some(w) = weight
                && !(0.0..=100.0).contains(&w)
            {
                return bad(field, format!("must be between 0 and 100, got {w}"));
            }
        }
        if let Some(t) = self.popularity_threshold
            && !(1..=100).contains(&t)
        {
            return bad("popularityThreshold", format!("must be a percentage in 1..=100, got {t}"));
        }
        if fgd && !self.learn && self.typical_pods.is_empty() {
            return bad("learn", "false needs typicalPods: FGD would know no workload".to_string());
        }
        for (i, p) in self.typical_pods.iter().enumerate() {
            let field = |f: &str| format!("typicalPods[{i}].{f}");
            if p.count == 0 {
                return bad(&field("count"), "must be at least 1".to_string());
            }
            if p.gpu_count > 64 {
                return bad(&field("gpuCount"), format!("{} GPUs is more than a node can hold", p.gpu_count));
            }
            if p.gpu_count > 0 && !(1..=GPU_MILLI).contains(&p.gpu_milli) {
                return bad(&field("gpuMilli"), format!("must be in 1..={GPU_MILLI} with GPUs, got {}", p.gpu_milli));
            }
            if p.gpu_count == 0 && (p.gpu_milli != 0 || !p.gpu_models.is_empty()) {
                return bad(&field("gpuCount"), "is 0 but gpuMilli or gpuModels is set".to_string());
            }
        }
        Ok(())
    }

    /// The typical-pod threshold as a share (0..=1).
    pub fn threshold(&self) -> f64 {
        self.popularity_threshold.map_or(crate::gpu_frag::DEFAULT_POPULARITY_THRESHOLD, |t| f64::from(t) / 100.0)
    }

    /// CpuAwareFGD's and ModelAwareFGD's stranding weight (default 0.5).
    pub fn stranding_weight(&self) -> f64 {
        self.stranding_weight.unwrap_or(DEFAULT_STRANDING_WEIGHT)
    }

    /// ModelAwareFGD's model weight (default 2).
    pub fn model_weight(&self) -> f64 {
        self.model_weight.unwrap_or(DEFAULT_MODEL_WEIGHT)
    }

    /// CpuAwareFGD's and ModelAwareFGD's remainder weight (default 0: off).
    pub fn remainder_weight(&self) -> f64 {
        self.remainder_weight.unwrap_or(DEFAULT_REMAINDER_WEIGHT)
    }

    /// The seed shapes with their counts.
    pub fn seeds(&self) -> Vec<(PodShape, u64)> {
        let shape = |p: &TypicalPodArg| {
            let models = p.gpu_models.iter().map(|m| Sym::new(m)).collect();
            PodShape::new(p.cpu, p.gpu_count, p.gpu_milli, models)
        };
        self.typical_pods.iter().map(|p| (shape(p), p.count)).collect()
    }
}
