import Foundation
import QDistComm
import QDistIO
import QDistQuant
import QDistTensor

/// One row of the checkpoint-format table: a layout `qdist quantize` writes. The row says what
/// it can hold (`validate`, run before any work), which destinations it accepts, how the finished
/// output is written from the staged blocks. `--format` parsing, `--help`, validation, writing and reading all come from
/// `CheckpointFormatTable.rows`; a new format is a new row (and its reader, if it is new). Rows
/// that write a safetensors folder refine this as `FolderFormatRow`, which supplies the writing.
public protocol CheckpointFormatRow: Sendable {
    /// The `--format` / `format:` name.
    var name: String { get }
    /// One line for `--help`.
    var summary: String { get }
    /// Whether it stores quantized input activations (W8A8); checked when the recipe is read.
    var carriesActivations: Bool { get }
    /// Throws the first reason `plan` cannot be written in this format (one line, naming layers).
    func validate(_ plan: QuantizationPlan) throws
    /// Refuses an output path before any work.
    func checkOutput(_ destination: URL, inputs: [URL], overwrite: Bool) throws
    /// Writes the finished output from the recorded blocks (every rank calls it).
    func writeOutput(job: SequentialQuantizer.Job, progress: QuantizeProgressFolder, report: QuantizationReport,
                     communicator: any Communicator) throws
}

/// A format whose output is a Hugging Face folder of per-rank safetensors shards
/// (`ShardedQuantizedOutput`): the row only says which tensors each linear becomes, what
/// config.json's `quantization_config` holds, and which reader (`QuantizedFormatReader`) loads it
/// back (a GGUF file is read by `GGUFCheckpoint`).
public protocol FolderFormatRow: CheckpointFormatRow {
    /// Reads the written folder back (`qdist eval`, `generate`, `inspect`); its `quantMethod`
    /// is what config.json's `quantization_config.quant_method` says.
    var reader: any QuantizedFormatReader { get }
    /// The stored tensors of one quantized linear (and its input parameters, W8A8).
    func tensors(for linear: QuantizedLinearWeights, input: InputActivationParameters?, plan: QuantizationPlan,
                 scaleType: DType) throws -> [String: StoredTensor]
    /// config.json's `quantization_config` for the written linears.
    func quantizationConfig(schemes: [(name: String, scheme: QuantizedLinearScheme)], plan: QuantizationPlan,
                            scaleType: DType) throws -> JSONValue
    /// The stored tensors of a linear the recipe pruned and left in float: `weight` (out, in)
    /// with its exact zeros, in the model's float `dtype`. The default stores `<module>.weight`
    /// as every other float tensor is stored; a sparse layout compresses it here.
    func prunedFloatTensors(module: String, weight: Tensor, dtype: DType, plan: QuantizationPlan) throws -> [String: StoredTensor]
    /// config.json's final `quantization_config`, once every shard is staged: `base` is what
    /// `quantizationConfig` gave, or nil for a recipe that only prunes (a float model, which by
    /// default carries none: transformers 5 fails on a config without groups, FORMATS.md §12.6
    /// item 13). `staged` opens the staged weights, for a row whose config describes them
    /// (sparsity); the default returns `base` and opens nothing.
    func finalQuantizationConfig(_ base: JSONValue?, plan: QuantizationPlan, model: ModelConfiguration,
                                 staged: () throws -> CheckpointFolder) throws -> JSONValue?
}

extension FolderFormatRow {
    public func prunedFloatTensors(module: String, weight: Tensor, dtype: DType, plan: QuantizationPlan) throws -> [String: StoredTensor] {
        ["\(module).weight": StoredTensor(weight, as: dtype)]
    }

    public func finalQuantizationConfig(_ base: JSONValue?, plan: QuantizationPlan, model: ModelConfiguration,
                                        staged: () throws -> CheckpointFolder) throws -> JSONValue? { base }

    /// A folder qdist may write or replace (`OutputFolderGuard`).
    public func checkOutput(_ destination: URL, inputs: [URL], overwrite: Bool) throws {
        try OutputFolderGuard.check(destination, inputs: inputs, overwrite: overwrite)
    }

    /// The folder of per-rank safetensors shards, built with this row's tensors and config.
    public func writeOutput(job: SequentialQuantizer.Job, progress: QuantizeProgressFolder, report: QuantizationReport,
                            communicator: any Communicator) throws {
        try ShardedQuantizedOutput.write(row: self, job: job, progress: progress, report: report, communicator: communicator)
    }
}

/// The formats `qdist quantize` writes.
public enum CheckpointFormatTable {
    public static let rows: [any CheckpointFormatRow] = [CompressedTensorsRow(), GPTQRow(), FloatZeroRow(), BitsAndBytesRow(),
                                                         CompressedTensorsLegacySparseRow(), GGUFRow()]

    /// The row named `name`.
    public static func row(named name: String) -> (any CheckpointFormatRow)? { rows.first { $0.name == name } }

    /// `name — summary` lines for `--help`.
    public static var helpLines: [String] { rows.map { "\($0.name): \($0.summary)" } }

    /// "compressed-tensors or gptq", for messages.
    public static var names: String {
        let n = rows.map(\.name)
        return n.count < 2 ? n.joined() : n.dropLast().joined(separator: ", ") + " or " + n.last!
    }
}

/// compressed-tensors `pack-quantized` (int2–8 weights, vLLM and transformers) and
/// `int-quantized` (W8A8 with input scales).
struct CompressedTensorsRow: FolderFormatRow {
    var name: String { "compressed-tensors" }
    var summary: String { "pack-quantized int weights, int-quantized W8A8, float-quantized FP8 (vLLM, transformers + compressed-tensors)" }
    var reader: any QuantizedFormatReader { CompressedTensorsReader() }
    var carriesActivations: Bool { true }

    func validate(_ plan: QuantizationPlan) throws {
        if plan.solver.producesFractionalZeroPoints {
            throw QuantizePlanError(description: "\(plan.recipeName) gives float zero points, which compressed-tensors cannot store: use --format float-zero (qdist reads it; qdist convert makes a float folder of it), or integer_zero: true to round them (less accurate)")
        }
        try Self.refuseFourBit(plan, format: name)
        if plan.entries.contains(where: { $0.inputActivations?.outlierThreshold != nil }) {
            throw QuantizePlanError(description: "LLM.int8's outlier decomposition is not a compressed-tensors scheme: use --format bitsandbytes")
        }
        if let e = plan.entries.first(where: { $0.args.actorder == .group }) {
            throw QuantizePlanError(description:
                "\(e.name): actorder group stores a g_idx, which compressed-tensors ≥ 0.19 (and so transformers and vLLM) no longer load; use actorder: static (alias weight), or --format gptq")
        }
        // Whole groups only: the message names the layers and the sizes that would work.
        for (size, layers) in Dictionary(grouping: plan.entries.filter { $0.args.strategy == .group }, by: { $0.args.groupSize ?? 0 }) {
            let bad = layers.filter { $0.inFeatures % size != 0 }
            guard !bad.isEmpty else { continue }
            let dims = Set(bad.map(\.inFeatures)).sorted()
            let common = Set(plan.entries.map(\.inFeatures))
            let working = (8...max(size, 512)).filter { g in common.allSatisfy { $0 % g == 0 } && g % 8 == 0 }
            let kinds = Set(bad.map { $0.suffix.split(separator: ".").last.map(String.init) ?? $0.suffix }).sorted()
            throw QuantizePlanError(description:
                "group_size \(size) does not divide the input size \(dims.map(String.init).joined(separator: ", ")) of \(bad.count) layers (\(kinds.joined(separator: ", "))); compressed-tensors and vLLM need whole groups — group sizes that divide every layer: \(working.map(String.init).joined(separator: ", "))")
        }
    }

    func tensors(for linear: QuantizedLinearWeights, input: InputActivationParameters?, plan: QuantizationPlan,
                 scaleType: DType) throws -> [String: StoredTensor] {
        try CompressedTensorsFormat.tensors(for: linear, scaleDType: scaleType, input: input)
    }

    /// NF4/FP4 code books are bitsandbytes' alone: other formats name the one that holds them.
    static func refuseFourBit(_ plan: QuantizationPlan, format: String) throws {
        if let e = plan.entries.first(where: { $0.args.type.fourBitType != nil }) {
            throw QuantizePlanError(description: "\(e.name): \(e.args.type.rawValue) weights are bitsandbytes' 4-bit code book, which \(format) cannot store: use --format bitsandbytes")
        }
    }

    func quantizationConfig(schemes: [(name: String, scheme: QuantizedLinearScheme)], plan: QuantizationPlan,
                            scaleType: DType) throws -> JSONValue {
        let staticOrder = plan.entries.contains { $0.args.actorder == .static }
        // The weights' observer as the recipe named it, when every layer used the same one.
        let observers = Set(plan.entries.map(\.args.observer.rawValue))
        return try CompressedTensorsFormat.quantizationConfig(schemes: schemes, options: .init(
            scaleDType: scaleType, observer: observers.count == 1 ? observers.first! : "minmax", staticActOrder: staticOrder))
    }
}

/// AutoGPTQ / GPTQModel `qweight, qzeros, scales, g_idx` (v2 zero points).
struct GPTQRow: FolderFormatRow {
    var name: String { "gptq" }
    var summary: String { "AutoGPTQ/GPTQModel qweight, qzeros, scales, g_idx; weights only (transformers, vLLM)" }
    var reader: any QuantizedFormatReader { GPTQReader() }
    var carriesActivations: Bool { false }

    func options(_ plan: QuantizationPlan) -> GPTQFormat.Options { .init(checkpointFormat: .v2, dampPercent: plan.dampening) }

    func validate(_ plan: QuantizationPlan) throws {
        if plan.entries.contains(where: { $0.inputActivations != nil }) {
            throw QuantizePlanError(description: "the gptq format cannot carry quantized activations (W8A8): use --format compressed-tensors")
        }
        if plan.solver.producesFractionalZeroPoints {
            throw QuantizePlanError(description: "\(plan.recipeName) gives float zero points, which GPTQ checkpoints cannot store: use --format float-zero, or integer_zero: true to round them (less accurate)")
        }
        if let e = plan.entries.first(where: { $0.args.type == .float }) {
            throw QuantizePlanError(description: "\(e.name): the gptq format holds integer codes; FP8 weights are written as compressed-tensors float-quantized (--format compressed-tensors)")
        }
        try CompressedTensorsRow.refuseFourBit(plan, format: name)
        for e in plan.entries {
            let pack = e.args.numBits == 3 ? 32 : 32 / e.args.numBits
            if e.inFeatures % pack != 0 || e.outFeatures % pack != 0 {
                throw QuantizePlanError(description: "\(e.name): GPTQ packing needs in and out features divisible by \(pack) for \(e.args.numBits)-bit codes")
            }
        }
    }

    func tensors(for linear: QuantizedLinearWeights, input: InputActivationParameters?, plan: QuantizationPlan,
                 scaleType: DType) throws -> [String: StoredTensor] {
        try GPTQFormat.tensors(for: linear, options: options(plan))
    }

    func quantizationConfig(schemes: [(name: String, scheme: QuantizedLinearScheme)], plan: QuantizationPlan,
                            scaleType: DType) throws -> JSONValue {
        try GPTQFormat.quantizationConfig(schemes: schemes, options: options(plan))
    }
}

/// qdist's float-zero layout: pack-quantized tensors with F32 zero points, for HQQ (only qdist
/// reads it; `qdist convert` turns it into a float folder every tool loads).
struct FloatZeroRow: FolderFormatRow {
    var name: String { "float-zero" }
    var summary: String { "pack-quantized codes with float zero points (HQQ); read by qdist eval/generate/convert only" }
    var reader: any QuantizedFormatReader { FloatZeroReader() }
    var carriesActivations: Bool { false }

    func validate(_ plan: QuantizationPlan) throws {
        try CompressedTensorsRow.refuseFourBit(plan, format: name)
        guard plan.solver.producesFractionalZeroPoints else {
            throw QuantizePlanError(description: "the float-zero format holds HQQ's float zero points; \(plan.recipeName) writes integer grids: use --format compressed-tensors or gptq")
        }
        if plan.entries.contains(where: { $0.inputActivations != nil }) {
            throw QuantizePlanError(description: "the float-zero format cannot carry quantized activations: use --format compressed-tensors")
        }
        if let e = plan.entries.first(where: { $0.args.strategy != .group || $0.inFeatures % ($0.args.groupSize ?? 1) != 0 }) {
            throw QuantizePlanError(description: "\(e.name): the float-zero format needs groups that divide the input size (\(e.inFeatures))")
        }
    }

    func tensors(for linear: QuantizedLinearWeights, input: InputActivationParameters?, plan: QuantizationPlan,
                 scaleType: DType) throws -> [String: StoredTensor] {
        try FloatZeroFormat.tensors(for: linear, scaleDType: scaleType)
    }

    func quantizationConfig(schemes: [(name: String, scheme: QuantizedLinearScheme)], plan: QuantizationPlan,
                            scaleType: DType) throws -> JSONValue {
        try FloatZeroFormat.quantizationConfig(schemes: schemes, options: .init(scaleDType: scaleType))
    }
}

/// bitsandbytes folders that transformers + bitsandbytes load: LLM.int8 (`weight` I8 + `SCB`,
/// `load_in_8bit`, outlier decomposition at run time) or NF4/FP4 (packed 4-bit codes, block
/// absmaxes, optionally double-quantized, `load_in_4bit`). One model is one or the other, with one
/// setting for all its linears, as `BitsAndBytesConfig` has.
struct BitsAndBytesRow: FolderFormatRow {
    var name: String { "bitsandbytes" }
    var summary: String { "LLM.int8 (int8 + SCB, outliers in float at run time) or NF4/FP4 4-bit with double-quantized absmax (transformers + bitsandbytes)" }
    var reader: any QuantizedFormatReader { BitsAndBytesReader() }
    var carriesActivations: Bool { true }

    /// The plan's 4-bit setting (code book, double quantization), nil for an LLM.int8 plan.
    func fourBit(_ plan: QuantizationPlan) -> (type: QuantizationArgs.ValueType, doubleQuantized: Bool)? {
        plan.entries.first.flatMap { $0.args.type.fourBitType != nil ? ($0.args.type, $0.args.doubleQuantize) : nil }
    }

    func validate(_ plan: QuantizationPlan) throws {
        if let (type, dq) = fourBit(plan) {
            if let e = plan.entries.first(where: { $0.args.type != type || $0.args.doubleQuantize != dq }) {
                throw QuantizePlanError(description: "\(e.name): bitsandbytes stores one 4-bit setting for the model (bnb_4bit_quant_type, bnb_4bit_use_double_quant); the recipe mixes \(type.rawValue)\(dq ? " double-quantized" : "") with \(e.args.type.rawValue)\(e.args.doubleQuantize ? " double-quantized" : "")")
            }
            if let e = plan.entries.first(where: { $0.inFeatures % ($0.args.groupSize ?? 1) != 0 }) {
                throw QuantizePlanError(description: "\(e.name): bitsandbytes blocks run over the flattened weight; group_size \(e.args.groupSize ?? 0) must divide the row (\(e.inFeatures)) for them to be qdist's groups")
            }
            if plan.entries.contains(where: { $0.inputActivations != nil }) {
                throw QuantizePlanError(description: "bitsandbytes 4-bit layers are weight-only: remove input_activations")
            }
            return
        }
        if let e = plan.entries.first(where: { $0.args.observer != .absmax || $0.args.strategy != .channel || $0.inputActivations?.outlierThreshold == nil }) {
            throw QuantizePlanError(description: "\(e.name): the bitsandbytes format holds LLM.int8 layers (scheme: LLM_INT8 — absmax int8 rows with the outlier threshold on the inputs) or NF4/FP4 ones (scheme: NF4 or FP4)")
        }
        if Set(plan.entries.compactMap { $0.inputActivations?.outlierThreshold }).count > 1 {
            throw QuantizePlanError(description: "bitsandbytes stores one llm_int8_threshold for the model; the recipe's groups give several")
        }
    }

    func tensors(for linear: QuantizedLinearWeights, input: InputActivationParameters?, plan: QuantizationPlan,
                 scaleType: DType) throws -> [String: StoredTensor] {
        linear.codeType.fourBitType != nil
            ? try BitsAndBytesFourBitFormat.tensors(for: linear, dtype: scaleType)
            : try BitsAndBytesInt8Format.tensors(for: linear, biasDType: scaleType)
    }

    func quantizationConfig(schemes: [(name: String, scheme: QuantizedLinearScheme)], plan: QuantizationPlan,
                            scaleType: DType) throws -> JSONValue {
        let quantized = Set(schemes.map(\.name))
        // transformers converts every Linear not listed here (by name match).
        let skipped = ["lm_head"] + plan.unquantizedLinears.filter { !quantized.contains($0) }
        if let (type, dq) = fourBit(plan), let book = type.fourBitType {
            return BitsAndBytesFourBitFormat.quantizationConfig(type: book, doubleQuantized: dq, computeDType: scaleType, skipModules: skipped)
        }
        let threshold = plan.entries.first?.inputActivations?.outlierThreshold ?? 6
        return BitsAndBytesInt8Format.quantizationConfig(threshold: threshold, skipModules: skipped)
    }
}
