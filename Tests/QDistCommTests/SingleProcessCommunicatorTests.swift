import QDistComm
import XCTest

/// The laptop mode: a one-rank group where every collective is the identity, arguments are
/// validated as under MPI, and point-to-point has no peer.
final class SingleProcessCommunicatorTests: XCTestCase {
    let comm = SingleProcessCommunicator()

    func testIsRankZeroOfOneAndMain() {
        XCTAssertEqual(comm.rank, 0)
        XCTAssertEqual(comm.size, 1)
        XCTAssertEqual(comm.ranksOnNode, 1)
        XCTAssertTrue(comm.isMain)
        XCTAssertEqual(comm.implementationName, "single-process")
        XCTAssertEqual(comm.maxChunkElements, Int(Int32.max))
    }

    func testBarrierReturns() throws {
        try comm.barrier()
    }

    func testBroadcastFromRootZeroLeavesBufferUnchanged() throws {
        var buffer: [Float] = [1, 2, 3]
        try comm.broadcast(&buffer, root: 0)
        XCTAssertEqual(buffer, [1, 2, 3])
    }

    func testBroadcastFromMissingRootThrowsInvalidArgument() {
        var buffer: [Int32] = [1]
        XCTAssertThrowsError(try comm.broadcast(&buffer, root: 1)) { error in
            XCTAssertEqual((error as? CommunicatorError)?.kind, .invalidArgument)
        }
    }

    func testReduceToRootZeroIsIdentityAndOtherRootsThrow() throws {
        var buffer: [Double] = [1.5, -2]
        try comm.reduce(&buffer, op: .sum, root: 0)
        XCTAssertEqual(buffer, [1.5, -2])
        XCTAssertThrowsError(try comm.reduce(&buffer, op: .max, root: -1))
    }

    func testAllreduceEveryOpIsIdentity() throws {
        for op in ReduceOp.allCases {
            var floats: [Float] = [3, -1, 7]
            var longs: [Int64] = [1 << 40, -5]
            var bytes: [UInt8] = [0, 255]
            var ints: [Int] = [42]
            try comm.allreduce(&floats, op: op)
            try comm.allreduce(&longs, op: op)
            try comm.allreduce(&bytes, op: op)
            try comm.allreduce(&ints, op: op)
            XCTAssertEqual(floats, [3, -1, 7], "\(op)")
            XCTAssertEqual(longs, [1 << 40, -5], "\(op)")
            XCTAssertEqual(bytes, [0, 255], "\(op)")
            XCTAssertEqual(ints, [42], "\(op)")
        }
    }

    func testAllgatherReturnsOwnBuffer() throws {
        XCTAssertEqual(try comm.allgather([Int32(4), 5, 6]), [4, 5, 6])
        XCTAssertEqual(try comm.allgather([Double]()), [])
    }

    func testAllgathervReturnsOneBlockHoldingOwnBufferIncludingEmpty() throws {
        XCTAssertEqual(try comm.allgatherv([Float(1), 2]), [[1, 2]])
        XCTAssertEqual(try comm.allgatherv([UInt8]()), [[]])
    }

    func testReduceScatterReturnsOwnBlock() throws {
        XCTAssertEqual(try comm.reduceScatter([Float(1), 2, 3], counts: [3]), [1, 2, 3])
        XCTAssertEqual(try comm.reduceScatter([Int64](), counts: [0], op: .max), [])
    }

    func testReduceScatterRejectsCountsThatDoNotMatch() {
        XCTAssertThrowsError(try comm.reduceScatter([Float(1), 2], counts: [3])) { error in
            XCTAssertEqual((error as? CommunicatorError)?.kind, .invalidArgument)
        }
        XCTAssertThrowsError(try comm.reduceScatter([Float(1), 2], counts: [1, 1]))
    }

    func testSendAndReceiveThrowNoPeer() {
        XCTAssertThrowsError(try comm.send([Float(1)], to: 0, tag: 0)) { error in
            XCTAssertEqual((error as? CommunicatorError)?.kind, .noPeer)
            XCTAssertTrue("\(error)".contains("no peer"), "\(error)")
        }
        XCTAssertThrowsError(try comm.receive(Float.self, count: 1, from: 0, tag: 0)) { error in
            XCTAssertEqual((error as? CommunicatorError)?.kind, .noPeer)
        }
        XCTAssertThrowsError(try comm.send([Int32(1)], to: 1, tag: 0))
    }

    func testAllgatherStringsAndHostNamesHoldOneEntry() throws {
        XCTAssertEqual(try comm.allgatherStrings("héllo"), ["héllo"])
        let hosts = try comm.gatherHostNames()
        XCTAssertEqual(hosts.count, 1)
        XCTAssertFalse(hosts[0].isEmpty)
    }

    func testDuplicateIsAnotherSingleProcessCommunicatorWithTheRequestedChunkSize() throws {
        let copy = try comm.duplicate(maxChunkElements: 1000)
        XCTAssertTrue(copy is SingleProcessCommunicator)
        XCTAssertFalse(copy === comm)
        XCTAssertEqual(copy.maxChunkElements, 1000)
        XCTAssertEqual(try comm.duplicate(maxChunkElements: nil).maxChunkElements, comm.maxChunkElements)
        try copy.finalize()
    }

    func testErrorDescriptionNamesCallFileAndLine() {
        let error = CommunicatorError(.mpi(code: 5), call: "MPI_Allreduce", message: "MPI_ERR_COUNT: invalid count argument")
        let text = error.description
        XCTAssertTrue(text.contains("MPI_Allreduce"), text)
        XCTAssertTrue(text.contains("SingleProcessCommunicatorTests.swift:"), text)
        XCTAssertTrue(text.contains("invalid count"), text)
        XCTAssertTrue(text.contains("MPI error 5"), text)
    }

    func testWorksThroughTheProtocolExistential() throws {
        let any: any Communicator = comm
        var buffer: [Float] = [2]
        try any.allreduce(&buffer, op: .sum)
        XCTAssertEqual(buffer, [2])
        XCTAssertEqual(try any.reduceScatter([Float(9)], counts: [1]), [9])
    }
}
