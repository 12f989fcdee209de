import QDistIO
import QDistTestSupport
import XCTest

final class JSONParserTests: XCTestCase {
    private func parseError(_ text: String, options: JSONParser.Options = .init()) -> JSONParseError? {
        do {
            _ = try JSONParser.parse(text, options: options)
            return nil
        } catch {
            return error
        }
    }

    func testParsesEveryKindOfValueAndKeepsObjectKeyOrder() throws {
        let value = try JSONParser.parse(#" {"z": 1, "a": [true, false, null], "m": {"s": "x\ty\u00e9\ud83d\ude00"}, "n": -1.5e2} "#)
        XCTAssertEqual(value.objectValue?.map(\.key), ["z", "a", "m", "n"])
        XCTAssertEqual(value["z"], .number(1))
        XCTAssertEqual(value["a"], .array([.bool(true), .bool(false), .null]))
        XCTAssertEqual(value["m"]?["s"], .string("x\tyé😀"))
        XCTAssertEqual(value["n"], .number(-150))
    }

    /// `.float` keeps a decimal point on whole numbers (Python then reads a float, as
    /// transformers' bitsandbytes config requires) and is the same number as `.number`.
    func testFloatValuesKeepTheirDecimalPointAndEqualTheNumber() throws {
        let v: JSONValue = ["t": .float(6), "u": .float(0.25), "n": .number(6)]
        XCTAssertEqual(String(decoding: v.serialized(), as: UTF8.self), #"{"t":6.0,"u":0.25,"n":6}"#)
        XCTAssertEqual(JSONValue.float(6), .number(6))
        XCTAssertEqual(try JSONParser.parse(v.serialized())["t"]?.doubleValue, 6)
    }

    func testIntegersStayExactUpTo2To53() throws {
        let value = try JSONParser.parse("[9007199254740992, 9007199254740991, 13476839424]")
        XCTAssertEqual(value.arrayValue?.map(\.intValue), [9_007_199_254_740_992, 9_007_199_254_740_991, 13_476_839_424])
        XCTAssertNil(JSONValue.number(1.5).intValue)
    }

    func testDuplicateKeyIsRejectedAtTheSecondKeysOffset() {
        let error = parseError(#"{"w": 1, "w": 2}"#)
        XCTAssertEqual(error?.offset, 9)
        XCTAssertTrue(error?.message.contains(#"duplicate key "w""#) ?? false, "\(String(describing: error))")
    }

    func testDuplicateKeyInANestedObjectIsRejected() {
        XCTAssertNotNil(parseError(#"{"a": {"x": 1, "y": 2, "x": 3}}"#))
    }

    func testTrailingGarbageIsRejectedWithItsOffset() {
        XCTAssertEqual(parseError("{} x")?.offset, 3)
        XCTAssertEqual(parseError("{}\0")?.offset, 2)
        XCTAssertNil(parseError("{} \t\r\n"))
    }

    func testInvalidUTF8IsRejectedWithItsOffset() throws {
        let bytes: [UInt8] = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        XCTAssertThrowsError(try JSONParser.parse(bytes)) { error in
            XCTAssertEqual((error as? JSONParseError)?.offset, 6)
        }
        // Overlong encoding of "/" and an encoded surrogate are invalid too.
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF]] {
            XCTAssertThrowsError(try JSONParser.parse([0x22] + bad + [0x22]), "\(bad)")
        }
    }

    func testBytesOutsideStringsMustBeJSONTokens() {
        XCTAssertNotNil(parseError("{'a': 1}"))
        XCTAssertNotNil(parseError("[1,]"))
        XCTAssertNotNil(parseError(#"{"a" 1}"#))
        XCTAssertNotNil(parseError("tru"))
        XCTAssertNotNil(parseError(""))
    }

    func testNumbersFollowTheJSONGrammar() {
        for bad in ["01", "1.", ".5", "+1", "1e", "-", "NaN", "Infinity", "1e999"] {
            XCTAssertNotNil(parseError(bad), bad)
        }
        for good in ["0", "-0", "10", "1.25", "1e3", "1E-3", "-2.5e+10"] {
            XCTAssertNil(parseError(good), good)
        }
    }

    func testIntegersOnlyRejectsFractionsExponentsAndHugeIntegers() {
        let strict = JSONParser.Options(integersOnly: true)
        XCTAssertEqual(parseError("[1, 2.0]", options: strict)?.offset, 4)
        XCTAssertNotNil(parseError("[1e3]", options: strict))
        XCTAssertNotNil(parseError("[18446744073709551616]", options: strict))
        XCTAssertNil(parseError("[0, 281474976710656]", options: strict))
    }

    func testStringEscapesAndSurrogates() throws {
        XCTAssertEqual(try JSONParser.parse(#""\"\\\/\b\f\n\r\t\u0041""#), .string("\"\\/\u{8}\u{C}\n\r\tA"))
        XCTAssertNotNil(parseError(#""\ud800""#), "lone leading surrogate")
        XCTAssertNotNil(parseError(#""\udc00""#), "lone trailing surrogate")
        XCTAssertNotNil(parseError(#""\x41""#), "unknown escape")
        XCTAssertNotNil(parseError("\"a\nb\""), "raw control character")
        XCTAssertNotNil(parseError(#""abc"#), "unterminated")
    }

    func testDeepNestingFailsCleanlyInsteadOfOverflowingTheStack() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = parseError(deep)
        XCTAssertEqual(error?.offset, 128)
        XCTAssertTrue(error?.message.contains("nesting") ?? false)
        XCTAssertNil(parseError(String(repeating: "[", count: 128) + String(repeating: "]", count: 128)))
    }

    func testParseFileErrorNamesTheFileAndByteOffset() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let url = folder.appendingPathComponent("config.json")
        try Data(#"{"a": 1, "a": 2}"#.utf8).write(to: url)
        XCTAssertThrowsError(try JSONParser.parseFile(at: url)) { error in
            let e = error as! QDistIOError
            XCTAssertEqual(e.kind, .json)
            XCTAssertEqual(e.byteOffset, 9)
            XCTAssertTrue(e.description.hasPrefix(url.path + ": invalid JSON at byte 9: duplicate key"), e.description)
        }
    }
}
