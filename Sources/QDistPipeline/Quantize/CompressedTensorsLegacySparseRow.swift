import Foundation
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// compressed-tensors' legacy sparse layouts, for stacks pinned to llm-compressor ≤ 0.10 /
/// compressed-tensors ≤ 0.14 (transformers 4.x decompresses them on load; current transformers
/// and vLLM do not read them — the default `compressed-tensors` row's dense-stored zeros are what
/// they load, FORMATS.md §12.0). The choice follows llm-compressor's `SparsityConfigMetadata`
/// (§12.4.6):
///
/// - a recipe that only prunes: `sparse-24-bitmask` when its `mask_structure` is "2:4", else
///   `sparse-bitmask`, on the float weights in the model's dtype;
/// - W8A8 (8-bit int or fp8 weights and 8-bit inputs, every quantized linear) with "2:4":
///   int-/float-quantized with sparse-24-bitmask on the 8-bit `weight` (quantization first,
///   then sparsity, §12.4.7). compressed-tensors' own compressor takes `abs()` of int8 codes,
///   which overflows for −128 and keeps a zero in its place (losing that weight); qdist keeps
///   the nonzeros, which compressed-tensors 0.14 decompresses exactly
///   (Benchmarks/legacy_sparse_ct014_check.sh);
/// - anything else quantized (weight-only, or unstructured): the compressed-tensors row's
///   tensors with a `sparsity_config` of format `dense` (pack-quantized has no `weight` to
///   compress; that is what llm-compressor 0.10 wrote).
///
/// The sparse targets are exactly the linears the recipe pruned (llm-compressor guessed them
/// with a 49 % sparsity threshold; qdist knows them), listed by the class rule
/// (`CompressedTensorsSparsityConfig.targetsAndIgnore`). When the shards are staged they are
/// read back through the reader `qdist eval` uses, which both checks the layout and counts the
/// zeros for `global_sparsity`.
struct CompressedTensorsLegacySparseRow: FolderFormatRow {
    var name: String { "compressed-tensors-legacy-sparse" }
    var summary: String {
        "pruned models for llm-compressor ≤0.10 / compressed-tensors ≤0.14 (transformers 4.x): sparse-24-bitmask (2:4, float or W8A8) or sparse-bitmask (unstructured float); weight-only quantized as pack-quantized with a dense sparsity_config"
    }
    var reader: any QuantizedFormatReader { CompressedTensorsReader() }
    var carriesActivations: Bool { true }

    /// Where the pruned linears' zeros go (see the type's documentation).
    func sparseFormat(_ plan: QuantizationPlan) -> CompressedTensorsSparsity.Format {
        guard let pruning = plan.pruning else { return .dense }
        let twoOfFour = pruning.maskStructure == "2:4"
        if plan.entries.isEmpty { return twoOfFour ? .twoOfFour : .bitmask }
        return twoOfFour && plan.entries.allSatisfy(Self.isEightBitWeightsAndInputs) ? .twoOfFour : .dense
    }

    /// llm-compressor's `is_sparse24_bitmask_supported`: 8-bit int or float on both the
    /// weights and the inputs.
    static func isEightBitWeightsAndInputs(_ e: QuantizationPlan.Entry) -> Bool {
        guard let input = e.inputActivations else { return false }
        return e.args.numBits == 8 && [.int, .float].contains(e.args.type) && input.numBits == 8 && [.int, .float].contains(input.type)
    }

    /// Every linear the recipe pruned, quantized or not.
    static func prunedLinears(_ plan: QuantizationPlan) -> [String] {
        plan.entries.filter(\.pruned).map(\.name) + plan.prunedFloat.map(\.name)
    }

    func validate(_ plan: QuantizationPlan) throws {
        guard let pruning = plan.pruning else {
            throw QuantizePlanError(description: "the \(name) format stores pruned models and the recipe prunes nothing: use --format compressed-tensors")
        }
        let structure = pruning.maskStructure
        guard CompressedTensorsSparsityConfig.knownStructures.contains(structure) else {
            throw QuantizePlanError(description: "mask_structure \"\(structure)\" is not a compressed-tensors sparsity structure (\"2:4\", or \"0:0\" unstructured): use --format compressed-tensors, which stores the zeros dense")
        }
        if !plan.entries.isEmpty { try CompressedTensorsRow().validate(plan) }
        guard sparseFormat(plan) == .twoOfFour else { return }
        if let e = plan.entries.first(where: { $0.pruned && $0.args.type == .int && !$0.args.symmetric }) {
            throw QuantizePlanError(description: "\(e.name): asymmetric int8 weights store a pruned weight as the zero point, not 0, so sparse-24-bitmask cannot keep the pattern: use symmetric weights, or --format compressed-tensors")
        }
        let shapes = plan.entries.filter(\.pruned).map { ($0.name, $0.inFeatures) } + plan.prunedFloat.map { ($0.name, $0.inFeatures) }
        if let (module, inFeatures) = shapes.first(where: { $0.1 % 4 != 0 }) {
            throw QuantizePlanError(description: "\(module): sparse-24-bitmask needs the input size (\(inFeatures)) divisible by 4")
        }
    }

    func tensors(for linear: QuantizedLinearWeights, input: InputActivationParameters?, plan: QuantizationPlan,
                 scaleType: DType) throws -> [String: StoredTensor] {
        var tensors = try CompressedTensorsFormat.tensors(for: linear, scaleDType: scaleType, input: input)
        let format = sparseFormat(plan), m = linear.name
        // int-/float-quantized keep the 8-bit codes as `weight`, which the sparse compressor replaces.
        guard format != .dense, plan.entry(named: m)?.pruned == true, let weight = tensors.removeValue(forKey: "\(m).weight") else { return tensors }
        return tensors.merging(try CompressedTensorsSparsity.compress(weight, module: m, format: format)) { a, _ in a }
    }

    func prunedFloatTensors(module: String, weight: Tensor, dtype: DType, plan: QuantizationPlan) throws -> [String: StoredTensor] {
        let format = sparseFormat(plan)
        guard format != .dense else { return ["\(module).weight": StoredTensor(weight, as: dtype)] }
        return try CompressedTensorsSparsity.compress(StoredTensor(weight, as: dtype), module: module, format: format)
    }

    func quantizationConfig(schemes: [(name: String, scheme: QuantizedLinearScheme)], plan: QuantizationPlan,
                            scaleType: DType) throws -> JSONValue {
        try CompressedTensorsRow().quantizationConfig(schemes: schemes, plan: plan, scaleType: scaleType)
    }

    func finalQuantizationConfig(_ base: JSONValue?, plan: QuantizationPlan, model: ModelConfiguration,
                                 staged: () throws -> CheckpointFolder) throws -> JSONValue? {
        guard let pruning = plan.pruning else { return base }
        let pruned = Self.prunedLinears(plan)
        let (targets, ignore) = CompressedTensorsSparsityConfig.targetsAndIgnore(linears: model.linearLayers.map(\.name) + ["lm_head"],
                                                                               sparse: Set(pruned))
        var sparsity = CompressedTensorsSparsityConfig(format: sparseFormat(plan), globalSparsity: 0, structure: pruning.maskStructure,
                                                       targets: targets, ignore: ignore)
        func config() -> JSONValue { base.map(sparsity.inserted(into:)) ?? sparsity.sparsityOnlyQuantizationConfig }
        // Read the staged shards back the way a loader will: exactly the pruned linears must be
        // compressed, and every parameter's zeros (dequantized, decompressed) are counted.
        let folder = try staged()
        let compressed = Set(folder.tensorNames.filter { $0.hasSuffix(".bitmask") }.map { String($0.dropLast(".bitmask".count)) })
        let expected = sparsity.format == .dense ? [] : Set(pruned)
        guard compressed == expected else {
            let odd = compressed.symmetricDifference(expected).sorted()
            throw QuantizePlanError(description: "\(odd.first ?? ""): the staged output stores \(compressed.count) linears sparse, the recipe pruned \(expected.count) (\(odd.count) differ)")
        }
        let weights: any WeightSource = try QuantizedWeightSource.open(folder: folder, quantizationConfig: config()) ?? folder
        var zeros = 0, count = 0
        for (name, shape) in model.tensorShapes {
            let t = try weights.tensor(name, expectedShape: shape)
            zeros += t.scalars.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
            count += t.count
        }
        sparsity.globalSparsity = Double(zeros) / Double(max(count, 1))
        return config()
    }
}
