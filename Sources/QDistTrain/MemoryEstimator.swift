import QDistQuant

/// The parameter counts a memory estimate needs: how many weights a model has, how many sit
/// in the decoder's linear layers (what quantization and LoRA target), and those layers' shapes.
public struct ModelParameterSummary: Sendable, Equatable {
    /// All parameters (embeddings, norms, linears, lm_head).
    public var total: Double
    /// Parameters of the decoder blocks' linear layers (q/k/v/o/gate/up/down).
    public var linear: Double
    /// (inFeatures, outFeatures) of every decoder linear, for LoRA's r·(in + out) per layer.
    public var linearShapes: [(inFeatures: Int, outFeatures: Int)]

    public init(total: Double, linear: Double, linearShapes: [(inFeatures: Int, outFeatures: Int)]) {
        self.total = total
        self.linear = linear
        self.linearShapes = linearShapes
    }

    /// Only a total is known (`--params 7e9`): every parameter is treated as quantizable.
    public init(total: Double) { self.init(total: total, linear: total, linearShapes: []) }

    public static func == (a: Self, b: Self) -> Bool {
        a.total == b.total && a.linear == b.linear
            && a.linearShapes.map { [$0.inFeatures, $0.outFeatures] } == b.linearShapes.map { [$0.inFeatures, $0.outFeatures] }
    }

    /// LoRA trainable parameters at rank r on every decoder linear: Σ r·(in + out).
    public func loraParameters(rank: Int) -> Double {
        linearShapes.reduce(0) { $0 + Double(rank * ($1.inFeatures + $1.outFeatures)) }
    }
}

/// Bytes one rank holds for a model, split the way ZeRO's accounting splits them.
public struct RankMemory: Sendable, Equatable {
    /// Weights used in forward/backward (fp16 for full training; frozen NF4 base + fp32 LoRA
    /// for QLoRA; the stored format for inference).
    public var weights: Double
    /// Gradients kept between backward and the optimizer step.
    public var gradients: Double
    /// Optimizer state: fp32 master copy + Adam m and v (full), or AdamW m and v (LoRA).
    public var optimizerState: Double
    public var total: Double { weights + gradients + optimizerState }
}

/// ZeRO-style memory accounting (Rajbhandari et al. 2019, §5; FORMATS.md §9.2), the numbers
/// `qdist memory` prints and the fine-tuning run checks itself against. Activations and
/// temporary buffers ("residual states") are not included.
public enum MemoryEstimator {
    /// Bytes to store `parameters` weights in `format`.
    public static func weightBytes(parameters: Double, format: NumberFormat, groupSize: Int? = nil,
                                   zeroPoint: Bool = false) -> Double {
        format.bytes(parameters: parameters, groupSize: groupSize, zeroPoint: zeroPoint)
    }

    /// Inference weights of a model whose decoder linears are stored in `format` and whose
    /// other tensors (embeddings, norms, lm_head) stay at `keptFormat` (fp16), as llm-compressor
    /// leaves them. With only a total known, everything is in `format`.
    public static func inferenceBytes(_ model: ModelParameterSummary, format: NumberFormat, groupSize: Int? = nil,
                                      zeroPoint: Bool = false, keptFormat: NumberFormat) -> (linear: Double, other: Double) {
        let linear = weightBytes(parameters: model.linear, format: format, groupSize: groupSize, zeroPoint: zeroPoint)
        let other = weightBytes(parameters: model.total - model.linear, format: keptFormat)
        return (linear, other)
    }

    /// Full mixed-precision Adam training of Ψ parameters, per rank, at a ZeRO stage:
    /// fp16 weights 2Ψ, fp16 gradients 2Ψ, optimizer state 12Ψ (fp32 copy, m, v);
    /// stage 1 shards the optimizer state, 2 also the gradients, 3 also the weights.
    public static func fullTraining(parameters psi: Double, zeroStage: Int, worldSize: Int) -> RankMemory {
        precondition((0...3).contains(zeroStage) && worldSize >= 1, "ZeRO stage 0–3 and world size ≥ 1")
        let n = Double(worldSize)
        return RankMemory(weights: 2 * psi / (zeroStage >= 3 ? n : 1),
                          gradients: 2 * psi / (zeroStage >= 2 ? n : 1),
                          optimizerState: 12 * psi / (zeroStage >= 1 ? n : 1))
    }

    /// QLoRA per rank: the frozen base's linears in `baseFormat` (NF4 with double-quantized
    /// absmax) and its other tensors in `keptFormat`; LoRA adapters in fp32 (4 B), their fp32
    /// gradients (4 B) and AdamW m, v (8 B). Sharding follows the same stages, and stage 3
    /// also shards the frozen base (gathered block by block on use).
    /// `loraParameters` is usually `model.loraParameters(rank:)`.
    public static func qloraTraining(_ model: ModelParameterSummary, loraParameters lora: Double, zeroStage: Int,
                                     worldSize: Int, baseFormat: NumberFormat, keptFormat: NumberFormat) -> RankMemory {
        precondition((0...3).contains(zeroStage) && worldSize >= 1, "ZeRO stage 0–3 and world size ≥ 1")
        let n = Double(worldSize)
        let base = weightBytes(parameters: model.linear, format: baseFormat)
            + weightBytes(parameters: model.total - model.linear, format: keptFormat)
        return RankMemory(weights: (base + 4 * lora) / (zeroStage >= 3 ? n : 1),
                          gradients: 4 * lora / (zeroStage >= 2 ? n : 1),
                          optimizerState: 8 * lora / (zeroStage >= 1 ? n : 1))
    }
}
