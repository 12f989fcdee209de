import QDistTensor
import XCTest

/// PythonRandom against values printed by CPython 3.11's `random` module (the reference is the
/// interpreter itself; the snippets are in each assertion's message).
final class PythonRandomTests: XCTestCase {
    func testGetrandbitsMatchesCPythonForSeedZero() {
        var r = PythonRandom(seed: 0)
        XCTAssertEqual((0..<3).map { _ in r.getrandbits(32) }, [3_626_764_237, 1_654_615_998, 3_255_389_356],
                       "random.seed(0); [random.getrandbits(32) for _ in range(3)]")
        XCTAssertEqual(r.getrandbits(7), 113, "then random.getrandbits(7)")
        XCTAssertEqual(r.getrandbits(33), 1_806_341_205, "then random.getrandbits(33): two words, the second keeps one bit")
        XCTAssertEqual(r.getrandbits(64), 17_809_683_713_383_489_082, "then random.getrandbits(64)")
    }

    func testRandintMatchesCPythonIncludingMultiWordSeedsAndRejection() {
        var r = PythonRandom(seed: 12_345_678_901_234)
        XCTAssertEqual((0..<6).map { _ in r.randint(5, 17) }, [5, 13, 7, 11, 13, 11],
                       "random.seed(12345678901234) (a two-word key); [random.randint(5, 17) for _ in range(6)]")
        var z = PythonRandom(seed: 0)
        XCTAssertEqual((0..<5).map { _ in z.randint(0, 288_000) }, [201_979, 220_500, 21_225, 135_746, 268_055],
                       "random.seed(0); [random.randint(0, 288000) for _ in range(5)]")
    }
}
