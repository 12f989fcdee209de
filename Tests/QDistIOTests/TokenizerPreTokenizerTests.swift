@testable import QDistIO
import XCTest

/// The hand-written pattern scanners against the splits Python `tokenizers` 0.23 produces
/// (`pre_tokenize_str`, recorded here), edge case by edge case.
final class TokenizerPreTokenizerTests: XCTestCase {
    private func words(_ text: String, _ steps: [PreTokenizerStep]) -> [String] {
        let scalars = text.unicodeScalars.map(\.value)
        var out: [String] = []
        scalars.withUnsafeBufferPointer { buffer in
            PreTokenizer(steps: steps).forEachWord(in: buffer) { word in
                var view = String.UnicodeScalarView()
                for v in word { view.append(Unicode.Scalar(v)!) }
                out.append(String(view))
            }
        }
        return out
    }

    private let gpt2: [PreTokenizerStep] = [.byteLevel(addPrefixSpace: false, useRegex: true)]
    private let llama3: [PreTokenizerStep] = [.split(.llama3(maxDigits: 3), .isolated, invert: false),
                                              .byteLevel(addPrefixSpace: false, useRegex: false)]
    private let qwen2: [PreTokenizerStep] = [.split(.llama3(maxDigits: 1), .isolated, invert: false),
                                             .byteLevel(addPrefixSpace: false, useRegex: false)]

    func testGPT2PatternSplitsLowercaseContractionsButNotUppercaseOnes() {
        XCTAssertEqual(words("I'm you're they've it's we'll he'd don't", gpt2),
                       ["I", "'m", " you", "'re", " they", "'ve", " it", "'s", " we", "'ll", " he", "'d", " don", "'t"])
        XCTAssertEqual(words("I'M HERE 'S", gpt2), ["I", "'", "M", " HERE", " '", "S"])
    }

    func testGPT2PatternKeepsDigitRunsWholeWithTheirLeadingSpace() {
        XCTAssertEqual(words(" 12345 x1y", gpt2), [" 12345", " x", "1", "y"])
    }

    func testGPT2PatternLeavesTheLastSpaceOfARunForTheNextWord() {
        XCTAssertEqual(words("a   b", gpt2), ["a", "  ", " b"])
        XCTAssertEqual(words("x  ,y", gpt2), ["x", " ", " ,", "y"])
        XCTAssertEqual(words("a  ", gpt2), ["a", "  "], "trailing whitespace stays one piece")
        XCTAssertEqual(words(" \u{A0}x", gpt2), [" ", "\u{A0}", "x"], "only U+0020 joins the next word")
    }

    func testGPT2PatternSplitsNewlinesAndTabsOneByOneBeforeAWord() {
        XCTAssertEqual(words("\n\nx", gpt2), ["\n", "\n", "x"])
        XCTAssertEqual(words("  \tfoo", gpt2), ["  ", "\t", "foo"])
        XCTAssertEqual(words("a\n\n b", gpt2), ["a", "\n\n", " b"])
        XCTAssertEqual(words("tab\t\tz", gpt2), ["tab", "\t", "\t", "z"])
        XCTAssertEqual(words("end\r\n", gpt2), ["end", "\r\n"])
    }

    func testGPT2PatternGroupsPunctuationRuns() {
        XCTAssertEqual(words("(hello ((world", gpt2), ["(", "hello", " ((", "world"])
        XCTAssertEqual(words("hello!!\n\nworld", gpt2), ["hello", "!!", "\n", "\n", "world"])
    }

    func testLlama3PatternMatchesContractionsInAnyCaseIncludingLongS() {
        XCTAssertEqual(words("I'M HERE 'S", llama3), ["I", "'M", " HERE", " '", "S"])
        XCTAssertEqual(words("'\u{17F} 'hello", llama3), ["'\u{17F}", " '", "hello"])
    }

    func testLlama3PatternCutsDigitsInThreesAndQwen2OneByOne() {
        XCTAssertEqual(words(" 12345 x1y", llama3), [" ", "123", "45", " x", "1", "y"])
        XCTAssertEqual(words(" 12345 x1y", qwen2), [" ", "1", "2", "3", "4", "5", " x", "1", "y"])
        XCTAssertEqual(words("\u{FB01} naïve \u{1D518} ١٢٣٤ Ⅻ ½", llama3),
                       ["\u{FB01}", " naïve", " \u{1D518}", " ", "١٢٣", "٤", " ", "Ⅻ", " ", "½"])
    }

    func testLlama3PatternAttachesOnePunctuationOrTabToTheFollowingWord() {
        XCTAssertEqual(words("(hello ((world", llama3), ["(hello", " ((", "world"])
        XCTAssertEqual(words("  \tfoo", llama3), ["  ", "\tfoo"])
        XCTAssertEqual(words(" \u{A0}x", llama3), [" ", "\u{A0}x"])
        XCTAssertEqual(words("tab\t\tz", llama3), ["tab", "\t", "\tz"])
    }

    func testLlama3PatternKeepsNewlinesWithPrecedingWhitespaceAndPunctuation() {
        XCTAssertEqual(words("\n\nx", llama3), ["\n\n", "x"])
        XCTAssertEqual(words("a\n\n b", llama3), ["a", "\n\n", " b"])
        XCTAssertEqual(words("hello!!\n\nworld", llama3), ["hello", "!!\n\n", "world"])
        XCTAssertEqual(words("end\r\n", llama3), ["end", "\r\n"])
        XCTAssertEqual(words("a  ", llama3), ["a", "  "])
        XCTAssertEqual(words("x  ,y", llama3), ["x", " ", " ,", "y"])
    }

    func testByteLevelPrefixSpaceIsAddedOnlyWhenThePieceLacksOne() {
        let steps: [PreTokenizerStep] = [.byteLevel(addPrefixSpace: true, useRegex: true)]
        XCTAssertEqual(words("hi there", steps), [" hi", " there"])
        XCTAssertEqual(words(" hi", steps), [" hi"])
    }

    func testDigitsIsolatesEachNumberOrKeepsRunsTogether() {
        let individual: [PreTokenizerStep] = [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: false)]
        let runs: [PreTokenizerStep] = [.digits(individual: false), .byteLevel(addPrefixSpace: false, useRegex: false)]
        XCTAssertEqual(words("ab123c4", individual), ["ab", "1", "2", "3", "c", "4"])
        XCTAssertEqual(words("ab123c4", runs), ["ab", "123", "c", "4"])
    }

    func testSplitBehavioursKeepOrAttachTheDelimiterLikeTheReference() {
        func split(_ behavior: SplitBehavior, invert: Bool = false) -> [String] {
            words("a-b--c-", [.split(.literal([0x2D]), behavior, invert: invert), .byteLevel(addPrefixSpace: false, useRegex: false)])
        }
        XCTAssertEqual(split(.isolated), ["a", "-", "b", "-", "-", "c", "-"])
        XCTAssertEqual(split(.removed), ["a", "b", "c"])
        XCTAssertEqual(split(.mergedWithPrevious), ["a-", "b-", "-", "c-"])
        XCTAssertEqual(split(.mergedWithNext), ["a", "-b", "-", "-c", "-"])
        XCTAssertEqual(split(.contiguous), ["a", "-", "b", "--", "c", "-"])
        XCTAssertEqual(split(.removed, invert: true), ["-", "-", "-", "-"])
    }

    func testSequenceOfDigitsThenGPT2RegexAppliesEachStepToEveryPiece() {
        let steps: [PreTokenizerStep] = [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)]
        XCTAssertEqual(words("in 2024, we", steps), ["in", " ", "2", "0", "2", "4", ",", " we"])
    }

    func testKnownRegexesAreRecognisedAndOthersAreNot() {
        XCTAssertEqual(SplitPattern(regex: SplitPattern.gpt2Regex), .gpt2)
        XCTAssertEqual(SplitPattern(regex: SplitPattern.llama3Regex), .llama3(maxDigits: 3))
        XCTAssertEqual(SplitPattern(regex: SplitPattern.qwen2Regex), .llama3(maxDigits: 1))
        XCTAssertNil(SplitPattern(regex: #"\p{N}{1,3}"#))
    }
}
