import QDistIO
import QDistTensor

/// The trainable tensors of a LoRA run laid end to end in one flat Float buffer, in PEFT's order
/// (layer by layer; q, k, v, o, gate, up, down; lora_A before lora_B).
///
/// Everything that shards or moves the trainable state (ZeRO stages, AdamW's m and v, gradient
/// reduce-scatter, checkpoints) works on contiguous ranges of this one index, so it never needs
/// to know about tensors; tensors and PEFT names come back through `entries`. A block's adapters
/// are contiguous (`blockRange`), which is what lets ZeRO-3 all-gather them one block at a time.
public struct TrainableParameterLayout: Sendable, Equatable {
    /// Which matrix of an adapter.
    public enum Role: String, Sendable { case a = "lora_A", b = "lora_B" }

    /// One tensor of the flat buffer.
    public struct Entry: Sendable, Equatable {
        /// The key in PEFT's adapter_model.safetensors,
        /// e.g. `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`.
        public let name: String
        /// `[r, in]` for A, `[out, r]` for B.
        public let shape: [Int]
        /// First element in the flat buffer.
        public let offset: Int
        public let block: Int
        public let target: LoRATarget
        public let role: Role

        public var count: Int { shape[0] * shape[1] }
        /// Elements of the flat buffer this tensor occupies.
        public var range: Range<Int> { offset..<offset + count }
    }

    public let entries: [Entry]
    /// Elements in the flat buffer.
    public let count: Int
    /// `blockRanges[i]`: the elements of block i's adapters.
    public let blockRanges: [Range<Int>]

    /// The layout of `lora` on every decoder layer of `config`.
    public init(config: ModelConfiguration, lora: LoRAConfig) {
        var entries: [Entry] = []
        var ranges: [Range<Int>] = []
        var offset = 0
        for block in 0..<config.numHiddenLayers {
            let start = offset
            for target in lora.targets {
                let (inFeatures, outFeatures) = target.features(config)
                let prefix = "base_model.model.model.layers.\(block).\(target.modulePath)."
                for (role, shape) in [(Role.a, [lora.rank, inFeatures]), (Role.b, [outFeatures, lora.rank])] {
                    entries.append(Entry(name: prefix + role.rawValue + ".weight", shape: shape, offset: offset,
                                         block: block, target: target, role: role))
                    offset += shape[0] * shape[1]
                }
            }
            ranges.append(start..<offset)
        }
        self.entries = entries
        self.count = offset
        self.blockRanges = ranges
    }

    /// The elements of block `index`'s adapters.
    public func blockRange(_ index: Int) -> Range<Int> { blockRanges[index] }

    /// The entry with this PEFT name, or nil.
    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// The A and B entries of one adapter, or nil when `target` is not adapted.
    public func adapter(block: Int, target: LoRATarget) -> (a: Entry, b: Entry)? {
        guard let i = entries.firstIndex(where: { $0.block == block && $0.target == target && $0.role == .a }) else { return nil }
        return (entries[i], entries[i + 1])
    }

    /// Splits a flat buffer (parameters, gradients, optimizer moments) into one tensor per entry.
    public func tensors(from flat: [Float]) -> [Tensor] {
        precondition(flat.count == count, "flat buffer of \(flat.count) for a layout of \(count)")
        return entries.map { Tensor(shape: $0.shape, scalars: Array(flat[$0.range])) }
    }

    /// The inverse of `tensors(from:)`: tensors in entry order, shapes checked.
    public func flatten(_ tensors: [Tensor]) -> [Float] {
        precondition(tensors.count == entries.count, "\(tensors.count) tensors for \(entries.count) entries")
        var flat = [Float](repeating: 0, count: count)
        for (e, t) in zip(entries, tensors) {
            precondition(t.shape == e.shape, "\(e.name): shape \(t.shape), expected \(e.shape)")
            flat.replaceSubrange(e.range, with: t.scalars)
        }
        return flat
    }
}

/// Which half of a training step asks for weights: ZeRO-3 gathers a block's shards once for the
/// forward and again for the backward (where the block's forward is recomputed).
public enum TrainingPass: String, Sendable { case forward, backward }

/// Where the training graph reads the adapter values of one block, just before using them.
///
/// A single-process run hands out slices of its full buffer; ZeRO-3 all-gathers the block's
/// range from the ranks that own it. Returned arrays hold exactly `layout.blockRange(block)`.
public protocol AdapterParameterSource {
    /// Block `block`'s adapter values, in layout order: asked for once in the forward and once
    /// in the backward of every step.
    func adapterValues(block: Int, pass: TrainingPass) throws -> [Float]
}

/// The trainable parameters of a LoRA run: the layout and the flat values it indexes.
public struct TrainableParameters: Sendable, Equatable, AdapterParameterSource {
    public let layout: TrainableParameterLayout
    public var values: [Float]

    public init(layout: TrainableParameterLayout, values: [Float]) {
        precondition(values.count == layout.count, "\(values.count) values for a layout of \(layout.count)")
        self.layout = layout
        self.values = values
    }

    /// PEFT's default initialization (`init_lora_weights=True`): every A from
    /// kaiming_uniform_(a=√5), i.e. U(−1/√in, 1/√in), every B zero, so the adapters start as
    /// no-ops. Each A draws from its own generator seeded by `seed` and its name, so a tensor's
    /// initial value does not depend on which other modules are targeted.
    public static func initialized(config: ModelConfiguration, lora: LoRAConfig, seed: UInt64) -> TrainableParameters {
        let layout = TrainableParameterLayout(config: config, lora: lora)
        var values = [Float](repeating: 0, count: layout.count)
        for e in layout.entries where e.role == .a {
            values.replaceSubrange(e.range, with: LoRAAdapter.kaimingUniform(count: e.count, inFeatures: e.shape[1],
                                                                             seed: seed ^ stableHash(e.name)))
        }
        return TrainableParameters(layout: layout, values: values)
    }

    /// The tensor of `entry`, copied.
    public func tensor(_ entry: TrainableParameterLayout.Entry) -> Tensor {
        Tensor(shape: entry.shape, scalars: Array(values[entry.range]))
    }

    /// The tensor with this PEFT name, or nil.
    public func tensor(named name: String) -> Tensor? { layout.entry(named: name).map(tensor) }

    /// The adapter of one targeted linear as tensors (for merging, or eval with an adapter).
    public func adapter(block: Int, target: LoRATarget, scaling: Float) -> LoRAAdapter? {
        layout.adapter(block: block, target: target).map { LoRAAdapter(a: tensor($0.a), b: tensor($0.b), scaling: scaling) }
    }

    /// A copy of the block's slice of `values`.
    public func adapterValues(block: Int, pass: TrainingPass) throws -> [Float] {
        Array(values[layout.blockRange(block)])
    }
}

/// FNV-1a over UTF-8: a seed component that is the same on every platform and run (Swift's
/// `hashValue` is randomized per process).
func stableHash(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in s.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
    return h
}
