/// A dense, row-major Float32 tensor: the type every computation in qdist works on.
///
/// Storage is a plain `[Float]`, so a tensor is a value (copy-on-write) and `Sendable`. Files
/// and messages hold other element types; `StoredTensor` converts at the edge. Shape errors are
/// programming errors and trap with both shapes in the message.
public struct Tensor: Sendable, Equatable {
    /// Sizes of each dimension, outermost first; `[]` is a scalar.
    public private(set) var shape: [Int]
    /// Elements in row-major order; `scalars.count == shape.reduce(1, *)`.
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(
            shape.reduce(1, *) == scalars.count,
            "shape \(shape) needs \(shape.reduce(1, *)) elements, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of `shape` filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A zero tensor of `shape`.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }

    /// The identity matrix of size n×n.
    public static func identity(_ n: Int) -> Tensor {
        var t = Tensor.zeros([n, n])
        for i in 0..<n { t.scalars[i * n + i] = 1 }
        return t
    }

    /// Number of elements.
    public var count: Int { scalars.count }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// Rows of a matrix (the product of all dimensions but the last, for higher ranks).
    public var rows: Int { shape.isEmpty ? 1 : count / max(shape[shape.count - 1], 1) }
    /// Columns of a matrix: the last dimension.
    public var columns: Int { shape.last ?? 1 }

    /// Element of a matrix at (row, column).
    public subscript(row: Int, column: Int) -> Float {
        get { scalars[row * columns + column] }
        set { scalars[row * columns + column] = newValue }
    }

    /// The same elements viewed with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }

    /// Rows `range` of a matrix (or of the outermost dimension), copied.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(!shape.isEmpty && range.lowerBound >= 0 && range.upperBound <= shape[0],
                     "rows \(range) out of bounds for shape \(shape)")
        let inner = shape[0] == 0 ? 0 : count / shape[0]
        var newShape = shape
        newShape[0] = range.count
        return Tensor(shape: newShape, scalars: Array(scalars[range.lowerBound * inner..<range.upperBound * inner]))
    }

    /// Columns `range` of a matrix, copied.
    public func columns(_ range: Range<Int>) -> Tensor {
        precondition(rank == 2 && range.lowerBound >= 0 && range.upperBound <= columns,
                     "columns \(range) out of bounds for shape \(shape)")
        let r = rows, c = columns, w = range.count
        var out = [Float](repeating: 0, count: r * w)
        scalars.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<r {
                    for j in 0..<w { dst[i * w + j] = src[i * c + range.lowerBound + j] }
                }
            }
        }
        return Tensor(shape: [r, w], scalars: out)
    }

    /// Matrices stacked along the outermost dimension (all other dimensions must agree).
    public static func concatenateRows(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty, "concatenateRows of nothing")
        let tail = Array(parts[0].shape.dropFirst())
        var scalars: [Float] = []
        scalars.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        var rows = 0
        for p in parts {
            precondition(Array(p.shape.dropFirst()) == tail, "concatenateRows: \(p.shape) vs \(parts[0].shape)")
            scalars += p.scalars
            rows += p.shape.first ?? 1
        }
        return Tensor(shape: [rows] + tail, scalars: scalars)
    }

    /// Read-only access to the elements without copying.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeBufferPointer(body)
    }

    /// Mutable access to the elements without copying.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer(body)
    }
}

/// A tensor as stored in a file or message: element type, shape, and little-endian bytes.
///
/// This is what readers return and writers take, so quantized payloads (packed I32 codes, U8
/// nibbles, fp8 scales) pass through untouched; `toTensor()` decodes floats for computing.
public struct StoredTensor: Sendable, Equatable {
    public var dtype: DType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(
            shape.reduce(1, *) * dtype.byteSize == bytes.count,
            "\(dtype.rawValue) \(shape) needs \(shape.reduce(1, *) * dtype.byteSize) bytes, got \(bytes.count)")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// Encodes a Float32 tensor into `dtype` (rounding to nearest even; fp8 saturates).
    public init(_ tensor: Tensor, as dtype: DType) {
        var bytes = [UInt8](repeating: 0, count: tensor.count * dtype.byteSize)
        bytes.withUnsafeMutableBytes { raw in
            tensor.withUnsafeBufferPointer { dtype.encode($0, into: raw.baseAddress!) }
        }
        self.init(dtype: dtype, shape: tensor.shape, bytes: bytes)
    }

    /// Number of elements.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Decodes the elements to Float32.
    public func toTensor() -> Tensor {
        let n = elementCount
        var out = [Float](repeating: 0, count: n)
        bytes.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { dst in
                if n > 0 { dtype.decode(raw.baseAddress!, count: n, into: dst.baseAddress!) }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }
}
