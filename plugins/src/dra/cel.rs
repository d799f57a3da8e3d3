//! CEL device selectors (`CELDeviceSelector.expression` of `resource.k8s.io/v1`), with the
//! environment kube-scheduler v1.37 gives them. The `cel` crate parses and interprets; this
//! module declares what an expression sees, checks it once at [`Selector::compile`], bounds what
//! an evaluation may cost, and caches each device's verdict.
//!
//! # What an expression sees
//!
//! One variable, `device`, with four fields:
//!
//! - `device.driver`: the driver's name (`string`).
//! - `device.attributes`: a map from domain to a map from attribute name to its value: `int`,
//!   `bool`, `string`, or a semantic version for a `version` attribute. Both
//!   `device.attributes["gpu.nvidia.com"].model` and `…["gpu.nvidia.com"]["model"]` work. The
//!   model keys attributes by qualified name (`gpu.nvidia.com/model`); the domain is what comes
//!   before the last `/`, and a name without one takes the driver as its domain, as upstream.
//! - `device.capacity`: the same shape, with quantities as values.
//! - `device.allowMultipleAllocations` (`bool`).
//!
//! As upstream, a domain the device does not have is an empty map, and looking up a name that
//! is not there (`device.attributes["x.com"].model` when the device has no `x.com/model`) is a
//! runtime error, `no such key: model`: the device does not match and [`Selector::matches`]
//! returns the error, naming the expression and the device. `has(device.attributes["x.com"].model)`
//! tests for it without error. The device's maps are read in place, never copied.
//!
//! # Functions
//!
//! The CEL standard library (without `timestamp` and `duration`, which no device carries), the
//! optional syntax and functions (`a.?b`, `optional.of`), the strings extension (`lowerAscii`,
//! `split`, `format`, …, as Kubernetes' `ext.Strings`), `cel.bind(name, value, body)`, and
//! Kubernetes' quantity and semver libraries (below). `matches` compiles each pattern once per
//! process (not once per device), and a literal pattern that is no regular expression fails at
//! compile time, as upstream's regex-literal validation does.
//!
//! - `quantity(string)`, `isQuantity(string)`; on a quantity `compareTo(q)`, `isGreaterThan(q)`,
//!   `isLessThan(q)`, `add(q|int)`, `sub(q|int)`, `mul(int)`, `sign()` (also `sign(q)`),
//!   `isInteger()`, `asInteger()`, `asApproximateFloat()`, and `==` by value
//!   (`quantity("1Gi") == quantity("1024Mi")`).
//! - `semver(string)`, `semver(string, normalize)`, `isSemver(string)`,
//!   `isSemver(string, normalize)`; on a version `compareTo(v)`, `isGreaterThan(v)`,
//!   `isLessThan(v)`, `major()`, `minor()`, `patch()`, and `==` by precedence (build metadata
//!   ignored), parsed and ordered as semver.org 2.0 says (`1.0.0-alpha < 1.0.0`).
//!
//! Quantities and versions are values of this module's own CEL types (`kubernetes.Quantity`,
//! `kubernetes.Semver`), which the crate lets an application define. A quantity is held in
//! milli-units (`i128`, as the model's [`Capacity::milli`](crate::dra::model::Capacity)), so
//! comparisons are exact down to a thousandth; finer quantities (`1n`) round up to `1m` as
//! upstream's `MilliValue()` does. Not provided: quantity `div`/`divInt`, and Kubernetes'
//! other libraries (URLs, IP/CIDR, `format` of Kubernetes' own, the lists helpers `sum`/`min`/
//! `max`/`indexOf`/`isSorted`, sets, two-variable comprehensions, authz, image). A call to
//! them fails at compile time as an undeclared reference.
//!
//! # Checks at compile time
//!
//! [`Selector::compile`] rejects, as upstream's compiler would: an expression over
//! [`MAX_EXPRESSION_LENGTH`] bytes; syntax errors; nesting deeper than [`MAX_NESTING_DEPTH`];
//! references to undeclared variables, fields of `device` it does not have, and undeclared
//! functions; operators applied to types they never accept when both sides' types are known
//! (`device.capacity["d"].memory > 5`: quantities compare with `compareTo`); and a result
//! that is known not to be a `bool`. The crate has no type checker, so this one infers types
//! only where they are evident (literals, `device`'s fields, operators, the functions above);
//! anything else is checked when evaluated, and a non-`bool` result is then an error.
//!
//! # Cost
//!
//! Upstream bounds a selector's estimated cost at validation and its actual cost at runtime,
//! both by `CELSelectorExpressionMaxCost` = 1,000,000. The crate counts nothing, so compiling
//! rewrites the expression to charge a per-evaluation budget of [`MAX_COST`] units: one per
//! function or operator call, one per element of every list or map a comprehension iterates
//! (charged when the range is produced), one per reference to a comprehension or `cel.bind`
//! variable, one per element appended by `map`/`filter`, and for every value such a node
//! produces, a tenth of a unit per byte of a string and one per element of a list or map.
//! Reading `device` (its fields, and indexing its maps by a literal) costs nothing. An
//! evaluation that runs out stops with `operation cancelled: actual cost limit exceeded`, even
//! where `||` or `&&` would have absorbed the error. `replace` and `join` check the size of
//! what they would build before building it. This approximates cel-go's cost model; it is not
//! it. Not enforced: upstream's *estimated* (worst-case, static) cost; and the bound is
//! checked after each charged node, so one node can still allocate a few times what its
//! (charged) operands hold, e.g. a list literal repeating a large string.
//!
//! Evaluation recurses once per level of the expression. An expression nested deeper than
//! [`INLINE_DEPTH`] after the rewriting is evaluated on a thread of its own with a large stack,
//! so no selector can overflow the caller's; compiling always runs on such a thread.
//!
//! # Caching
//!
//! A [`Selector`] remembers each device's result (errors included) by
//! [`Device::uid`], so a second `matches` for the same device is one hash lookup. The cache
//! holds at most [`MAX_CACHED_RESULTS`] devices and is emptied when full. [`compile_cached`]
//! shares one compiled selector, and so one result cache, per expression text across the
//! process.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock};

use cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, ListExpr, LiteralValue, MapEntryExpr, SelectExpr,
    SourceInfo, StructFieldExpr,
};
use cel::common::traits::{Container, Indexer, Iterable, Iterator as CelIterator, Sizer};
use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelInt, CelList, CelMap, CelString, DYN_TYPE, INT_TYPE, Kind, MAP_TYPE, Type,
};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::context::VariableResolver;
use cel::parser::{Macro, MacroExprHelper, ParseError};
use cel::{Context, DeclarationError, Env, ExecutionError, Value};
use parking_lot::RwLock;

use crate::dra::model::{AttrValue, Device};

/// Longest expression accepted, in bytes (upstream `CELSelectorExpressionMaxLength`).
pub const MAX_EXPRESSION_LENGTH: usize = 10 * 1024;

/// Budget of one evaluation, in the units the module documentation describes (upstream
/// `CELSelectorExpressionMaxCost`).
pub const MAX_COST: u64 = 1_000_000;

/// Deepest nesting of the parsed expression accepted (cel-go's parser allows 250 levels of
/// recursion; `&&` and `||` chains count as balanced trees, as both parsers build them).
pub const MAX_NESTING_DEPTH: usize = 250;

/// Deepest rewritten expression evaluated on the caller's thread; deeper ones get a thread of
/// their own, with [`BIG_STACK`] bytes of stack. The interpreter takes about 35 KiB of stack
/// per level unoptimised and under 5 KiB optimised: either limit leaves a 2 MiB stack (a test
/// or rayon thread) more than half free.
pub const INLINE_DEPTH: usize = if cfg!(debug_assertions) { 24 } else { 160 };

/// Devices whose results one [`Selector`] remembers before it forgets them all.
pub const MAX_CACHED_RESULTS: usize = 1 << 20;

/// Expressions [`compile_cached`] remembers before it forgets them all (selectors already
/// handed out stay valid).
pub const MAX_CACHED_EXPRESSIONS: usize = 1 << 14;

/// Stack of the threads that compile, and that evaluate deep expressions.
const BIG_STACK: usize = 64 << 20;

/// The internal function every charged node is wrapped in (`@` keeps it out of user syntax).
const COST_FN: &str = "@cost";
/// The size-checked `replace` the rewriting substitutes for the strings extension's.
const REPLACE_FN: &str = "@replace";
/// The size-checked `join` the rewriting substitutes for the strings extension's.
const JOIN_FN: &str = "@join";
/// The `matches` the rewriting substitutes for the standard one: it compiles each pattern once.
const MATCHES_FN: &str = "@matches";
/// Patterns whose compiled form is kept before all are forgotten.
const MAX_CACHED_PATTERNS: usize = 1024;

/// Why an expression does not compile, or does not evaluate for a device, as a person reads it:
/// it names the expression (shortened if long) and, for an evaluation, the device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CelError(pub String);

/// A compiled CEL device selector: parsed, checked and rewritten once, evaluated per device with
/// each device's result remembered. Shared across threads (`Arc`).
pub struct Selector {
    expression: Arc<str>,
    program: Program,
    results: RwLock<HashMap<u64, Result<bool, CelError>, UidHasher>>,
    /// Evaluations run (cache misses), for tests and curiosity.
    evaluations: AtomicU64,
}

const _: fn() = || {
    fn shared<T: Send + Sync + fmt::Debug>() {}
    shared::<Selector>();
};

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector")
            .field("expression", &self.expression)
            .field("cached_results", &self.results.read().len())
            .finish_non_exhaustive()
    }
}

impl Selector {
    /// Parses and checks `expression` against the DRA environment, once; the error names the
    /// problem (and where, when the parser or checker knows).
    pub fn compile(expression: &str) -> Result<Selector, CelError> {
        if expression.len() > MAX_EXPRESSION_LENGTH {
            return Err(CelError(format!(
                "CEL expression {}: is {} bytes long, more than the {MAX_EXPRESSION_LENGTH} allowed",
                shorten(expression),
                expression.len()
            )));
        }
        let env = env()?;
        let program = on_big_stack(|| Program::compile(env, expression))
            .and_then(|compiled| compiled)
            .map_err(|message| CelError(format!("CEL expression {}: {message}", shorten(expression))))?;
        Ok(Selector {
            expression: Arc::from(expression),
            program,
            results: RwLock::new(HashMap::default()),
            evaluations: AtomicU64::new(0),
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether `device` satisfies the expression. A runtime error (a missing attribute, a
    /// non-`bool` result, the cost limit) means it does not, and is returned as the `Err`.
    /// Remembered per [`Device::uid`]: asking again is a hash lookup.
    pub fn matches(&self, device: &Device) -> Result<bool, CelError> {
        if let Some(result) = self.results.read().get(&device.uid) {
            return result.clone();
        }
        let result = self.evaluate(device);
        let mut results = self.results.write();
        if results.len() >= MAX_CACHED_RESULTS {
            results.clear();
        }
        results.insert(device.uid, result.clone());
        result
    }

    fn evaluate(&self, device: &Device) -> Result<bool, CelError> {
        self.evaluations.fetch_add(1, AtomicOrdering::Relaxed);
        let outcome = if self.program.inline {
            // The interpreter is not ours: a panic in it fails this device, not the caller.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.program.run(device)))
                .unwrap_or_else(|_| Err("internal error: the CEL interpreter panicked".to_string()))
        } else {
            on_big_stack(|| self.program.run(device)).and_then(|outcome| outcome)
        };
        outcome.map_err(|message| {
            CelError(format!("CEL expression {} on device {}: {message}", shorten(&self.expression), device.id()))
        })
    }
}

/// The compiled selector for `expression`, shared by every caller in the process that compiles
/// the same text (and with it, its per-device result cache). Compile errors are remembered too.
pub fn compile_cached(expression: &str) -> Result<Arc<Selector>, CelError> {
    type Cache = RwLock<HashMap<Arc<str>, Result<Arc<Selector>, CelError>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(compiled) = cache.read().get(expression) {
        return compiled.clone();
    }
    let compiled = Selector::compile(expression).map(Arc::new);
    let mut cache = cache.write();
    if let Some(first) = cache.get(expression) {
        return first.clone();
    }
    if cache.len() >= MAX_CACHED_EXPRESSIONS {
        cache.clear();
    }
    cache.insert(Arc::from(expression), compiled.clone());
    compiled
}

/// `expression` quoted for a message, cut to its first 120 characters.
fn shorten(expression: &str) -> String {
    const KEEP: usize = 120;
    match expression.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{:?}…", &expression[..at]),
        None => format!("{expression:?}"),
    }
}

/// Runs `f` on a scoped thread with a [`BIG_STACK`]-byte stack.
fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("cel".into())
            .stack_size(BIG_STACK)
            .spawn_scoped(scope, f)
            .map_err(|e| format!("internal error: cannot start a thread to run CEL: {e}"))?;
        handle.join().map_err(|_| "internal error: the CEL thread panicked".to_string())
    })
}

// ---------------------------------------------------------------------------------------------
// The environment.

/// The process's one DRA environment.
fn env() -> Result<&'static Arc<Env>, CelError> {
    static ENV: OnceLock<Result<Arc<Env>, String>> = OnceLock::new();
    match ENV.get_or_init(|| build_env().map(Arc::new).map_err(|e| e.to_string())) {
        Ok(env) => Ok(env),
        Err(e) => Err(CelError(format!("internal error building the CEL environment: {e}"))),
    }
}

fn build_env() -> Result<Env, DeclarationError> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)?;
    env.add_macro(Macro::receiver("bind", 3, bind_macro))?;

    let quantity = || QUANTITY_TYPE.to_owned();
    let semver = || SEMVER_TYPE.to_owned();
    let string = || cel::common::types::STRING_TYPE;
    let boolean = || cel::common::types::BOOL_TYPE;

    env.add_overload("quantity", "string_to_quantity", vec![string()], quantity_of_string)?;
    env.add_overload("isQuantity", "is_quantity_string", vec![string()], is_quantity)?;
    env.add_member_overload("compareTo", "quantity_compare_to", quantity(), vec![quantity()], quantity_compare)?;
    env.add_member_overload(
        "isGreaterThan",
        "quantity_is_greater_than",
        quantity(),
        vec![quantity()],
        quantity_greater,
    )?;
    env.add_member_overload("isLessThan", "quantity_is_less_than", quantity(), vec![quantity()], quantity_less)?;
    env.add_member_overload("add", "quantity_add", quantity(), vec![quantity()], quantity_add)?;
    env.add_member_overload("add", "quantity_add_int", quantity(), vec![INT_TYPE], quantity_add)?;
    env.add_member_overload("sub", "quantity_sub", quantity(), vec![quantity()], quantity_sub)?;
    env.add_member_overload("sub", "quantity_sub_int", quantity(), vec![INT_TYPE], quantity_sub)?;
    env.add_member_overload("mul", "quantity_multiply_int", quantity(), vec![INT_TYPE], quantity_mul)?;
    env.add_member_overload("sign", "quantity_sign_member", quantity(), vec![], quantity_sign)?;
    env.add_overload("sign", "quantity_sign", vec![quantity()], quantity_sign)?;
    env.add_member_overload("isInteger", "quantity_is_integer", quantity(), vec![], quantity_is_integer)?;
    env.add_member_overload("asInteger", "quantity_get_int", quantity(), vec![], quantity_as_integer)?;
    env.add_member_overload("asApproximateFloat", "quantity_get_float", quantity(), vec![], quantity_as_float)?;

    env.add_overload("semver", "string_to_semver", vec![string()], semver_of_string)?;
    env.add_overload("semver", "string_bool_to_semver", vec![string(), boolean()], semver_of_string)?;
    env.add_overload("isSemver", "is_semver_string", vec![string()], is_semver)?;
    env.add_overload("isSemver", "is_semver_string_bool", vec![string(), boolean()], is_semver)?;
    env.add_member_overload("compareTo", "semver_compare_to", semver(), vec![semver()], semver_compare)?;
    env.add_member_overload("isGreaterThan", "semver_is_greater_than", semver(), vec![semver()], semver_greater)?;
    env.add_member_overload("isLessThan", "semver_is_less_than", semver(), vec![semver()], semver_less)?;
    env.add_member_overload("major", "semver_major", semver(), vec![], semver_major)?;
    env.add_member_overload("minor", "semver_minor", semver(), vec![], semver_minor)?;
    env.add_member_overload("patch", "semver_patch", semver(), vec![], semver_patch)?;

    env.add_overload(COST_FN, "cost_dyn", vec![DYN_TYPE], cost)?;
    env.add_member_overload(REPLACE_FN, "replace_3", DYN_TYPE, vec![DYN_TYPE, DYN_TYPE], guarded_replace)?;
    env.add_member_overload(REPLACE_FN, "replace_4", DYN_TYPE, vec![DYN_TYPE, DYN_TYPE, DYN_TYPE], guarded_replace)?;
    env.add_member_overload(JOIN_FN, "join_0", DYN_TYPE, vec![], guarded_join)?;
    env.add_member_overload(JOIN_FN, "join_1", DYN_TYPE, vec![DYN_TYPE], guarded_join)?;
    env.add_member_overload(MATCHES_FN, "matches_member", DYN_TYPE, vec![DYN_TYPE], cached_matches)?;
    env.add_overload(MATCHES_FN, "matches_global", vec![DYN_TYPE, DYN_TYPE], cached_matches)?;
    Ok(env)
}

/// `cel.bind(name, value, body)`: `body` with `name` bound to `value`, evaluated once. Expands,
/// as cel-go's, to a comprehension over nothing whose accumulator is the variable.
fn bind_macro(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, ParseError> {
    if !matches!(target.as_ref().map(|t| &t.expr), Some(Expr::Ident(name)) if name == "cel") {
        return Ok(None);
    }
    let var = match args.first().map(|arg| (&arg.expr, arg.id)) {
        Some((Expr::Ident(name), _)) => name.clone(),
        other => {
            let id = other.map_or(0, |(_, id)| id);
            return Err(helper.new_error(id, "cel.bind() variable name must be a simple identifier"));
        }
    };
    let body = args.pop().unwrap_or_default();
    let init = args.pop().unwrap_or_default();
    let iter_range = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
    let loop_cond = helper.next_expr(Expr::Literal(LiteralValue::Boolean(CelBool::from(false))));
    let loop_step = helper.next_expr(Expr::Ident(var.clone()));
    let bind = ComprehensionExpr {
        iter_range,
        iter_var: "#unused".to_string(),
        iter_var2: None,
        accu_var: var,
        accu_init: init,
        loop_cond,
        loop_step,
        result: body,
    };
    Ok(Some(helper.next_expr(Expr::Comprehension(Box::new(bind)))))
}

// ---------------------------------------------------------------------------------------------
// Compiling.

/// The rewritten expression, ready to evaluate.
struct Program {
    expr: IdedExpr,
    env: Arc<Env>,
    /// Shallow enough to evaluate on the caller's thread.
    inline: bool,
}

impl Program {
    /// Parses, checks and rewrites `source`. Recursive throughout: runs on a big stack.
    fn compile(env: &Arc<Env>, source: &str) -> Result<Program, String> {
        let (parsed, source_info) =
            env.parser().parse_with_source_info(source).map_err(|errors| format!("compilation failed: {errors}"))?;
        let nesting = depth(&parsed);
        if nesting > MAX_NESTING_DEPTH {
            return Err(format!(
                "compilation failed: the expression nests {nesting} levels deep, more than the {MAX_NESTING_DEPTH} allowed"
            ));
        }
        let mut checker = Checker {
            env,
            probe: Context::with_env(Arc::clone(env)),
            source: &source_info,
            bound: Vec::new(),
            qualified_calls: HashSet::new(),
            declared: HashMap::new(),
        };
        let ty = checker.check(&parsed).map_err(|e| format!("compilation failed: {e}"))?;
        if !matches!(ty, Ty::Bool | Ty::Dyn) {
            return Err(format!("compilation failed: must evaluate to bool, not {}", ty.name()));
        }
        let mut rewriter =
            Rewriter { next_id: max_id(&parsed) + 1, bound: Vec::new(), qualified_calls: checker.qualified_calls };
        let expr = rewriter.expr(parsed);
        let inline = depth(&expr) <= INLINE_DEPTH;
        Ok(Program { expr, env: Arc::clone(env), inline })
    }

    /// Evaluates against `device`, with a fresh cost budget.
    fn run(&self, device: &Device) -> Result<bool, String> {
        let resolver = DeviceResolver { device: DeviceVal { device } };
        let mut ctx = Context::with_env(Arc::clone(&self.env));
        ctx.set_variable_resolver(&resolver);
        BUDGET.with(|b| b.set((MAX_COST, false)));
        let result = Value::resolve_val(&self.expr, &ctx).map(|value| match value.downcast_ref::<CelBool>() {
            Some(b) => Ok(*b.inner()),
            None => Err(format!("must evaluate to bool, not {}", value.get_type().name())),
        });
        let exceeded = BUDGET.with(|b| b.replace((u64::MAX, false)).1);
        if exceeded {
            return Err(format!("operation cancelled: actual cost limit exceeded (more than {MAX_COST} units)"));
        }
        result.map_err(describe).and_then(|verdict| verdict)
    }
}

/// An evaluation error as upstream words the common ones.
fn describe(error: ExecutionError) -> String {
    match error {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::FunctionError { function, message } if message.starts_with(&function) => message,
        ExecutionError::FunctionError { function, message } => format!("{function}: {message}"),
        other => other.to_string(),
    }
}

/// Depth of the tree (the parser's `&&`/`||` chains are already balanced).
fn depth(e: &IdedExpr) -> usize {
    1 + children(e).into_iter().map(depth).max().unwrap_or(0)
}

fn max_id(e: &IdedExpr) -> u64 {
    children(e).into_iter().map(max_id).fold(e.id, u64::max)
}

fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => Vec::new(),
        Expr::Call(call) => call.target.as_deref().into_iter().chain(call.args.iter()).collect(),
        Expr::Comprehension(c) => vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::Struct(s) => s
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
    }
}

/// What the checker knows of an expression's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    List,
    Map,
    Type,
    Optional,
    Quantity,
    Semver,
    /// `device`.
    Device,
    /// `device.attributes`.
    Attributes,
    /// `device.capacity`.
    Capacity,
    /// `device.attributes[domain]`.
    AttrDomain,
    /// `device.capacity[domain]`.
    CapDomain,
    /// Not known until evaluated.
    Dyn,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Uint => "uint",
            Ty::Double => "double",
            Ty::String => "string",
            Ty::Bytes => "bytes",
            Ty::Null => "null_type",
            Ty::List => "list",
            Ty::Map | Ty::Attributes | Ty::Capacity | Ty::AttrDomain | Ty::CapDomain => "map",
            Ty::Type => "type",
            Ty::Optional => "optional_type",
            Ty::Quantity => "kubernetes.Quantity",
            Ty::Semver => "kubernetes.Semver",
            Ty::Device => "kubernetes.DRADevice",
            Ty::Dyn => "dyn",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// The type as equality and arithmetic see it: all maps alike.
    fn family(self) -> Ty {
        match self {
            Ty::Attributes | Ty::Capacity | Ty::AttrDomain | Ty::CapDomain => Ty::Map,
            other => other,
        }
    }
}

/// The fields of `device` and their types.
fn device_field(field: &str) -> Option<Ty> {
    match field {
        "driver" => Some(Ty::String),
        "attributes" => Some(Ty::Attributes),
        "capacity" => Some(Ty::Capacity),
        "allowMultipleAllocations" => Some(Ty::Bool),
        _ => None,
    }
}

/// Result types of the functions whose result is evident from their name.
fn function_result(name: &str, receiver: Option<Ty>) -> Ty {
    match name {
        "quantity" => Ty::Quantity,
        "semver" => Ty::Semver,
        "isQuantity" | "isSemver" | "isGreaterThan" | "isLessThan" | "isInteger" | "contains" | "startsWith"
        | "endsWith" | "matches" | "hasValue" | "bool" => Ty::Bool,
        "compareTo" | "asInteger" | "sign" | "major" | "minor" | "patch" | "size" | "int" | "indexOf"
        | "lastIndexOf" => Ty::Int,
        "asApproximateFloat" | "double" => Ty::Double,
        "uint" => Ty::Uint,
        "bytes" => Ty::Bytes,
        "string" | "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "charAt" | "join" | "format"
        | "strings.quote" => Ty::String,
        "reverse" if receiver == Some(Ty::String) => Ty::String,
        "split" => Ty::List,
        "type" => Ty::Type,
        "add" | "sub" | "mul" if receiver == Some(Ty::Quantity) => Ty::Quantity,
        "optional.of" | "optional.none" | "optional.ofNonZeroValue" => Ty::Optional,
        _ => Ty::Dyn,
    }
}

/// Methods only quantities and versions have, with the receivers that have them.
fn library_method(name: &str) -> Option<&'static [Ty]> {
    match name {
        "compareTo" | "isGreaterThan" | "isLessThan" => Some(&[Ty::Quantity, Ty::Semver]),
        "add" | "sub" | "mul" | "sign" | "isInteger" | "asInteger" | "asApproximateFloat" => Some(&[Ty::Quantity]),
        "major" | "minor" | "patch" => Some(&[Ty::Semver]),
        _ => None,
    }
}

/// Walks the parsed expression: variables and functions declared, `device`'s fields known,
/// operators applied to types they accept, and the result type where evident.
struct Checker<'a> {
    env: &'a Env,
    /// A context of the environment, to ask whether a function name is declared.
    probe: Context<'static, 'static>,
    source: &'a SourceInfo,
    /// Comprehension and `cel.bind` variables in scope, innermost last.
    bound: Vec<String>,
    /// Calls whose target spells a namespace (`strings.quote(…)`), which the rewriting keeps.
    qualified_calls: HashSet<u64>,
    declared: HashMap<String, bool>,
}

impl Checker<'_> {
    /// `message`, prefixed with where node `id` was written.
    fn at(&self, id: u64, message: impl fmt::Display) -> String {
        match self.source.offset_for(id) {
            Some((start, _)) => {
                let before: String = self.source.source.chars().take(start as usize).collect();
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("<input>:{line}:{column}: {message}")
            }
            None => message.to_string(),
        }
    }

    fn is_declared(&mut self, function: &str) -> bool {
        if let Some(&known) = self.declared.get(function) {
            return known;
        }
        // Adding a function to a context fails exactly when the environment declares it.
        let known = self.probe.add_function(function, |b: bool| b).is_err();
        self.declared.insert(function.to_string(), known);
        known
    }

    fn is_bound(&self, name: &str) -> bool {
        self.bound.iter().any(|b| b == name)
    }

    /// The dotted name `e` spells, if it is an unbound identifier with fields selected.
    fn free_name(&self, e: &IdedExpr) -> Option<String> {
        match &e.expr {
            Expr::Ident(name) if !self.is_bound(name) => Some(name.clone()),
            Expr::Select(s) if !s.test => self.free_name(&s.operand).map(|root| format!("{root}.{}", s.field)),
            _ => None,
        }
    }

    fn no_overload(&self, id: u64, function: &str, operands: &[Ty]) -> String {
        let types: Vec<&str> = operands.iter().map(|t| t.name()).collect();
        self.at(id, format!("found no matching overload for '{function}' applied to '({})'", types.join(", ")))
    }

    /// A literal pattern must compile (upstream validates regex literals).
    fn check_pattern(&self, pattern: Option<&IdedExpr>) -> Result<(), String> {
        match pattern {
            Some(IdedExpr { id, expr: Expr::Literal(LiteralValue::String(p)) }) => {
                with_regex(p.inner(), |_| ()).map_err(|e| self.at(*id, e))
            }
            _ => Ok(()),
        }
    }

    fn check(&mut self, e: &IdedExpr) -> Result<Ty, String> {
        match &e.expr {
            Expr::Unspecified => Err(self.at(e.id, "invalid expression")),
            Expr::Literal(literal) => Ok(match literal {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            }),
            Expr::Ident(name) => {
                if self.is_bound(name) {
                    Ok(Ty::Dyn)
                } else if name == "device" {
                    Ok(Ty::Device)
                } else if self.env.types().find_type(name).is_some() {
                    Ok(Ty::Type)
                } else {
                    Err(self.at(e.id, format!("undeclared reference to '{name}'")))
                }
            }
            Expr::Select(select) => self.select(e.id, select),
            Expr::Call(call) => self.call(e.id, call),
            Expr::List(list) => {
                for element in &list.elements {
                    self.check(element)?;
                }
                Ok(Ty::List)
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(MapEntryExpr { key, value, .. }) => {
                            self.check(key)?;
                            self.check(value)?;
                        }
                        EntryExpr::StructField(StructFieldExpr { value, .. }) => {
                            self.check(value)?;
                        }
                    }
                }
                Ok(Ty::Map)
            }
            Expr::Struct(s) => Err(self.at(e.id, format!("undeclared reference to message type '{}'", s.type_name))),
            Expr::Comprehension(c) => {
                self.check(&c.iter_range)?;
                let accu = self.check(&c.accu_init)?;
                let scope = self.bound.len();
                self.bound.push(c.iter_var.clone());
                if let Some(second) = &c.iter_var2 {
                    self.bound.push(second.clone());
                }
                self.bound.push(c.accu_var.clone());
                let checked = (|| {
                    self.check(&c.loop_cond)?;
                    self.check(&c.loop_step)?;
                    let result = self.check(&c.result)?;
                    Ok(match &c.result.expr {
                        Expr::Ident(name) if *name == c.accu_var => accu,
                        _ => result,
                    })
                })();
                self.bound.truncate(scope);
                checked
            }
        }
    }

    fn select(&mut self, id: u64, select: &SelectExpr) -> Result<Ty, String> {
        let operand = self.check(&select.operand)?;
        let field = select.field.as_str();
        let ty = match operand {
            Ty::Device => device_field(field).ok_or_else(|| {
                self.at(
                    id,
                    format!(
                        "undefined field '{field}' (a device has driver, attributes, capacity and allowMultipleAllocations)"
                    ),
                )
            })?,
            Ty::Attributes => Ty::AttrDomain,
            Ty::Capacity => Ty::CapDomain,
            Ty::CapDomain => Ty::Quantity,
            Ty::Map | Ty::AttrDomain | Ty::Dyn | Ty::Optional => Ty::Dyn,
            other => return Err(self.at(id, format!("type '{}' does not support field selection", other.name()))),
        };
        Ok(if select.test { Ty::Bool } else { ty })
    }

    fn call(&mut self, id: u64, call: &CallExpr) -> Result<Ty, String> {
        let name = call.func_name.as_str();
        if call.target.is_none() && is_operator(name) {
            let operands = call.args.iter().map(|arg| self.check(arg)).collect::<Result<Vec<_>, _>>()?;
            return self.operator(id, name, &operands, call);
        }
        if let Some(target) = &call.target {
            if let Some(namespace) = self.free_name(target) {
                let qualified = format!("{namespace}.{name}");
                if self.is_declared(&qualified) {
                    self.qualified_calls.insert(id);
                    for arg in &call.args {
                        self.check(arg)?;
                    }
                    return Ok(function_result(&qualified, None));
                }
            }
            let receiver = self.check(target)?;
            let args = call.args.iter().map(|arg| self.check(arg)).collect::<Result<Vec<_>, _>>()?;
            if !self.is_declared(name) {
                return Err(self.at(id, format!("undeclared reference to '{name}'")));
            }
            if name == "matches" {
                self.check_pattern(call.args.first())?;
            }
            if let Some(receivers) = library_method(name) {
                let known_wrong = receiver != Ty::Dyn && !receivers.contains(&receiver);
                let wrong_arg = match (receiver, name, args.first()) {
                    (Ty::Quantity | Ty::Semver, "compareTo" | "isGreaterThan" | "isLessThan", Some(&arg)) => {
                        arg != Ty::Dyn && arg != receiver
                    }
                    (Ty::Quantity, "add" | "sub", Some(&arg)) => !matches!(arg, Ty::Dyn | Ty::Quantity | Ty::Int),
                    (Ty::Quantity, "mul", Some(&arg)) => !matches!(arg, Ty::Dyn | Ty::Int),
                    _ => false,
                };
                if known_wrong || wrong_arg {
                    let types: Vec<&str> = args.iter().map(|t| t.name()).collect();
                    return Err(self.at(
                        id,
                        format!(
                            "found no matching overload for '{name}' applied to '{}.({})'",
                            receiver.name(),
                            types.join(", ")
                        ),
                    ));
                }
            }
            return Ok(function_result(name, Some(receiver)));
        }
        let args = call.args.iter().map(|arg| self.check(arg)).collect::<Result<Vec<_>, _>>()?;
        if !self.is_declared(name) {
            return Err(self.at(id, format!("undeclared reference to '{name}'")));
        }
        if name == "matches" {
            self.check_pattern(call.args.get(1))?;
        }
        let wrong = match (name, args.as_slice()) {
            ("quantity" | "isQuantity" | "semver" | "isSemver", [first, ..]) => !matches!(first, Ty::Dyn | Ty::String),
            _ => false,
        };
        if wrong {
            return Err(self.no_overload(id, name, &args));
        }
        Ok(function_result(name, None))
    }

    fn operator(&mut self, id: u64, name: &str, operands: &[Ty], call: &CallExpr) -> Result<Ty, String> {
        let known = |t: &Ty| *t != Ty::Dyn;
        match (name, operands) {
            ("_&&_" | "_||_", [l, r]) => {
                if [l, r].iter().any(|t| known(t) && **t != Ty::Bool) {
                    return Err(self.no_overload(id, name, operands));
                }
                Ok(Ty::Bool)
            }
            ("!_", [t]) => {
                if known(t) && *t != Ty::Bool {
                    return Err(self.no_overload(id, name, operands));
                }
                Ok(Ty::Bool)
            }
            ("@not_strictly_false", _) => Ok(Ty::Bool),
            ("_?_:_", [cond, yes, no]) => {
                if known(cond) && *cond != Ty::Bool {
                    return Err(self.no_overload(id, name, operands));
                }
                Ok(if yes.family() == no.family() { *yes } else { Ty::Dyn })
            }
            ("_==_" | "_!=_", [l, r]) => {
                let (l, r) = (l.family(), r.family());
                let library = |t: Ty| matches!(t, Ty::Quantity | Ty::Semver);
                if known(&l) && known(&r) && l != r && (library(l) || library(r)) {
                    return Err(self.no_overload(id, name, operands));
                }
                Ok(Ty::Bool)
            }
            ("_<_" | "_<=_" | "_>_" | "_>=_", [l, r]) => {
                let orderable =
                    |t: &Ty| matches!(t, Ty::Bool | Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Bytes | Ty::Dyn);
                let compatible = !known(l) || !known(r) || l == r || (l.numeric() && r.numeric());
                if !orderable(l) || !orderable(r) || !compatible {
                    return Err(self.no_overload(id, name, operands));
                }
                Ok(Ty::Bool)
            }
            ("_+_", [l, r]) => {
                let addable =
                    |t: &Ty| matches!(t, Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Bytes | Ty::List | Ty::Dyn);
                if !addable(l) || !addable(r) || (known(l) && known(r) && l != r) {
                    return Err(self.no_overload(id, name, operands));
                }
                Ok(if known(l) { *l } else { *r })
            }
            ("_-_" | "_*_" | "_/_" | "_%_", [l, r]) => {
                let arithmetic = |t: &Ty| t.numeric() || *t == Ty::Dyn;
                if !arithmetic(l) || !arithmetic(r) || (known(l) && known(r) && l != r) {
                    return Err(self.no_overload(id, name, operands));
                }
                Ok(if known(l) { *l } else { *r })
            }
            ("-_", [t]) => {
                if known(t) && !matches!(t, Ty::Int | Ty::Double) {
                    return Err(self.no_overload(id, name, operands));
                }
                Ok(*t)
            }
            ("@in", [_, container]) => {
                if known(container) && !matches!(container.family(), Ty::List | Ty::Map) {
                    return Err(self.no_overload(id, name, operands));
                }
                Ok(Ty::Bool)
            }
            ("_[_]" | "_[?_]", [container, key]) => {
                let optional = name == "_[?_]";
                let ty = match container {
                    Ty::Device => match call.args.get(1).map(|k| &k.expr) {
                        Some(Expr::Literal(LiteralValue::String(field))) => device_field(field.inner())
                            .ok_or_else(|| self.at(id, format!("undefined field '{}'", field.inner())))?,
                        _ => Ty::Dyn,
                    },
                    Ty::Attributes => Ty::AttrDomain,
                    Ty::Capacity => Ty::CapDomain,
                    Ty::CapDomain => Ty::Quantity,
                    Ty::List | Ty::Map | Ty::AttrDomain | Ty::Dyn | Ty::Optional => Ty::Dyn,
                    _ => return Err(self.no_overload(id, name, &[*container, *key])),
                };
                Ok(if optional { Ty::Optional } else { ty })
            }
            ("_?._", _) => Ok(Ty::Optional),
            _ => Ok(Ty::Dyn),
        }
    }
}

/// Operators and the interpreter's own functions: never looked up as declared functions.
fn is_operator(name: &str) -> bool {
    name.starts_with('@')
        || matches!(
            name,
            "_&&_"
                | "_||_"
                | "!_"
                | "-_"
                | "_?_:_"
                | "_==_"
                | "_!=_"
                | "_<_"
                | "_<=_"
                | "_>_"
                | "_>=_"
                | "_+_"
                | "_-_"
                | "_*_"
                | "_/_"
                | "_%_"
                | "_[_]"
                | "_[?_]"
                | "_?._"
        )
}

/// Rewrites the checked expression so that evaluating it charges the budget (see the module
/// documentation), keeping the shapes the interpreter recognises in comprehensions (`all`/
/// `exists` folds and `map`/`filter` appends) so that it still runs them its fast way.
struct Rewriter {
    next_id: u64,
    bound: Vec<String>,
    qualified_calls: HashSet<u64>,
}

impl Rewriter {
    fn node(&mut self, expr: Expr) -> IdedExpr {
        let id = self.next_id;
        self.next_id += 1;
        IdedExpr { id, expr }
    }

    /// `@cost(e)`, unless `e` is one already.
    fn charge(&mut self, e: IdedExpr) -> IdedExpr {
        if matches!(&e.expr, Expr::Call(call) if call.func_name == COST_FN) {
            return e;
        }
        self.node(Expr::Call(CallExpr { func_name: COST_FN.to_string(), target: None, args: vec![e] }))
    }

    fn is_bound(&self, name: &str) -> bool {
        self.bound.iter().any(|b| b == name)
    }

    /// Whether `e` reads the device in place: an unbound identifier, fields of one, or one
    /// of those indexed by a literal. Evaluating those allocates nothing worth charging.
    fn reads_device(&self, e: &IdedExpr) -> bool {
        match &e.expr {
            Expr::Ident(name) => !self.is_bound(name),
            Expr::Select(s) => !s.test && self.reads_device(&s.operand),
            Expr::Call(call) if call.func_name == "_[_]" && call.target.is_none() => match call.args.as_slice() {
                [container, key] => matches!(key.expr, Expr::Literal(_)) && self.reads_device(container),
                _ => false,
            },
            _ => false,
        }
    }

    fn exprs(&mut self, es: Vec<IdedExpr>) -> Vec<IdedExpr> {
        es.into_iter().map(|e| self.expr(e)).collect()
    }

    fn expr(&mut self, e: IdedExpr) -> IdedExpr {
        if self.reads_device(&e) {
            return e;
        }
        let IdedExpr { id, expr } = e;
        match expr {
            Expr::Unspecified | Expr::Literal(_) => IdedExpr { id, expr },
            Expr::Ident(name) => {
                let bound = self.is_bound(&name);
                let ident = IdedExpr { id, expr: Expr::Ident(name) };
                if bound { self.charge(ident) } else { ident }
            }
            Expr::Select(SelectExpr { operand, field, test }) => {
                let operand = Box::new(self.expr(*operand));
                let select = IdedExpr { id, expr: Expr::Select(SelectExpr { operand, field, test }) };
                if test { select } else { self.charge(select) }
            }
            Expr::Call(call) => {
                let call = self.call(id, call);
                self.charge(IdedExpr { id, expr: Expr::Call(call) })
            }
            Expr::List(ListExpr { elements, optional_indices }) => {
                let elements = self.exprs(elements);
                self.charge(IdedExpr { id, expr: Expr::List(ListExpr { elements, optional_indices }) })
            }
            Expr::Map(mut map) => {
                map.entries = map
                    .entries
                    .into_iter()
                    .map(|mut entry| {
                        entry.expr = match entry.expr {
                            EntryExpr::MapEntry(MapEntryExpr { key, value, optional }) => {
                                EntryExpr::MapEntry(MapEntryExpr {
                                    key: self.expr(key),
                                    value: self.expr(value),
                                    optional,
                                })
                            }
                            EntryExpr::StructField(mut f) => {
                                f.value = self.expr(f.value);
                                EntryExpr::StructField(f)
                            }
                        };
                        entry
                    })
                    .collect();
                self.charge(IdedExpr { id, expr: Expr::Map(map) })
            }
            Expr::Struct(s) => IdedExpr { id, expr: Expr::Struct(s) },
            Expr::Comprehension(c) => {
                let c = self.comprehension(*c);
                IdedExpr { id, expr: Expr::Comprehension(Box::new(c)) }
            }
        }
    }

    fn call(&mut self, id: u64, call: CallExpr) -> CallExpr {
        let CallExpr { mut func_name, target, args } = call;
        let target = match target {
            Some(t) if self.qualified_calls.contains(&id) => Some(t),
            Some(t) => Some(Box::new(self.expr(*t))),
            None => None,
        };
        if target.is_some() && !self.qualified_calls.contains(&id) {
            match (func_name.as_str(), args.len()) {
                ("replace", 2 | 3) => func_name = REPLACE_FN.to_string(),
                ("join", 0 | 1) => func_name = JOIN_FN.to_string(),
                ("matches", 1) => func_name = MATCHES_FN.to_string(),
                _ => {}
            }
        } else if target.is_none() && func_name == "matches" && args.len() == 2 {
            func_name = MATCHES_FN.to_string();
        }
        let args = self.exprs(args);
        CallExpr { func_name, target, args }
    }

    fn comprehension(&mut self, c: ComprehensionExpr) -> ComprehensionExpr {
        let ComprehensionExpr { iter_range, iter_var, iter_var2, accu_var, accu_init, loop_cond, loop_step, result } =
            c;
        let iter_range = self.expr(iter_range);
        let iter_range = self.charge(iter_range);
        let accu_init = self.expr(accu_init);
        let scope = self.bound.len();
        self.bound.push(iter_var.clone());
        if let Some(second) = &iter_var2 {
            self.bound.push(second.clone());
        }
        self.bound.push(accu_var.clone());
        let loop_step = self.loop_step(loop_step, &accu_var);
        let result = if is_ident(&result, &accu_var) { result } else { self.expr(result) };
        self.bound.truncate(scope);
        ComprehensionExpr { iter_range, iter_var, iter_var2, accu_var, accu_init, loop_cond, loop_step, result }
    }

    /// A loop step, keeping `@result && x`, `@result || x`, `@result + [x]` and
    /// `c ? @result + [x] : @result` as they are around their rewritten parts.
    fn loop_step(&mut self, step: IdedExpr, accu: &str) -> IdedExpr {
        let IdedExpr { id, expr } = step;
        match expr {
            Expr::Call(CallExpr { func_name, target: None, mut args })
                if (func_name == "_&&_" || func_name == "_||_") && args.len() == 2 && is_ident(&args[0], accu) =>
            {
                let operand = std::mem::take(&mut args[1]);
                args[1] = self.expr(operand);
                IdedExpr { id, expr: Expr::Call(CallExpr { func_name, target: None, args }) }
            }
            Expr::Call(call) if is_append(&call, accu) => IdedExpr { id, expr: Expr::Call(self.append(call)) },
            Expr::Call(CallExpr { func_name, target: None, mut args })
                if func_name == "_?_:_"
                    && args.len() == 3
                    && is_ident(&args[2], accu)
                    && matches!(&args[1].expr, Expr::Call(inner) if is_append(inner, accu)) =>
            {
                let guard = std::mem::take(&mut args[0]);
                args[0] = self.expr(guard);
                if let Expr::Call(inner) = std::mem::take(&mut args[1].expr) {
                    args[1].expr = Expr::Call(self.append(inner));
                }
                IdedExpr { id, expr: Expr::Call(CallExpr { func_name, target: None, args }) }
            }
            other => self.expr(IdedExpr { id, expr: other }),
        }
    }

    /// `@result + [x, …]`, with every element charged.
    fn append(&mut self, call: CallExpr) -> CallExpr {
        let CallExpr { func_name, target, mut args } = call;
        if let Some(Expr::List(list)) = args.get_mut(1).map(|a| &mut a.expr) {
            let elements = std::mem::take(&mut list.elements);
            list.elements = elements
                .into_iter()
                .map(|e| {
                    let e = self.expr(e);
                    self.charge(e)
                })
                .collect();
        }
        CallExpr { func_name, target, args }
    }
}

fn is_ident(e: &IdedExpr, name: &str) -> bool {
    matches!(&e.expr, Expr::Ident(n) if n == name)
}

fn is_append(call: &CallExpr, accu: &str) -> bool {
    call.func_name == "_+_"
        && call.target.is_none()
        && matches!(call.args.as_slice(), [l, r] if is_ident(l, accu) && matches!(r.expr, Expr::List(_)))
}

// ---------------------------------------------------------------------------------------------
// The cost budget.

thread_local! {
    /// Units left in this thread's evaluation, and whether it ran out.
    static BUDGET: Cell<(u64, bool)> = const { Cell::new((u64::MAX, false)) };
}

/// Takes `units(remaining)` from the budget, or fails (and stays failed) when it is short.
fn spend(units: impl FnOnce(u64) -> u64) -> Result<(), ExecutionError> {
    BUDGET.with(|budget| {
        let (remaining, exceeded) = budget.get();
        if exceeded {
            return Err(cost_exceeded());
        }
        let units = units(remaining);
        if units > remaining {
            budget.set((0, true));
            Err(cost_exceeded())
        } else {
            budget.set((remaining - units, false));
            Ok(())
        }
    })
}

fn cost_exceeded() -> ExecutionError {
    ExecutionError::function_error("cost", "operation cancelled: actual cost limit exceeded")
}

/// `@cost(x)`: charges for `x`, and is `x`.
fn cost<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let Some(value) = args.into_iter().next() else {
        return Err(ExecutionError::invalid_argument_count(1, 0));
    };
    spend(|remaining| 1 + size_units(&*value, remaining, 0))?;
    Ok(value)
}

/// What holding `v` costs beyond its one unit: a tenth per byte of strings, one per element of
/// lists and maps (and what they hold), counted no further than `limit`.
fn size_units(v: &dyn Val, limit: u64, depth: u32) -> u64 {
    match v.get_type().kind() {
        Kind::String => v.downcast_ref::<CelString>().map_or(0, |s| s.inner().len() as u64 / 10),
        Kind::Bytes => v.downcast_ref::<CelBytes>().map_or(0, |b| b.inner().len() as u64 / 10),
        Kind::List | Kind::Map => {
            let shallow = || v.as_sizer().map_or(0, |s| u64::try_from(*s.size().inner()).unwrap_or(0));
            if depth > 16 {
                return shallow();
            }
            let mut total = 0u64;
            if let Some(list) = v.downcast_ref::<CelList>() {
                for item in list.inner() {
                    total = total.saturating_add(1 + size_units(item.as_ref(), limit, depth + 1));
                    if total > limit {
                        break;
                    }
                }
            } else if let Some(map) = v.downcast_ref::<CelMap>() {
                for (key, value) in map.inner() {
                    total = total.saturating_add(
                        1 + size_units(key.inner(), limit, depth + 1) + size_units(value.as_ref(), limit, depth + 1),
                    );
                    if total > limit {
                        break;
                    }
                }
            } else {
                // The device's own maps: small, and read in place.
                total = shallow();
            }
            total
        }
        _ => 0,
    }
}

/// `s.replace(old, new[, n])` of the strings extension, refusing to build a string larger than
/// the budget allows.
fn guarded_replace<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let strings: Vec<Option<&str>> =
        args.iter().take(3).map(|a| a.downcast_ref::<CelString>().map(|s| s.inner())).collect();
    let limit = match args.get(3) {
        None => None,
        Some(n) => match n.downcast_ref::<CelInt>() {
            Some(n) => usize::try_from(*n.inner()).ok(),
            None => return Err(overload_error("replace", &args)),
        },
    };
    let (s, old, new) = match strings.as_slice() {
        [Some(s), Some(old), Some(new)] => (*s, *old, *new),
        _ => return Err(overload_error("replace", &args)),
    };
    let found = if old.is_empty() { s.chars().count() + 1 } else { s.matches(old).count() };
    let replaced = limit.map_or(found, |l| found.min(l));
    let size = s.len().saturating_add(replaced.saturating_mul(new.len())).saturating_sub(replaced * old.len());
    spend(|_| size as u64 / 10)?;
    let out = match limit {
        Some(l) => s.replacen(old, new, l),
        None => s.replace(old, new),
    };
    Ok(CowVal::owned(CelString::from(out)))
}

/// `list.join([separator])` of the strings extension, refusing to build a string larger than
/// the budget allows.
fn guarded_join<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let separator = match args.get(1) {
        None => "",
        Some(sep) => match sep.downcast_ref::<CelString>() {
            Some(sep) => sep.inner(),
            None => return Err(overload_error("join", &args)),
        },
    };
    let Some(list) = args.first().filter(|l| l.get_type().kind() == Kind::List).and_then(|l| l.as_iterable()) else {
        return Err(overload_error("join", &args));
    };
    let mut parts = Vec::new();
    let mut items = list.iter();
    while let Some(item) = items.next() {
        match item.downcast_ref::<CelString>() {
            Some(s) => parts.push(s.inner()),
            None => {
                return Err(ExecutionError::function_error(
                    "join",
                    format!("join: list element is a {}, not a string", item.get_type().name()),
                ));
            }
        }
    }
    let size = parts
        .iter()
        .map(|p| p.len())
        .sum::<usize>()
        .saturating_add(separator.len().saturating_mul(parts.len().saturating_sub(1)));
    spend(|_| size as u64 / 10)?;
    Ok(CowVal::owned(CelString::from(parts.join(separator))))
}

/// `s.matches(re)` and `matches(s, re)`: whether the RE2 pattern matches anywhere in `s`.
fn cached_matches<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (text, pattern) = (string_arg(&args, 0, "matches")?, string_arg(&args, 1, "matches")?);
    with_regex(pattern, |re| re.is_match(text)).map(bool_val).map_err(|e| ExecutionError::function_error("matches", e))
}

/// Runs `f` with `pattern` compiled, compiling it only the first time it is seen.
fn with_regex<T>(pattern: &str, f: impl FnOnce(&regex::Regex) -> T) -> Result<T, String> {
    type Patterns = RwLock<HashMap<String, Result<regex::Regex, String>>>;
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(Patterns::default);
    if let Some(compiled) = patterns.read().get(pattern) {
        return compiled.as_ref().map(f).map_err(Clone::clone);
    }
    let compiled = regex::Regex::new(pattern).map_err(|e| format!("'{pattern}' not a valid regex: {e}"));
    let result = compiled.as_ref().map(f).map_err(Clone::clone);
    let mut patterns = patterns.write();
    if patterns.len() >= MAX_CACHED_PATTERNS {
        patterns.clear();
    }
    patterns.insert(pattern.to_string(), compiled);
    result
}

fn overload_error(function: &str, args: &[CowVal<'_, '_>]) -> ExecutionError {
    ExecutionError::no_such_member_overload(function, args.iter().map(|a| a.get_type().name().to_string()).collect())
}

// ---------------------------------------------------------------------------------------------
// The device, as CEL reads it: views of the model, nothing copied.

/// Answers `device` with the device being evaluated.
struct DeviceResolver<'d> {
    device: DeviceVal<'d>,
}

impl VariableResolver for DeviceResolver<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        (variable == "device").then_some(CowVal::Borrowed(&self.device))
    }
}

static DEVICE_TYPE: Type = Type::new_unspecified_type("kubernetes.DRADevice");

/// `device`.
#[derive(Clone, Copy, Debug)]
struct DeviceVal<'d> {
    device: &'d Device,
}

impl Val for DeviceVal<'_> {
    fn get_type(&self) -> &Type {
        &DEVICE_TYPE
    }

    fn cel_type() -> &'static Type {
        &DEVICE_TYPE
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    /// An evaluation sees one device: `device == device`.
    fn equals(&self, other: &dyn Val) -> bool {
        std::ptr::eq(other.get_type(), &DEVICE_TYPE)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(*self)
    }
}

impl<'d> Indexer for DeviceVal<'d> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let field = key_of(idx)?;
        let device = self.device;
        Ok(match field {
            "driver" => CowVal::owned(CelString::from(device.driver.as_str())),
            "attributes" => CowVal::owned(Domains::new(device, Part::Attributes)),
            "capacity" => CowVal::owned(Domains::new(device, Part::Capacity)),
            "allowMultipleAllocations" => CowVal::owned(CelBool::from(device.allow_multiple_allocations)),
            other => return Err(ExecutionError::no_such_key(other)),
        })
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

/// A map key or field name, which must be a string.
fn key_of(idx: &dyn Val) -> Result<&str, ExecutionError> {
    idx.downcast_ref::<CelString>()
        .map(|s| s.inner())
        .ok_or_else(|| ExecutionError::UnexpectedType { got: idx.get_type().name().to_string(), want: "string".into() })
}

/// Which of the device's maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Attributes,
    Capacity,
}

/// The domain and name of a qualified name (`gpu.nvidia.com/model`): split at the last `/`;
/// a name without one is in the driver's domain.
fn split_name<'d>(name: &'d str, driver: &'d str) -> (&'d str, &'d str) {
    name.rsplit_once('/').unwrap_or((driver, name))
}

/// The (domain, name) pairs of the device's attributes or capacities, in the model's order.
fn names<'d>(device: &'d Device, part: Part) -> Box<dyn std::iter::Iterator<Item = (&'d str, &'d str)> + 'd> {
    let driver = device.driver.as_str();
    match part {
        Part::Attributes => Box::new(device.attributes.keys().map(move |k| split_name(k, driver))),
        Part::Capacity => Box::new(device.capacity.keys().map(move |k| split_name(k, driver))),
    }
}

/// `device.attributes` or `device.capacity`: domain → [`Domain`]; an unknown domain is empty.
#[derive(Debug)]
struct Domains<'d> {
    device: &'d Device,
    part: Part,
    /// The distinct domains, for iteration, made on first use.
    keys: OnceLock<Vec<CelString<'d>>>,
}

impl<'d> Domains<'d> {
    fn new(device: &'d Device, part: Part) -> Self {
        Domains { device, part, keys: OnceLock::new() }
    }

    fn keys(&self) -> &[CelString<'d>] {
        self.keys.get_or_init(|| {
            let mut domains: Vec<&'d str> = Vec::new();
            for (domain, _) in names(self.device, self.part) {
                if !domains.contains(&domain) {
                    domains.push(domain);
                }
            }
            domains.into_iter().map(CelString::from).collect()
        })
    }

    /// The device's own spelling of `domain`, if it has any name in it.
    fn find(&self, domain: &str) -> Option<&'d str> {
        names(self.device, self.part).map(|(d, _)| d).find(|d| *d == domain)
    }
}

/// `Val` for a read-only map view of the device (its domains, or one domain's names): a CEL
/// map that indexes, iterates, has a size and compares as maps do; `$clone` makes a copy of
/// `$me`.
macro_rules! map_val {
    ($ty:ident, |$me:ident| $clone:expr) => {
        impl Val for $ty<'_> {
            fn get_type(&self) -> &Type {
                &MAP_TYPE
            }

            fn cel_type() -> &'static Type {
                &MAP_TYPE
            }

            fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
            where
                Self: 'v,
            {
                Some(self)
            }

            fn as_container(&self) -> Option<&dyn Container> {
                Some(self)
            }

            fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
            where
                Self: 'v,
            {
                Some(self)
            }

            fn as_sizer(&self) -> Option<&dyn Sizer> {
                Some(self)
            }

            fn equals(&self, other: &dyn Val) -> bool {
                map_equals(self, other)
            }

            fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
            where
                Self: 'v,
            {
                let $me = self;
                Box::new($clone)
            }
        }
    };
}

map_val!(Domains, |me| Domains::new(me.device, me.part));

impl<'d> Indexer for Domains<'d> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let domain = self.find(key_of(idx)?);
        Ok(CowVal::owned(Domain { device: self.device, part: self.part, domain, keys: OnceLock::new() }))
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Container for Domains<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(self.find(key_of(value)?).is_some())
    }
}

impl Sizer for Domains<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(i64::try_from(self.keys().len()).unwrap_or(i64::MAX))
    }
}

impl<'d> Iterable for Domains<'d> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn CelIterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(Keys(self.keys().iter()))
    }
}

/// `device.attributes[domain]` or `device.capacity[domain]`: name → value.
#[derive(Debug)]
struct Domain<'d> {
    device: &'d Device,
    part: Part,
    /// `None` for a domain the device has nothing in.
    domain: Option<&'d str>,
    keys: OnceLock<Vec<CelString<'d>>>,
}

impl<'d> Domain<'d> {
    fn names(&self) -> impl std::iter::Iterator<Item = &'d str> + 'd {
        let domain = self.domain;
        names(self.device, self.part).filter(move |(d, _)| Some(*d) == domain).map(|(_, n)| n)
    }

    fn keys(&self) -> &[CelString<'d>] {
        self.keys.get_or_init(|| self.names().map(CelString::from).collect())
    }

    /// The value of `name`, if the domain has it.
    fn value(&self, name: &str) -> Option<Result<Box<dyn Val + 'd>, ExecutionError>> {
        let domain = self.domain?;
        let driver = self.device.driver.as_str();
        let wanted = |key: &str| split_name(key, driver) == (domain, name);
        match self.part {
            Part::Attributes => {
                let (key, value) = self.device.attributes.iter().find(|(k, _)| wanted(k))?;
                Some(attribute_val(key, value))
            }
            Part::Capacity => {
                let (_, capacity) = self.device.capacity.iter().find(|(k, _)| wanted(k))?;
                Some(Ok(Box::new(QuantityVal { milli: i128::from(capacity.milli) })))
            }
        }
    }
}

/// An attribute as a CEL value: a version attribute parses as a semantic version.
fn attribute_val<'d>(key: &str, value: &'d AttrValue) -> Result<Box<dyn Val + 'd>, ExecutionError> {
    Ok(match value {
        AttrValue::Int(i) => Box::new(CelInt::from(*i)),
        AttrValue::Bool(b) => Box::new(CelBool::from(*b)),
        AttrValue::String(s) => Box::new(CelString::from(&**s)),
        AttrValue::Version(v) => match Semver::parse(v) {
            Ok(version) => Box::new(SemverVal(version)),
            Err(e) => {
                return Err(ExecutionError::function_error(
                    "semver",
                    format!("attribute {key}: parse semantic version {v:?}: {e}"),
                ));
            }
        },
    })
}

map_val!(Domain, |me| Domain { device: me.device, part: me.part, domain: me.domain, keys: OnceLock::new() });

impl<'d> Indexer for Domain<'d> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let name = key_of(idx)?;
        match self.value(name) {
            Some(value) => value.map(CowVal::Owned),
            None => Err(ExecutionError::no_such_key(name)),
        }
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Container for Domain<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        let name = key_of(value)?;
        Ok(self.names().any(|n| n == name))
    }
}

impl Sizer for Domain<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(i64::try_from(self.names().count()).unwrap_or(i64::MAX))
    }
}

impl<'d> Iterable for Domain<'d> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn CelIterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(Keys(self.keys().iter()))
    }
}

/// Iterates borrowed keys.
struct Keys<'b, 'd>(std::slice::Iter<'b, CelString<'d>>);

impl<'b, 'v, 'd: 'v> CelIterator<'b, 'v> for Keys<'b, 'd> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        self.0.next().map(|k| k as &(dyn Val + 'v))
    }
}

/// Map equality through the traits any map value has: the same keys, with equal values.
fn map_equals(this: &dyn Val, other: &dyn Val) -> bool {
    if other.get_type().kind() != Kind::Map {
        return false;
    }
    let (Some(ours), Some(theirs)) = (this.as_sizer(), other.as_sizer()) else {
        return false;
    };
    if ours.size() != theirs.size() {
        return false;
    }
    let (Some(keys), Some(mine), Some(yours)) = (this.as_iterable(), this.as_indexer(), other.as_indexer()) else {
        return false;
    };
    let mut keys = keys.iter();
    while let Some(key) = keys.next() {
        match (mine.get(key), yours.get(key)) {
            (Ok(a), Ok(b)) if a.equals(&*b) => {}
            _ => return false,
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Quantities.

static QUANTITY_TYPE: Type = Type::new_unspecified_type("kubernetes.Quantity");

/// A `kubernetes.Quantity`, in milli-units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct QuantityVal {
    milli: i128,
}

impl Val for QuantityVal {
    fn get_type(&self) -> &Type {
        &QUANTITY_TYPE
    }

    fn cel_type() -> &'static Type {
        &QUANTITY_TYPE
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<QuantityVal>().is_some_and(|o| o.milli == self.milli)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(*self)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl StaticVal for QuantityVal {}

/// Parses a Kubernetes quantity into milli-units (rounded up, as `MilliValue()`), as
/// `resource.ParseQuantity` accepts it: no surrounding spaces.
fn parse_quantity(text: &str) -> Result<i128, String> {
    if text.trim() != text {
        return Err(format!("quantity {text:?} is not a valid Kubernetes quantity (it has surrounding spaces)"));
    }
    let q = crate::quantity::Quantity::parse(text).map_err(|e| e.to_string())?;
    match (q.milli_value(), q.value()) {
        (Some(milli), _) => Ok(i128::from(milli)),
        (None, Some(units)) => Ok(i128::from(units) * 1000),
        (None, None) => Err(format!("quantity {text:?} is too large")),
    }
}

fn string_arg<'a>(args: &'a [CowVal<'_, '_>], at: usize, function: &str) -> Result<&'a str, ExecutionError> {
    args.get(at)
        .and_then(|a| a.downcast_ref::<CelString>())
        .map(|s| s.inner())
        .ok_or_else(|| overload_error(function, args))
}

fn quantity_arg(args: &[CowVal<'_, '_>], at: usize, function: &str) -> Result<i128, ExecutionError> {
    let arg = args.get(at).ok_or_else(|| overload_error(function, args))?;
    if let Some(q) = arg.downcast_ref::<QuantityVal>() {
        return Ok(q.milli);
    }
    // `add(int)` and `sub(int)`: whole units.
    match arg.downcast_ref::<CelInt>() {
        Some(i) if at > 0 => Ok(i128::from(*i.inner()) * 1000),
        _ => Err(overload_error(function, args)),
    }
}

fn int_val<'b, 'v>(i: i64) -> CowVal<'b, 'v> {
    CowVal::owned(CelInt::from(i))
}

fn bool_val<'b, 'v>(b: bool) -> CowVal<'b, 'v> {
    CowVal::owned(CelBool::from(b))
}

fn ordering_val<'b, 'v>(o: Ordering) -> CowVal<'b, 'v> {
    int_val(match o {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })
}

fn quantity_val<'b, 'v>(function: &str, milli: Option<i128>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    milli
        .map(|milli| CowVal::owned(QuantityVal { milli }))
        .ok_or_else(|| ExecutionError::function_error(function, format!("{function}: quantity overflow")))
}

fn quantity_of_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let text = string_arg(&args, 0, "quantity")?;
    let milli = parse_quantity(text).map_err(|e| ExecutionError::function_error("quantity", e))?;
    Ok(CowVal::owned(QuantityVal { milli }))
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(bool_val(parse_quantity(string_arg(&args, 0, "isQuantity")?).is_ok()))
}

fn quantity_compare<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (quantity_arg(&args, 0, "compareTo")?, quantity_arg(&args, 1, "compareTo")?);
    Ok(ordering_val(a.cmp(&b)))
}

fn quantity_greater<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (quantity_arg(&args, 0, "isGreaterThan")?, quantity_arg(&args, 1, "isGreaterThan")?);
    Ok(bool_val(a > b))
}

fn quantity_less<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (quantity_arg(&args, 0, "isLessThan")?, quantity_arg(&args, 1, "isLessThan")?);
    Ok(bool_val(a < b))
}

fn quantity_add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (quantity_arg(&args, 0, "add")?, quantity_arg(&args, 1, "add")?);
    quantity_val("add", a.checked_add(b))
}

fn quantity_sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (quantity_arg(&args, 0, "sub")?, quantity_arg(&args, 1, "sub")?);
    quantity_val("sub", a.checked_sub(b))
}

fn quantity_mul<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let a = quantity_arg(&args, 0, "mul")?;
    let Some(factor) = args.get(1).and_then(|f| f.downcast_ref::<CelInt>()) else {
        return Err(overload_error("mul", &args));
    };
    quantity_val("mul", a.checked_mul(i128::from(*factor.inner())))
}

fn quantity_sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let q = quantity_arg(&args, 0, "sign")?;
    Ok(int_val(q.signum() as i64))
}

/// The quantity in whole units, if it is a whole number that fits an `int`.
fn quantity_integer(milli: i128) -> Option<i64> {
    if milli % 1000 == 0 { i64::try_from(milli / 1000).ok() } else { None }
}

fn quantity_is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(bool_val(quantity_integer(quantity_arg(&args, 0, "isInteger")?).is_some()))
}

fn quantity_as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    quantity_integer(quantity_arg(&args, 0, "asInteger")?)
        .map(int_val)
        .ok_or_else(|| ExecutionError::function_error("asInteger", "cannot convert value to integer"))
}

fn quantity_as_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let milli = quantity_arg(&args, 0, "asApproximateFloat")?;
    Ok(CowVal::owned(CelDouble::from(milli as f64 / 1000.0)))
}

// ---------------------------------------------------------------------------------------------
// Semantic versions.

static SEMVER_TYPE: Type = Type::new_unspecified_type("kubernetes.Semver");

/// A semantic version (semver.org 2.0), as blang/semver parses it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Semver {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<Prerelease>,
    build: Vec<String>,
}

/// One dot-separated identifier of a pre-release.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Prerelease {
    Numeric(u64),
    Alphanumeric(String),
}

impl Semver {
    /// Parses `major.minor.patch[-pre][+build]`, strictly.
    fn parse(s: &str) -> Result<Semver, String> {
        if s.is_empty() {
            return Err("version string empty".into());
        }
        let mut parts = s.splitn(3, '.');
        let (Some(major), Some(minor), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("no Major.Minor.Patch elements found".into());
        };
        let pre_at = rest.find('-');
        let build_at = rest.find('+');
        let core_end = match (pre_at, build_at) {
            (Some(p), Some(b)) => p.min(b),
            (Some(at), None) | (None, Some(at)) => at,
            (None, None) => rest.len(),
        };
        let number = |text: &str, what: &str| -> Result<u64, String> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid character(s) found in {what} number {text:?}"));
            }
            if text.len() > 1 && text.starts_with('0') {
                return Err(format!("{what} number must not contain leading zeroes {text:?}"));
            }
            text.parse().map_err(|_| format!("{what} number {text:?} is too large"))
        };
        let identifier = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let mut version = Semver {
            major: number(major, "major")?,
            minor: number(minor, "minor")?,
            patch: number(&rest[..core_end], "patch")?,
            pre: Vec::new(),
            build: Vec::new(),
        };
        if let Some(b) = build_at {
            for id in rest[b + 1..].split('.') {
                if !identifier(id) {
                    return Err(format!("invalid build metadata {id:?}"));
                }
                version.build.push(id.to_string());
            }
        }
        if let Some(p) = pre_at.filter(|p| build_at.is_none_or(|b| *p < b)) {
            for id in rest[p + 1..build_at.unwrap_or(rest.len())].split('.') {
                if !identifier(id) {
                    return Err(format!("invalid prerelease identifier {id:?}"));
                }
                version.pre.push(if id.bytes().all(|b| b.is_ascii_digit()) {
                    Prerelease::Numeric(number(id, "prerelease")?)
                } else {
                    Prerelease::Alphanumeric(id.to_string())
                });
            }
        }
        Ok(version)
    }

    /// Parses after Kubernetes' normalisation: no leading `v`, missing minor and patch as 0,
    /// leading zeroes dropped.
    fn parse_normalized(s: &str) -> Result<Semver, String> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts: Vec<String> = s
            .splitn(3, '.')
            .map(|p| {
                if p.len() > 1 {
                    let trimmed = p.trim_start_matches('0');
                    if trimmed.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                        trimmed.to_string()
                    } else {
                        format!("0{trimmed}")
                    }
                } else {
                    p.to_string()
                }
            })
            .collect();
        if parts.len() < 3 {
            if parts.last().is_some_and(|p| p.contains(['+', '-'])) {
                return Err("short version cannot contain PreRelease/Build meta data".into());
            }
            parts.resize(3, "0".to_string());
        }
        Semver::parse(&parts.join("."))
    }

    /// Precedence (build metadata ignored).
    fn precedence(&self, other: &Semver) -> Ordering {
        let core = (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        if core != Ordering::Equal {
            return core;
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) => {}
        }
        for (a, b) in self.pre.iter().zip(&other.pre) {
            let order = match (a, b) {
                (Prerelease::Numeric(a), Prerelease::Numeric(b)) => a.cmp(b),
                (Prerelease::Numeric(_), Prerelease::Alphanumeric(_)) => Ordering::Less,
                (Prerelease::Alphanumeric(_), Prerelease::Numeric(_)) => Ordering::Greater,
                (Prerelease::Alphanumeric(a), Prerelease::Alphanumeric(b)) => a.cmp(b),
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        self.pre.len().cmp(&other.pre.len())
    }
}

/// A `kubernetes.Semver`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SemverVal(Semver);

impl Val for SemverVal {
    fn get_type(&self) -> &Type {
        &SEMVER_TYPE
    }

    fn cel_type() -> &'static Type {
        &SEMVER_TYPE
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<SemverVal>().is_some_and(|o| o.0.precedence(&self.0) == Ordering::Equal)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl StaticVal for SemverVal {}

/// Parses `semver(s)` or `semver(s, normalize)`'s arguments.
fn semver_parse_args(args: &[CowVal<'_, '_>], function: &str) -> Result<Result<Semver, String>, ExecutionError> {
    let text = string_arg(args, 0, function)?;
    let normalize = match args.get(1) {
        None => false,
        Some(n) => *n.downcast_ref::<CelBool>().ok_or_else(|| overload_error(function, args))?.inner(),
    };
    Ok(if normalize { Semver::parse_normalized(text) } else { Semver::parse(text) })
}

fn semver_of_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let version = semver_parse_args(&args, "semver")?.map_err(|e| ExecutionError::function_error("semver", e))?;
    Ok(CowVal::owned(SemverVal(version)))
}

fn is_semver<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(bool_val(semver_parse_args(&args, "isSemver")?.is_ok()))
}

fn semver_arg<'a>(args: &'a [CowVal<'_, '_>], at: usize, function: &str) -> Result<&'a Semver, ExecutionError> {
    args.get(at).and_then(|a| a.downcast_ref::<SemverVal>()).map(|v| &v.0).ok_or_else(|| overload_error(function, args))
}

fn semver_compare<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (semver_arg(&args, 0, "compareTo")?, semver_arg(&args, 1, "compareTo")?);
    Ok(ordering_val(a.precedence(b)))
}

fn semver_greater<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (semver_arg(&args, 0, "isGreaterThan")?, semver_arg(&args, 1, "isGreaterThan")?);
    Ok(bool_val(a.precedence(b) == Ordering::Greater))
}

fn semver_less<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (semver_arg(&args, 0, "isLessThan")?, semver_arg(&args, 1, "isLessThan")?);
    Ok(bool_val(a.precedence(b) == Ordering::Less))
}

fn semver_part(number: u64, function: &str) -> Result<CowVal<'static, 'static>, ExecutionError> {
    i64::try_from(number)
        .map(int_val)
        .map_err(|_| ExecutionError::function_error(function, format!("{function}: {number} does not fit an int")))
}

fn semver_major<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    semver_part(semver_arg(&args, 0, "major")?.major, "major")
}

fn semver_minor<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    semver_part(semver_arg(&args, 0, "minor")?.minor, "minor")
}

fn semver_patch<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    semver_part(semver_arg(&args, 0, "patch")?.patch, "patch")
}

// ---------------------------------------------------------------------------------------------
// The result cache's hasher.

/// Hashes a device uid with one multiplication (uids are distinct counters, not adversarial).
#[derive(Default)]
struct UidHash(u64);

impl Hasher for UidHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type UidHasher = BuildHasherDefault<UidHash>;

#[cfg(test)]
#[path = "cel_tests.rs"]
mod tests;
