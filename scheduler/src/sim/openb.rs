//! The Alibaba GPU cluster trace (`openb_node_list_*.csv`, `openb_pod_list_*.csv`), as used by
//! the FGD paper: parsing with errors that name the file, line and column.
//!
//! Node lists: `sn,cpu_milli,memory_mib,gpu,model`. Pod lists:
//! `name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time]`
//! (the `multigpu*` files stop after `gpu_milli`).

use std::path::Path;

use thiserror::Error;

use crate::ingest::gpu::MAX_GPUS_PER_NODE;

/// A malformed trace.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TraceError {
    /// The CSV itself does not parse (quoting, encoding).
    #[error("{file}: line {line}: {message}")]
    Csv {
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// What the CSV reader said.
        message: String,
    },
    /// A required column is missing from the header.
    #[error("{file}: header lacks column {column:?}")]
    MissingColumn {
        /// The file.
        file: String,
        /// The column.
        column: &'static str,
    },
    /// A field does not hold what its column needs.
    #[error("{file}: line {line}, column {column:?}: {message}")]
    Field {
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// The column.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// One node of a node list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceNode {
    /// `sn`.
    pub name: String,
    /// `cpu_milli`.
    pub cpu_milli: i64,
    /// `memory_mib`.
    pub memory_mib: i64,
    /// `gpu`: number of GPUs.
    pub gpus: u32,
    /// `model`: GPU type, empty for CPU-only nodes.
    pub model: String,
}

/// One pod of a pod list.
#[derive(Clone, Debug, PartialEq)]
pub struct TracePod {
    /// Where the row is in its file (1-based line), for messages about the pod.
    pub line: u64,
    /// `name`.
    pub name: String,
    /// `cpu_milli`.
    pub cpu_milli: i64,
    /// `memory_mib`.
    pub memory_mib: i64,
    /// `num_gpu`.
    pub num_gpu: u32,
    /// `gpu_milli`: per-GPU share, clamped to 0..=1000 as the FGD tooling does.
    pub gpu_milli: u32,
    /// `gpu_spec`: acceptable GPU models (`|`-separated); empty = any.
    pub gpu_spec: Vec<String>,
    /// `creation_time`, seconds.
    pub creation_s: Option<f64>,
    /// `deletion_time`, seconds.
    pub deletion_s: Option<f64>,
}

/// Whether `header` is an openb node list.
pub fn is_node_list(header: &str) -> bool {
    header.trim_start_matches('\u{feff}').starts_with("sn,")
}

/// Whether `header` is an openb pod list.
pub fn is_pod_list(header: &str) -> bool {
    header.trim_start_matches('\u{feff}').starts_with("name,cpu_milli,")
}

struct Table {
    file: String,
    headers: csv::StringRecord,
    reader: csv::Reader<std::io::Cursor<Vec<u8>>>,
}

impl Table {
    fn new(file: &Path, text: &str) -> Result<Table, TraceError> {
        let file = file.display().to_string();
        let mut reader =
            csv::ReaderBuilder::new().flexible(false).from_reader(std::io::Cursor::new(text.as_bytes().to_vec()));
        let headers = reader.headers().map_err(|e| csv_error(&file, &e))?.clone();
        Ok(Table { file, headers, reader })
    }

    fn column(&self, name: &'static str) -> Result<usize, TraceError> {
        self.headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .ok_or(TraceError::MissingColumn { file: self.file.clone(), column: name })
    }

    fn optional(&self, name: &'static str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    fn rows(&mut self) -> impl Iterator<Item = Result<(u64, csv::StringRecord), TraceError>> + '_ {
        let file = self.file.clone();
        self.reader.records().map(move |r| {
            let r = r.map_err(|e| csv_error(&file, &e))?;
            Ok((r.position().map_or(0, |p| p.line()), r))
        })
    }
}

fn csv_error(file: &str, e: &csv::Error) -> TraceError {
    let line = e.position().map_or(0, |p| p.line());
    TraceError::Csv { file: file.to_string(), line, message: e.to_string() }
}

fn int(file: &str, line: u64, column: &'static str, v: &str) -> Result<i64, TraceError> {
    v.trim().parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| TraceError::Field {
        file: file.to_string(),
        line,
        column,
        message: format!("{v:?} is not a non-negative integer"),
    })
}

/// Most MiB a memory column may hold: the simulator counts bytes in an `i64`, and more MiB
/// than this would overflow it (2^63 bytes).
const MAX_MEMORY_MIB: i64 = i64::MAX >> 20;

/// What [`MAX_MEMORY_MIB`] is, for messages.
const MEMORY_LIMIT: &str = "the most MiB that fit in 2^63 bytes";

/// What [`MAX_GPUS_PER_NODE`] (the YAML path's limit too) is, for messages.
const GPU_LIMIT: &str = "the most GPUs a node may have (its devices are tracked in a 64-bit mask)";

/// [`int`] no greater than `max`; `limit` says what `max` is.
fn int_at_most(file: &str, line: u64, column: &'static str, v: &str, max: i64, limit: &str) -> Result<i64, TraceError> {
    let n = int(file, line, column, v)?;
    if n > max {
        let message = format!("{n} is more than {max}, {limit}");
        return Err(TraceError::Field { file: file.to_string(), line, column, message });
    }
    Ok(n)
}

/// A GPU count: at most [`MAX_GPUS_PER_NODE`], so it fits a `u32`.
fn gpu_count(file: &str, line: u64, column: &'static str, v: &str) -> Result<u32, TraceError> {
    let n = int_at_most(file, line, column, v, MAX_GPUS_PER_NODE, GPU_LIMIT)?;
    // 0..=64 by the check above: the cast is exact.
    Ok(n as u32)
}

fn time(file: &str, line: u64, column: &'static str, v: &str) -> Result<Option<f64>, TraceError> {
    if v.trim().is_empty() {
        return Ok(None);
    }
    let t = v.trim().parse::<f64>().ok().filter(|t| t.is_finite() && *t >= 0.0);
    t.map(Some).ok_or_else(|| TraceError::Field {
        file: file.to_string(),
        line,
        column,
        message: format!("{v:?} is not a time in seconds"),
    })
}

/// Parses a node list.
pub fn parse_nodes(file: &Path, text: &str) -> Result<Vec<TraceNode>, TraceError> {
    let mut t = Table::new(file, text)?;
    let (sn, cpu, mem, gpu, model) =
        (t.column("sn")?, t.column("cpu_milli")?, t.column("memory_mib")?, t.column("gpu")?, t.column("model")?);
    let f = t.file.clone();
    let mut out = Vec::new();
    for row in t.rows() {
        let (line, r) = row?;
        let get = |i: usize| r.get(i).unwrap_or("");
        if get(sn).trim().is_empty() {
            return Err(TraceError::Field {
                file: f.clone(),
                line,
                column: "sn",
                message: "node name is empty".into(),
            });
        }
        out.push(TraceNode {
            name: get(sn).trim().to_string(),
            cpu_milli: int(&f, line, "cpu_milli", get(cpu))?,
            memory_mib: int_at_most(&f, line, "memory_mib", get(mem), MAX_MEMORY_MIB, MEMORY_LIMIT)?,
            gpus: gpu_count(&f, line, "gpu", get(gpu))?,
            model: get(model).trim().to_string(),
        });
    }
    Ok(out)
}

/// Parses a pod list.
pub fn parse_pods(file: &Path, text: &str) -> Result<Vec<TracePod>, TraceError> {
    let mut t = Table::new(file, text)?;
    let (name, cpu, mem, ngpu, milli) = (
        t.column("name")?,
        t.column("cpu_milli")?,
        t.column("memory_mib")?,
        t.column("num_gpu")?,
        t.column("gpu_milli")?,
    );
    let (spec, created, deleted) = (t.optional("gpu_spec"), t.optional("creation_time"), t.optional("deletion_time"));
    let f = t.file.clone();
    let mut out = Vec::new();
    for row in t.rows() {
        let (line, r) = row?;
        let get = |i: usize| r.get(i).unwrap_or("");
        if get(name).trim().is_empty() {
            return Err(TraceError::Field {
                file: f.clone(),
                line,
                column: "name",
                message: "pod name is empty".into(),
            });
        }
        out.push(TracePod {
            line,
            name: get(name).trim().to_string(),
            cpu_milli: int(&f, line, "cpu_milli", get(cpu))?,
            memory_mib: int_at_most(&f, line, "memory_mib", get(mem), MAX_MEMORY_MIB, MEMORY_LIMIT)?,
            num_gpu: gpu_count(&f, line, "num_gpu", get(ngpu))?,
            gpu_milli: int(&f, line, "gpu_milli", get(milli))?.min(1000) as u32,
            gpu_spec: spec
                .map(|i| get(i).split('|').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                .unwrap_or_default(),
            creation_s: created.map_or(Ok(None), |i| time(&f, line, "creation_time", get(i)))?,
            deletion_s: deleted.map_or(Ok(None), |i| time(&f, line, "deletion_time", get(i)))?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_pod_lists_parse() {
        let nodes = parse_nodes(
            Path::new("n.csv"),
            "sn,cpu_milli,memory_mib,gpu,model\nopenb-node-0000,64000,262144,2,P100\nc1,32000,1024,0,\n",
        )
        .unwrap();
        assert_eq!(
            nodes[0],
            TraceNode {
                name: "openb-node-0000".into(),
                cpu_milli: 64000,
                memory_mib: 262144,
                gpus: 2,
                model: "P100".into()
            }
        );
        assert_eq!(nodes[1].model, "");
        let pods = parse_pods(
            Path::new("p.csv"),
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
             p0,12000,16384,1,460,V100M16|V100M32,LS,Running,10,20,10\np1,1000,1,0,0,,BE,Pending,5,,\n",
        )
        .unwrap();
        assert_eq!(pods[0].gpu_spec, vec!["V100M16", "V100M32"]);
        assert_eq!(pods[0].creation_s, Some(10.0));
        assert_eq!(pods[1].deletion_s, None);
        let short =
            parse_pods(Path::new("m.csv"), "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,8,1000\n").unwrap();
        assert_eq!(short[0].num_gpu, 8);
        assert_eq!(short[0].creation_s, None);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e =
            parse_nodes(Path::new("n.csv"), "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,abc,2,P100\n").unwrap_err();
        assert_eq!(e.to_string(), "n.csv: line 2, column \"memory_mib\": \"abc\" is not a non-negative integer");
        let e = parse_nodes(Path::new("n.csv"), "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,1,2\n").unwrap_err();
        assert!(e.to_string().starts_with("n.csv: line 2"), "{e}");
        let e = parse_pods(Path::new("p.csv"), "name,cpu_milli,memory\np,1,1\n").unwrap_err();
        assert!(matches!(e, TraceError::MissingColumn { .. }));
        let e =
            parse_pods(Path::new("p.csv"), "name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time\np,1,1,0,0,-5\n")
                .unwrap_err();
        assert!(e.to_string().contains("creation_time"), "{e}");
    }

    #[test]
    fn a_node_gpu_count_past_the_device_mask_names_the_limit() {
        for count in ["65", "100", "34000000000"] {
            let text = format!("sn,cpu_milli,memory_mib,gpu,model\nn0,64000,1024,2,P100\nn1,64000,1024,{count},P100\n");
            let e = parse_nodes(Path::new("n.csv"), &text).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "n.csv: line 3, column \"gpu\": {count} is more than 64, the most GPUs a node may have \
                     (its devices are tracked in a 64-bit mask)"
                )
            );
        }
        let nodes = parse_nodes(Path::new("n.csv"), "sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,64,P100\n").unwrap();
        assert_eq!(nodes[0].gpus, 64);
    }

    #[test]
    fn a_memory_size_past_2_pow_63_bytes_is_an_error_not_an_overflow() {
        let huge = i64::MAX.to_string();
        let e = parse_nodes(Path::new("n.csv"), &format!("sn,cpu_milli,memory_mib,gpu,model\nn0,1,{huge},0,\n"))
            .unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("n.csv: line 2, column \"memory_mib\": {huge} is more than ")),
            "{e}"
        );
        let e =
            parse_pods(Path::new("p.csv"), &format!("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,{huge},0,0\n"))
                .unwrap_err();
        assert!(e.to_string().contains("column \"memory_mib\""), "{e}");
        let max = (i64::MAX >> 20).to_string();
        let pods =
            parse_pods(Path::new("p.csv"), &format!("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,{max},0,0\n"));
        assert_eq!(pods.unwrap()[0].memory_mib, i64::MAX >> 20);
    }

    #[test]
    fn the_committed_trace_parses_whole() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openb");
        let text = std::fs::read_to_string(dir.join("openb_node_list_gpu_node.csv")).unwrap();
        let nodes = parse_nodes(Path::new("gpu_node.csv"), &text).unwrap();
        assert_eq!(nodes.len(), 1213);
        assert_eq!(nodes.iter().map(|n| n.gpus).sum::<u32>(), 6212);
        let pods = parse_pods(
            Path::new("default.csv"),
            &std::fs::read_to_string(dir.join("openb_pod_list_default.csv")).unwrap(),
        )
        .unwrap();
        assert_eq!(pods.len(), 8152);
    }
}
