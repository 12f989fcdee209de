import Foundation
import QDistIO
import QDistQuant
import QDistTensor

/// `gguf:` of a quantize job written as GGUF (`format: gguf`): the llama-quantize mix that gives
/// every tensor its block type, and where the importance vectors of the encoders come from.
///
/// ```yaml
/// format: gguf
/// output: out/smollm2-gptq-q4_k_m.gguf
/// gguf: {type: Q4_K_M, imatrix: hessian, pure: false, scales: updated}
/// ```
/// `imatrix`: `hessian` (default) — each linear's calibration Hessian diagonal, Σx² per input
/// column, which is what llama-imatrix collects; `none`; or a file (llama-imatrix's GGUF or
/// .dat, or `qdist imatrix`'s), which also weights the tensors GPTQ does not solve and is recorded
/// in the file's `quantize.imatrix.*` keys, as llama-quantize records it. `scales` (GPTQ):
/// `updated` encodes each block's scales when GPTQ reaches it, from the weights as its error
/// feedback has changed them (columns in order); `original` encodes every block from the
/// original weights first (so act-order can reorder columns).
public struct GGUFOutputConfig: Decodable, Sendable, Equatable {
    public var type: String
    public var imatrix: String?
    public var pure: Bool
    public var scales: GGMLBlockGPTQ.Scales?

    public init(type: String, imatrix: String? = nil, pure: Bool = false, scales: GGMLBlockGPTQ.Scales? = nil) {
        (self.type, self.imatrix, self.pure, self.scales) = (type, imatrix, pure, scales)
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, imatrix, pure, scales }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(String.self, forKey: .type)
        imatrix = try c.decodeIfPresent(String.self, forKey: .imatrix)
        pure = try c.decodeIfPresent(Bool.self, forKey: .pure) ?? false
        scales = try c.decodeIfPresent(GGMLBlockGPTQ.Scales.self, forKey: .scales)
    }
}

/// A GGUF output resolved against one model: the mix, its options, each quantized linear's ggml
/// type (llama-quantize's rules over the whole model), and the importance vectors.
public struct GGUFQuantizeTarget: Sendable {
    /// Where each linear's importance vector comes from.
    public enum Importance: Sendable {
        case none
        /// The calibration Hessian's diagonal of the linear's input (Σx² up to a constant).
        case hessian
        /// An imatrix file: vectors by GGUF tensor name, and the path as given.
        case file(GGUFImatrix, path: String)
    }

    public var mix: GGUFMix
    public var options: GGUFMix.Options
    /// Where GPTQ's block scales come from (see `GGUFOutputConfig`).
    public var scales: GGMLBlockGPTQ.Scales
    public var importance: Importance
    /// The ggml type of every tensor, by Hugging Face name.
    public var types: [String: GGMLType]
    /// The GGUF name of every tensor, by Hugging Face name.
    public var ggufNames: [String: String]

    /// Resolves `config` (the job's `gguf:`) for a model; the imatrix file is read here, so a bad
    /// one fails before any work.
    public init(_ output: GGUFOutputConfig, model: ModelConfiguration, modelPath: String) throws {
        scales = output.scales ?? .original
        do { mix = try GGUFMix(name: output.type) } catch {
            throw QuantizePlanError(description: "gguf.type: \(error)")
        }
        guard ![GGUFMix.f32, .f16, .bf16].contains(mix) else {
            throw QuantizePlanError(description: "gguf.type \(mix.name) is a float type: nothing to quantize; use qdist convert MODEL OUT.gguf --gguf-type \(mix.name)")
        }
        switch output.imatrix {
        case nil, "hessian": importance = .hessian
        case "none": importance = .none
        case let path?:
            let expanded = QuantizeJobSetup.expand(path)
            importance = .file(try GGUFImatrix(contentsOf: URL(fileURLWithPath: expanded)), path: path)
        }
        if case .none = importance {
            options = GGUFMix.Options(hasImportanceMatrix: false, pure: output.pure)
        } else {
            options = GGUFMix.Options(hasImportanceMatrix: true, pure: output.pure)
        }
        let typed = try GGUFExport.tensorTypes(model, path: modelPath, mix: mix, options: options)
        types = Dictionary(typed.map { ($0.tensor.huggingFace, $0.type) }, uniquingKeysWith: { a, _ in a })
        ggufNames = Dictionary(typed.map { ($0.tensor.huggingFace, $0.tensor.gguf) }, uniquingKeysWith: { a, _ in a })
        if case .file(let matrix, _) = importance {
            for (hf, type) in types where mix.requiresImportanceMatrix(tensorName: ggufNames[hf] ?? hf, type: type) && matrix.importance[ggufNames[hf] ?? hf] == nil {
                throw QuantizePlanError(description: "\(mix.name) needs an importance vector for \(ggufNames[hf] ?? hf) (\(type.traits.name)), which \(output.imatrix ?? "") does not hold")
            }
        }
    }

    /// The imatrix file, when the job was given one.
    public var imatrixFile: (matrix: GGUFImatrix, path: String)? {
        if case .file(let m, let p) = importance { return (m, p) }
        return nil
    }

    /// The importance vector of linear `module` (`model.layers.3.mlp.down_proj`): from the file,
    /// or the diagonal of `hessian` (`floored`).
    public func importance(forLinear module: String, hessian: Tensor?) -> [Float]? {
        switch importance {
        case .none: return nil
        case .file(let matrix, _): return ggufNames[module + ".weight"].flatMap { matrix.importance[$0] }
        case .hessian:
            guard let h = hessian, h.rank == 2 else { return nil }
            return Self.floored((0..<h.shape[0]).map { h[$0, $0] })
        }
    }

    /// Importance vectors with every column raised to a small floor (1e-6 of the mean): a
    /// column that never saw input would otherwise zero a block's total weight, which the
    /// encoders divide by.
    public static func floored(_ importance: [Float]) -> [Float] {
        let floor = max(importance.reduce(0, +) / Float(max(importance.count, 1)) * 1e-6, Float.leastNormalMagnitude)
        return importance.map { max($0, floor) }
    }

    /// A line for the resume fingerprint.
    public var fingerprint: String {
        let source: String
        switch importance {
        case .none: source = "none"
        case .hessian: source = "hessian"
        case .file(_, let path): source = "file:\(path)"
        }
        return "\(mix.name) imatrix=\(source) pure=\(options.pure) scales=\(scales.rawValue)"
    }
}

extension GGMLBlockGPTQ.Scales: Decodable {}
