/// One tensor's entry in a GGUF file's tensor-info table: name, ggml dimensions, type and
/// where its data starts.
///
/// GGUF lists dimensions innermost first (`dims[0]` = ggml `ne[0]` = the row length, the
/// contiguous one), the reverse of PyTorch/safetensors. `shape` gives the row-major order the
/// rest of qdist uses, so a Hugging Face `[out_features, in_features]` weight stored as
/// `ne = [in, out]` has `shape == [out, in]`. Mixing the two orders is the classic GGUF bug
/// (it silently transposes square matrices), so both are named explicitly.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The tensor's GGUF name, e.g. "blk.0.attn_q.weight".
    public var name: String
    /// ggml `ne`: dimensions innermost (row length) first; 1 to 4 of them.
    public var dims: [Int]
    /// Storage type.
    public var type: GGMLType
    /// Offset of the data from the start of the file's data section (a multiple of the
    /// file's alignment).
    public var offset: Int

    /// An entry from its parts; `dims` innermost first, as stored.
    public init(name: String, dims: [Int], type: GGMLType, offset: Int) {
        self.name = name
        self.dims = dims
        self.type = type
        self.offset = offset
    }

    /// Dimensions outermost first (row-major, as PyTorch and `Tensor` use): `dims` reversed.
    public var shape: [Int] { dims.reversed() }

    /// Number of elements.
    public var elementCount: Int { dims.reduce(1, *) }

    /// Elements per row (`ne[0]`); block-quantized rows hold a whole number of blocks.
    public var rowLength: Int { dims.first ?? 1 }

    /// Number of rows (all dimensions but the first, multiplied).
    public var rowCount: Int { dims.dropFirst().reduce(1, *) }

    /// Bytes of data: `elementCount / blockSize * typeSize` from the traits table. Only
    /// meaningful when `rowLength` is a multiple of the block size, which `GGUFFile` checks
    /// before it hands out an entry.
    public var byteCount: Int { elementCount / type.traits.blockSize * type.traits.typeSize }

    /// Bytes of data for `dims` of `type`, or nil when the row length is not a whole number of
    /// blocks or the size overflows.
    public static func byteCount(dims: [Int], type: GGMLType) -> Int? {
        var elements = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { return nil }
            elements = product
        }
        let t = type.traits
        guard (dims.first ?? 1) % t.blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / t.blockSize).multipliedReportingOverflow(by: t.typeSize)
        return overflow ? nil : bytes
    }
}
