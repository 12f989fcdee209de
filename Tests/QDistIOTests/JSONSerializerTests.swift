import Foundation
import QDistIO
import XCTest

final class JSONSerializerTests: XCTestCase {
    func testCompactOutputHasNoSpacesAndKeepsKeyOrder() {
        let value: JSONValue = ["z": 1, "a": [1.5, "x", nil, true], "e": [:], "l": []]
        XCTAssertEqual(value.compactText, #"{"z":1,"a":[1.5,"x",null,true],"e":{},"l":[]}"#)
    }

    func testCompactStringEscapingMatchesSerdeJSON() {
        // serde_json: \" \\ \b \f \n \r \t short forms, other controls \u00xx lowercase,
        // "/" DEL and non-ASCII raw.
        let text = "q\"b\\s/\u{8}\u{C}\n\r\t\u{1}\u{1F}\u{7F}é😀"
        XCTAssertEqual(JSONSerializer.quoted(text), "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\u{7F}é😀\"")
    }

    func testNumbersAreWrittenAsIntegersWhenIntegral() {
        XCTAssertEqual(JSONSerializer.numberText(13_476_839_424), "13476839424")
        XCTAssertEqual(JSONSerializer.numberText(-0.0), "0")
        XCTAssertEqual(JSONSerializer.numberText(1e-05), "1e-05")
        XCTAssertEqual(JSONSerializer.numberText(0.041666666666666664), "0.041666666666666664")
        XCTAssertEqual(JSONSerializer.numberText(.nan), "null")
    }

    func testSerializedTextParsesBackToTheSameValue() throws {
        let value: JSONValue = ["k\u{1}": ["nested": [1, 2, ["deep": "é\"\\"]]], "n": 0.1, "big": 9_007_199_254_740_992]
        XCTAssertEqual(try JSONParser.parse(value.serialized()), value)
        XCTAssertEqual(try JSONParser.parse(value.serialized(.pretty(sortKeys: false))), value)
    }

    func testPrettyOutputMatchesPythonJSONDumpsIndent2SortKeys() throws {
        let value: JSONValue = ["weight_map": ["b": "é", "a\u{7F}": "x"], "metadata": ["total_size": 16],
                                "empty": [:], "list": [1, [], "t"]]
        let ours = String(decoding: value.serialized(.pretty(sortKeys: true)), as: UTF8.self)
        let python = try Fixtures.python(
            "import json,sys; print(json.dumps(json.loads(sys.argv[1]), indent=2, sort_keys=True), end='')",
            [value.compactText])
        XCTAssertEqual(ours, python)
    }

    func testCompactOutputMatchesPythonWithCompactSeparatorsAndRawUnicode() throws {
        let value: JSONValue = ["s": "a\u{1}\u{1F}\u{7F}\"\\/é\n", "n": [1, 2.5, -3], "o": ["x": nil, "y": false]]
        let python = try Fixtures.python(
            "import json,sys; print(json.dumps(json.loads(sys.argv[1]), separators=(',',':'), ensure_ascii=False), end='')",
            [value.compactText])
        XCTAssertEqual(value.compactText, python)
    }
}
