import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

/// Byte-level agreement with the reference implementation (Python `safetensors` 0.8 in the
/// repository's .venv). These never skip: a missing Python environment fails them.
final class SafetensorsInteropTests: XCTestCase {
    private static let torchNames: [DType: String] = [
        .bool: "bool", .u8: "uint8", .i8: "int8", .f8E5M2: "float8_e5m2", .f8E4M3: "float8_e4m3fn",
        .i16: "int16", .u16: "uint16", .f16: "float16", .bf16: "bfloat16", .i32: "int32", .u32: "uint32",
        .f32: "float32", .f64: "float64", .i64: "int64", .u64: "uint64",
    ]

    /// Reads our file with deserialize (raw bytes, every dtype) and safe_open (numpy-native
    /// dtypes, since numpy has no bf16/fp8; and the metadata), then re-serializes the same tensors with the reference writer and
    /// compares whole files. Prints "OK" or one problem per line.
    private static let checkOurFile = """
        import sys, json, ctypes, safetensors
        path, expected = sys.argv[1], json.load(open(sys.argv[2]))
        data = open(path, 'rb').read()
        problems = []
        got = dict(safetensors.deserialize(data))
        if set(got) != set(expected['tensors']):
            problems.append('names differ: %s' % sorted(set(got) ^ set(expected['tensors'])))
        numpy_types = {'F32', 'F16', 'F64', 'I8', 'U8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64', 'BOOL'}
        f = safetensors.safe_open(path, framework='numpy')
        for name, e in expected['tensors'].items():
            g = got.get(name)
            if g is None: continue
            if g['dtype'] != e['dtype'] or list(g['shape']) != e['shape'] or bytes(g['data']).hex() != e['hex']:
                problems.append('deserialize %s: %s %s' % (name, g['dtype'], g['shape']))
            if e['dtype'] in numpy_types:
                a = f.get_tensor(name)
                if a.tobytes().hex() != e['hex'] or list(a.shape) != e['shape']:
                    problems.append('safe_open %s: %s %s' % (name, a.dtype, a.shape))
        if f.metadata() != expected['metadata']:
            problems.append('metadata %s' % f.metadata())
        keep, specs = [], {}
        for name, e in expected['tensors'].items():
            raw = bytes.fromhex(e['hex'])
            buf = ctypes.create_string_buffer(raw, max(len(raw), 1))
            keep.append(buf)
            specs[name] = safetensors.TensorSpec(dtype=e['torch'], shape=e['shape'], data_ptr=ctypes.addressof(buf), data_len=len(raw))
        ref = bytes(safetensors.serialize(specs, metadata=expected['metadata']))
        if ref != data:
            first = next((i for i, (x, y) in enumerate(zip(ref, data)) if x != y), min(len(ref), len(data)))
            problems.append('reference writer output differs from ours at byte %d (sizes %d vs %d)' % (first, len(ref), len(data)))
        print('\\n'.join(problems) or 'OK')
        """

    private func expectation(_ tensors: [String: StoredTensor], metadata: [String: String]) -> JSONValue {
        .object([
            (key: "tensors", value: .object(tensors.map { name, t in
                (key: name, value: ["dtype": .string(t.dtype.rawValue), "shape": .array(t.shape.map { .integer($0) }),
                                    "hex": .string(Fixtures.hex(t.bytes)), "torch": .string(Self.torchNames[t.dtype]!)])
            })),
            (key: "metadata", value: .object(metadata.map { (key: $0.key, value: .string($0.value)) })),
        ])
    }

    func testPythonReadsOurFileBitExactlyAndTheReferenceWriterProducesIdenticalBytes() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let tensors = Fixtures.allDTypeTensors()
        XCTAssertTrue(Set(tensors.values.map(\.dtype)).isSuperset(of: [.f32, .f16, .bf16, .i8, .u8, .i32, .f8E4M3, .f8E5M2]))
        let metadata = ["format": "pt"]
        let url = folder.appendingPathComponent("ours.safetensors")
        try SafetensorsWriter.write(tensors, metadata: metadata, to: url)
        let expected = folder.appendingPathComponent("expected.json")
        try Data(expectation(tensors, metadata: metadata).serialized()).write(to: expected)
        XCTAssertEqual(try Fixtures.python(Self.checkOurFile, [url.path, expected.path]), "OK\n")
    }

    func testReferenceWriterAgreesOnOrderAndPaddingForManyNameLengthsAndDTypeMixes() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let dtypes = DType.allCases
        for round in 0..<6 {
            var tensors: [String: StoredTensor] = [:]
            for i in 0..<(3 + round * 2) {
                let dtype = dtypes[(i * 7 + round) % dtypes.count]
                let name = "layer.\(i % 3).\(String(repeating: "w", count: (i + round) % 5))\(i)"
                let shape = [1 + (i + round) % 3, 2]
                var bytes = Fixtures.bytes(shape.reduce(1, *) * dtype.byteSize, seed: UInt64(round * 100 + i + 1))
                if dtype == .bool { bytes = bytes.map { $0 & 1 } }
                tensors[name] = StoredTensor(dtype: dtype, shape: shape, bytes: bytes)
            }
            let metadata = round % 2 == 0 ? ["format": "pt"] : ["qdist": "é\"\\\n"]
            let url = folder.appendingPathComponent("round\(round).safetensors")
            try SafetensorsWriter.write(tensors, metadata: metadata, to: url)
            let expected = folder.appendingPathComponent("round\(round).json")
            try Data(expectation(tensors, metadata: metadata).serialized()).write(to: expected)
            XCTAssertEqual(try Fixtures.python(Self.checkOurFile, [url.path, expected.path]), "OK\n", "round \(round)")
        }
    }

    func testWeReadAFilePythonWroteBitExactly() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let url = folder.appendingPathComponent("python.safetensors")
        let script = """
            import sys, json, ctypes, numpy as np, safetensors
            rng = np.random.default_rng(1234)
            arrays = {
                'f32': rng.standard_normal((3, 5)).astype(np.float32),
                'f16': rng.standard_normal((7,)).astype(np.float16),
                'f64': rng.standard_normal((2, 2)),
                'i8': rng.integers(-128, 128, (4, 4), dtype=np.int8),
                'u8': rng.integers(0, 256, (9,), dtype=np.uint8),
                'i32': rng.integers(-2**20, 2**20, (2, 3), dtype=np.int32),
                'i64': rng.integers(-2**20, 2**20, (3,), dtype=np.int64),
                'flag': rng.integers(0, 2, (5,)).astype(np.bool_),
                'scalar': np.array(2.5, dtype=np.float32),
            }
            raw = {'bf16': ('bfloat16', 'BF16', [4, 3], 2), 'fp8.e4m3': ('float8_e4m3fn', 'F8_E4M3', [6], 1),
                   'fp8.e5m2': ('float8_e5m2', 'F8_E5M2', [2, 5], 1)}
            keep, specs, expected = [], {}, {}
            for name, a in arrays.items():
                b = ctypes.create_string_buffer(a.tobytes(), max(a.nbytes, 1)); keep.append(b)
                specs[name] = safetensors.TensorSpec(dtype=a.dtype.name, shape=list(a.shape), data_ptr=ctypes.addressof(b), data_len=a.nbytes)
                expected[name] = {'shape': list(a.shape), 'hex': a.tobytes().hex(), 'f32': a.astype(np.float32).tobytes().hex()}
            for name, (torch, st, shape, size) in raw.items():
                data = rng.integers(0, 256, int(np.prod(shape)) * size, dtype=np.uint8).tobytes()
                b = ctypes.create_string_buffer(data, len(data)); keep.append(b)
                specs[name] = safetensors.TensorSpec(dtype=torch, shape=shape, data_ptr=ctypes.addressof(b), data_len=len(data))
                entry = {'shape': shape, 'hex': data.hex()}
                if st == 'BF16':
                    entry['f32'] = (np.frombuffer(data, dtype=np.uint16).astype(np.uint32) << 16).astype('<u4').tobytes().hex()
                expected[name] = entry
            safetensors.serialize_file(specs, sys.argv[1], metadata={'format': 'pt', 'source': 'numpy', 'note': 'é'})
            print(json.dumps(expected))
            """
        let output = try Fixtures.python(script, [url.path])
        let expected = try JSONParser.parse(output.trimmingCharacters(in: .whitespacesAndNewlines))
        let reader = try SafetensorsReader(url: url)
        XCTAssertEqual(reader.metadata, ["format": "pt", "source": "numpy", "note": "é"])
        let pairs = try XCTUnwrap(expected.objectValue)
        XCTAssertEqual(Set(reader.tensorNames), Set(pairs.map(\.key)))
        for (name, e) in pairs {
            let bytes = Fixtures.bytes(hex: e["hex"]!.stringValue!)
            XCTAssertEqual(try reader.storedTensor(name).bytes, bytes, name)
            XCTAssertEqual(try reader.withRawBytes(name) { Array($0) }, bytes, name)
            XCTAssertEqual(try reader.info(name).shape, e["shape"]!.arrayValue!.map { $0.intValue! }, name)
            if let f32 = e["f32"]?.stringValue {
                let decoded = try reader.tensor(name).scalars.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
                XCTAssertEqual(decoded, Fixtures.bytes(hex: f32), "\(name) decodes differently from numpy")
            }
        }
        XCTAssertEqual(try reader.info("fp8.e4m3").dtype, .f8E4M3)
        XCTAssertEqual(try reader.info("flag").dtype, .bool)
    }
}
