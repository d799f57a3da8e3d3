//! Host ports the pod's containers claim on their node.

use k8s_openapi::api::core::v1 as core;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::HostPort;

use crate::ingest::error::FieldError;

/// Host ports of the containers and init containers. With `hostNetwork`, every container port
/// is a host port (upstream defaulting sets `hostPort` to `containerPort`).
pub fn host_ports(spec: &core::PodSpec) -> Result<Vec<HostPort>, FieldError> {
    let host_network = spec.host_network == Some(true);
    let lists = [
        (spec.containers.as_slice(), "spec.containers"),
        (spec.init_containers.as_deref().unwrap_or_default(), "spec.initContainers"),
    ];
    let mut out = Vec::new();
    for (containers, base) in lists {
        for (i, c) in containers.iter().enumerate() {
            for (j, p) in c.ports.iter().flatten().enumerate() {
                if let Some(port) = host_port(p, host_network, &format!("{base}[{i}].ports[{j}]"))? {
                    out.push(port);
                }
            }
        }
    }
    Ok(out)
}

fn host_port(p: &core::ContainerPort, host_network: bool, path: &str) -> Result<Option<HostPort>, FieldError> {
    let (number, field) = match p.host_port {
        Some(n) if n != 0 => (n, "hostPort"),
        _ if host_network => (p.container_port, "containerPort"),
        _ => return Ok(None),
    };
    let port = u16::try_from(number)
        .ok()
        .filter(|n| *n != 0)
        .ok_or_else(|| FieldError::invalid(format!("{path}.{field}"), number, "must be between 1 and 65535"))?;
    let protocol = match p.protocol.as_deref() {
        None | Some("") => "TCP",
        Some(proto @ ("TCP" | "UDP" | "SCTP")) => proto,
        Some(other) => return Err(FieldError::unsupported(format!("{path}.protocol"), other, "TCP, UDP, SCTP")),
    };
    // Upstream treats an empty host IP as 0.0.0.0, the wildcard.
    let ip = p.host_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "0.0.0.0").map(Sym::new);
    Ok(Some(HostPort { ip, protocol: Sym::new(protocol), port }))
}
