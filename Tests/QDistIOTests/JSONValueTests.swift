import Foundation
import QDistIO
import XCTest

final class JSONValueTests: XCTestCase {
    func testObjectEqualityIgnoresKeyOrderButObjectValueKeepsIt() throws {
        let a = try JSONParser.parse(#"{"x":1,"y":[true,{"p":null,"q":"s"}]}"#)
        let b = try JSONParser.parse(#"{"y":[true,{"q":"s","p":null}],"x":1}"#)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a.objectValue?.map(\.key), b.objectValue?.map(\.key))
        XCTAssertNotEqual(a, try JSONParser.parse(#"{"x":1,"y":[true,{"p":null}]}"#))
        XCTAssertNotEqual(JSONValue.number(1), JSONValue.bool(true))
    }

    func testTypedAccessorsReturnNilForOtherKinds() {
        let v: JSONValue = ["n": 3, "s": "t", "b": false, "a": [1], "z": nil]
        XCTAssertEqual(v["n"]?.intValue, 3)
        XCTAssertNil(v["s"]?.intValue)
        XCTAssertEqual(v["s"]?.stringValue, "t")
        XCTAssertEqual(v["b"]?.boolValue, false)
        XCTAssertEqual(v["a"]?.arrayValue, [1])
        XCTAssertEqual(v["z"]?.isNull, true)
        XCTAssertNil(v["missing"])
        XCTAssertNil(JSONValue.number(9_007_199_254_740_994).intValue)
    }

    func testCodableRoundTripThroughFoundation() throws {
        let v: JSONValue = ["a": [1, 2.5, "x", true, nil], "o": ["k": "v"]]
        XCTAssertEqual(try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(v)), v)
        XCTAssertEqual(try JSONDecoder().decode(JSONValue.self, from: Data("[1, true]".utf8)), [1, true])
    }
}
