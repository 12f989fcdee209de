import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

final class CheckpointFolderTests: XCTestCase {
    /// Ten F32 [16] tensors (64 bytes each), named in layer order.
    private func tenTensors() -> [(name: String, tensor: StoredTensor)] {
        (0..<10).map { i in
            (name: "model.layers.\(i).weight",
             tensor: StoredTensor(Tensor(shape: [16], scalars: (0..<16).map { Float(i * 100 + $0) }), as: .f32))
        }
    }

    func testSmallShardLimitWritesNumberedShardsAndAnIndexThatReadsBack() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let tensors = tenTensors()
        let saved = try ShardedCheckpointWriter(maxShardSize: 200).write(tensors, to: folder)
        XCTAssertEqual(saved.files.map(\.lastPathComponent), (1...4).map { ShardedCheckpointWriter.shardFileName($0, of: 4) })
        XCTAssertEqual(saved.files[0].lastPathComponent, "model-00001-of-00004.safetensors")
        let index = try SafetensorsIndex.load(from: folder.appendingPathComponent("model.safetensors.index.json"))
        XCTAssertEqual(index.totalSize, 640)
        XCTAssertEqual(index.weightMap["model.layers.9.weight"], "model-00004-of-00004.safetensors")
        XCTAssertEqual(index.tensors(inShard: "model-00001-of-00004.safetensors").count, 3)

        let checkpoint = try CheckpointFolder(url: folder)
        XCTAssertEqual(checkpoint.files.count, 4)
        XCTAssertEqual(Set(checkpoint.tensorNames), Set(tensors.map(\.name)))
        for (name, stored) in tensors {
            XCTAssertEqual(try checkpoint.storedTensor(name), stored, name)
            XCTAssertEqual(try checkpoint.tensor(name), stored.toTensor(), name)
        }
        XCTAssertEqual(try checkpoint.reader(for: "model.layers.4.weight").url.lastPathComponent, "model-00002-of-00004.safetensors")
        XCTAssertEqual(try checkpoint.reader(for: "model.layers.0.weight").metadata, ["format": "pt"])
        XCTAssertEqual(try Fixtures.temporaryLeftovers(in: folder), [])
    }

    func testTheIndexIsWrittenAsTransformersWritesIt() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        try ShardedCheckpointWriter(maxShardSize: 200).write(tenTensors(), to: folder)
        let ours = try String(contentsOf: folder.appendingPathComponent(SafetensorsIndex.fileName), encoding: .utf8)
        let python = try Fixtures.python(
            "import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d, indent=2, sort_keys=True))",
            [folder.appendingPathComponent(SafetensorsIndex.fileName).path])
        XCTAssertEqual(ours, python)
        XCTAssertTrue(ours.hasPrefix("{\n  \"metadata\": {\n    \"total_size\": 640\n  },\n  \"weight_map\": {\n"), ours)
    }

    func testGreedyPlanFollowsHuggingFaceRules() {
        let writer = ShardedCheckpointWriter(maxShardSize: 100)
        let plan = writer.plan([("a", 60), ("b", 40), ("c", 1), ("big", 250), ("d", 99), ("e", 2)])
        // a+b fill 100 exactly; c starts a new shard; big gets its own shard but the current
        // one stays open, so c and d share; e tips over and starts the last shard.
        XCTAssertEqual(plan, [["a", "b"], ["big"], ["c", "d"], ["e"]])
        XCTAssertEqual(writer.plan([]), [[]])
    }

    func testASingleShardIsModelSafetensorsWithNoIndexAndStaleShardsAreRemoved() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        try ShardedCheckpointWriter(maxShardSize: 200).write(tenTensors(), to: folder)
        try Data("{}".utf8).write(to: folder.appendingPathComponent("config.json"))
        let saved = try ShardedCheckpointWriter().write(tenTensors(), to: folder)
        XCTAssertEqual(saved.files.map(\.lastPathComponent), ["model.safetensors"])
        XCTAssertNil(saved.index)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(), ["config.json", "model.safetensors"])
        XCTAssertEqual(try CheckpointFolder(url: folder).tensorNames.count, 10)
    }

    func testOpensASingleFileAnIndexPathOrAOneFileFolder() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        try ShardedCheckpointWriter(maxShardSize: 200).write(tenTensors(), to: folder)
        let viaIndex = try CheckpointFolder(url: folder.appendingPathComponent(SafetensorsIndex.fileName))
        XCTAssertEqual(viaIndex.tensorNames.count, 10)
        let oneShard = try CheckpointFolder(url: folder.appendingPathComponent("model-00002-of-00004.safetensors"))
        XCTAssertEqual(oneShard.tensorNames, ["model.layers.3.weight", "model.layers.4.weight", "model.layers.5.weight"])
        XCTAssertNil(oneShard.index)

        let other = try QdistProcess.temporaryDirectory(self)
        try SafetensorsWriter.write(["x": StoredTensor(dtype: .u8, shape: [1], bytes: [1])], to: other.appendingPathComponent("adapter.safetensors"))
        XCTAssertEqual(try CheckpointFolder(url: other).tensorNames, ["x"])
    }

    private func assertIndexError(_ folder: URL, contains text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let indexPath = folder.appendingPathComponent(SafetensorsIndex.fileName).path
        XCTAssertThrowsError(try CheckpointFolder(url: folder), file: file, line: line) { error in
            let e = error as? QDistIOError
            XCTAssertEqual(e?.kind, .index, file: file, line: line)
            XCTAssertTrue("\(error)".hasPrefix(indexPath + ": "), "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(text), "\(error)", file: file, line: line)
        }
        let result = try QdistProcess.run(["inspect", folder.path])
        XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("qdist inspect: error: \(indexPath): "), result.stderr, file: file, line: line)
    }

    func testIndexNamingAMissingShardIsAOneLineErrorNamingTheIndex() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        try ShardedCheckpointWriter(maxShardSize: 200).write(tenTensors(), to: folder)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("model-00003-of-00004.safetensors"))
        try assertIndexError(folder, contains: #"weight_map names shard "model-00003-of-00004.safetensors", which does not exist"#)
    }

    func testIndexMappingATensorToAShardThatLacksItIsAOneLineErrorNamingTheIndex() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        try ShardedCheckpointWriter(maxShardSize: 200).write(tenTensors(), to: folder)
        var index = try SafetensorsIndex.load(from: folder.appendingPathComponent(SafetensorsIndex.fileName))
        index.weightMap["model.layers.99.weight"] = "model-00001-of-00004.safetensors"
        try index.write(to: folder.appendingPathComponent(SafetensorsIndex.fileName))
        try assertIndexError(folder, contains: #"puts tensor "model.layers.99.weight" in "model-00001-of-00004.safetensors", which does not hold it"#)
    }

    func testShardHoldingATensorTheIndexDoesNotListIsAnError() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        try ShardedCheckpointWriter(maxShardSize: 200).write(tenTensors(), to: folder)
        var index = try SafetensorsIndex.load(from: folder.appendingPathComponent(SafetensorsIndex.fileName))
        index.weightMap["model.layers.0.weight"] = nil
        try index.write(to: folder.appendingPathComponent(SafetensorsIndex.fileName))
        try assertIndexError(folder, contains: #"holds tensor "model.layers.0.weight" but weight_map does not list it"#)
    }

    func testIndexWithAPathOutsideItsFolderOrAWrongTypeIsRejected() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let url = folder.appendingPathComponent(SafetensorsIndex.fileName)
        try Data(#"{"metadata":{},"weight_map":{"w":"../model.safetensors"}}"#.utf8).write(to: url)
        try assertIndexError(folder, contains: "not a plain file name")
        try Data(#"{"metadata":{"total_size":"12"},"weight_map":{}}"#.utf8).write(to: url)
        try assertIndexError(folder, contains: "total_size")
        try Data(#"{"metadata":{}}"#.utf8).write(to: url)
        try assertIndexError(folder, contains: #"missing key "weight_map""#)
    }

    func testRanksWriteTheirOwnShardsAndRankZeroWritesTheIndex() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let tensors = tenTensors()
        var shards: [(file: String, tensorBytes: [String: Int])] = []
        for rank in 0..<2 {
            let part = tensors.enumerated().filter { $0.offset % 2 == rank }.map(\.element)
            let file = ShardedCheckpointWriter.shardFileName(rank + 1, of: 2)
            try SafetensorsWriter.write(Dictionary(uniqueKeysWithValues: part.map { ($0.name, $0.tensor) }),
                                        metadata: ["format": "pt"], to: folder.appendingPathComponent(file))
            shards.append((file: file, tensorBytes: Dictionary(uniqueKeysWithValues: part.map { ($0.name, $0.tensor.bytes.count) })))
        }
        let index = try ShardedCheckpointWriter.writeIndex(shards: shards, to: folder)
        XCTAssertEqual(index.totalSize, 640)
        let checkpoint = try CheckpointFolder(url: folder)
        XCTAssertEqual(Set(checkpoint.tensorNames), Set(tensors.map(\.name)))

        var wrong = shards
        wrong[1].tensorBytes["model.layers.1.weight"] = 65
        XCTAssertThrowsError(try ShardedCheckpointWriter.writeIndex(shards: wrong, to: folder)) {
            XCTAssertTrue("\($0)".contains(#"does not hold the tensors listed for it (first difference: "model.layers.1.weight")"#), "\($0)")
        }
        var duplicated = shards
        duplicated[1].tensorBytes["model.layers.0.weight"] = 64
        XCTAssertThrowsError(try ShardedCheckpointWriter.writeIndex(shards: duplicated, to: folder, verify: false)) {
            XCTAssertTrue("\($0)".contains("is in both"), "\($0)")
        }
    }

    func testFolderWithoutWeightsOrWithAmbiguousFilesIsAnError() throws {
        let empty = try QdistProcess.temporaryDirectory(self)
        XCTAssertThrowsError(try CheckpointFolder(url: empty)) { XCTAssertTrue("\($0)".contains("no model.safetensors"), "\($0)") }
        let t = ["x": StoredTensor(dtype: .u8, shape: [1], bytes: [1])]
        try SafetensorsWriter.write(t, to: empty.appendingPathComponent("a.safetensors"))
        try SafetensorsWriter.write(t, to: empty.appendingPathComponent("b.safetensors"))
        XCTAssertThrowsError(try CheckpointFolder(url: empty)) { XCTAssertTrue("\($0)".contains("2 .safetensors files"), "\($0)") }
        XCTAssertThrowsError(try CheckpointFolder(url: empty.appendingPathComponent("nope"))) {
            XCTAssertTrue("\($0)".hasSuffix("nope: No such file or directory"), "\($0)")
        }
    }
}
