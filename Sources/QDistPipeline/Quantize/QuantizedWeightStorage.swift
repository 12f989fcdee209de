import QDistQuant
import QDistTensor

/// From what a solver returns (`QuantizedWeight`: signed codes, Float zero points) to what every
/// checkpoint format stores (`QuantizedLinearWeights`): the one place that decides how each kind
/// of grid is kept — integer zero points, HQQ's fractional ones, FP8 bit patterns, NF4/FP4
/// code-book indices, one scale per tensor.
extension QuantizedLinearWeights {
    /// The stored form of a quantizer's output (signed codes and zero points, per-tensor scales
    /// repeated per output channel and marked `perTensor`). `fractionalZeros` (the solver's
    /// `producesFractionalZeroPoints`) keeps the zero points as floats — decided by the solver,
    /// not by looking at them, so an HQQ weight whose zeros happen to be whole numbers still goes
    /// to the float-zero format its plan validated.
    init(quantizedWeight q: QuantizedWeight, name: String, bias: Tensor?, fractionalZeros: Bool = false) throws {
        let p = q.parameters
        let rows = q.rows
        let scales = p.strategy == .tensor ? [Float](repeating: p.scales[0], count: rows) : p.scales
        let zeros = p.strategy == .tensor ? [Float](repeating: p.zeroPoints[0], count: rows) : p.zeroPoints
        let groupSize: Int? = p.strategy == .group ? p.groupSize : nil
        if q.args.type == .float {
            // FP8: the codes are E4M3 bit patterns, stored as they are.
            try self.init(name: name, inFeatures: q.columns, outFeatures: rows, numBits: 8, groupSize: nil,
                          codes: q.codes.map { Int32(UInt8(bitPattern: $0)) }, scales: scales, zeroPoints: nil, bias: bias,
                          codeType: .float, perTensor: p.strategy == .tensor)
            return
        }
        if q.args.type.fourBitType != nil {
            // NF4/FP4: code-book indices and exact group absmaxes; double quantization is applied
            // when the weight is read back or written, over the whole joined weight.
            try self.init(name: name, inFeatures: q.columns, outFeatures: rows, numBits: 4, groupSize: groupSize,
                          codes: q.codes.map { Int32($0) }, scales: scales, zeroPoints: nil, bias: bias,
                          codeType: q.args.type, doubleQuantizedAbsmax: q.args.doubleQuantize)
            return
        }
        if fractionalZeros {
            // HQQ's zero points stay floats: rounding them would undo the solver's work.
            let half = Float(1 << (q.args.numBits - 1))
            try self.init(name: name, inFeatures: q.columns, outFeatures: rows, numBits: q.args.numBits, groupSize: groupSize,
                          codes: q.codes.map { Int32($0) + Int32(half) }, scales: scales, zeroPoints: nil,
                          gIdx: p.strategy == .group ? q.groupIndex : nil, bias: bias, perTensor: p.strategy == .tensor,
                          fractionalZeroPoints: zeros.map { $0 + half })
            return
        }
        try self.init(name: name, inFeatures: q.columns, outFeatures: rows, numBits: q.args.numBits, groupSize: groupSize,
                      signedCodes: q.codes.map(Int32.init), scales: scales,
                      signedZeroPoints: q.args.symmetric ? nil : zeros.map { Int32($0.rounded()) },
                      gIdx: p.strategy == .group ? q.groupIndex : nil, bias: bias, perTensor: p.strategy == .tensor)
    }
}
