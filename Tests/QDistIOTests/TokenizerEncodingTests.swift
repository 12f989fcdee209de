import QDistIO
import XCTest

/// Small tokenizer.json documents built in the test: the 256 byte tokens (id = byte value),
/// then one token per merge (in merge order), then any extra tokens.
enum TokenizerFixture {
    static func spell(_ text: String) -> String { ByteLevelAlphabet.spell(Array(text.utf8)) }

    static let gpt2PreTokenizer: JSONValue = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
    static let llama3PreTokenizer: JSONValue = ["type": "Sequence", "pretokenizers": [
        ["type": "Split", "pattern": ["Regex": .string(TokenizerJSONBuilder.splitRegexForPre["llama-bpe"]!)],
         "behavior": "Isolated", "invert": false],
        ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
    ]]

    /// `merges` are in plain text ("h", "e"); they are spelled here.
    static func document(merges: [(String, String)], extraVocab: [String] = [], added: [JSONValue] = [],
                         preTokenizer: JSONValue = gpt2PreTokenizer, normalizer: JSONValue = nil,
                         postProcessor: JSONValue = nil, ignoreMerges: Bool = false, mergesAsArrays: Bool = false) -> JSONValue {
        var vocab: [(key: String, value: JSONValue)] = (0..<256).map { b in (key: ByteLevelAlphabet.spell([UInt8(b)]), value: .integer(b)) }
        var known = Set(vocab.map(\.key))
        for token in merges.map({ spell($0.0 + $0.1) }) + extraVocab where !known.contains(token) {
            vocab.append((key: token, value: .integer(vocab.count)))
            known.insert(token)
        }
        let mergeValues: [JSONValue] = merges.map { pair in
            mergesAsArrays ? [.string(spell(pair.0)), .string(spell(pair.1))] : .string("\(spell(pair.0)) \(spell(pair.1))")
        }
        return ["version": "1.0", "truncation": nil, "padding": nil, "added_tokens": .array(added),
                "normalizer": normalizer, "pre_tokenizer": preTokenizer, "post_processor": postProcessor,
                "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
                "model": ["type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
                          "end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false,
                          "ignore_merges": .bool(ignoreMerges), "vocab": .object(vocab), "merges": .array(mergeValues)]]
    }

    static func addedToken(_ content: String, id: Int, special: Bool = true, normalized: Bool = false,
                           lstrip: Bool = false, rstrip: Bool = false, singleWord: Bool = false) -> JSONValue {
        ["id": .integer(id), "content": .string(content), "single_word": .bool(singleWord), "lstrip": .bool(lstrip),
         "rstrip": .bool(rstrip), "normalized": .bool(normalized), "special": .bool(special)]
    }

    static func tokenizer(_ document: JSONValue) throws -> BPETokenizer {
        try BPETokenizer(json: document)
    }

    /// Deterministic mixed-script text: ASCII words and punctuation, Latin-1, combining marks,
    /// CJK, Arabic, emoji (with ZWJ and flags), digits of several scripts, and all kinds of
    /// whitespace, NUL and DEL included.
    static func randomText(seed: UInt64, length: Int) -> String {
        let pool: [String] = ["the", " cat", "'s", "'LL", " don't", "I'm", "  ", "\n", "\r\n", "\t", " \n\n ", "\u{A0}",
                              "\u{3000}", "123", "4567", "٣٤", "Ⅻ", "½", "é", "e\u{301}", "ñ", "ß", "Straße", "中文字",
                              "日本語", "한국어", "العربية", "עברית", "😀", "👩‍👩‍👧", "🇫🇷", "🏳️‍🌈", "\u{0}", "\u{7F}",
                              "\u{85}", "(", ")", "!!", "...", "--", "\"", "'", "ſ", "\u{FEFF}", "\u{200D}", "x", "Q"]
        var state = seed | 1
        var out = ""
        for _ in 0..<length {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            out += pool[Int(state % UInt64(pool.count))]
        }
        return out
    }
}

/// Encoding and decoding on hand-built tokenizers: the byte alphabet, merge order, added and
/// special tokens, post-processing, normalization, and byte-exact round trips.
final class TokenizerEncodingTests: XCTestCase {
    private let helloMerges: [(String, String)] = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), (" ", "w"), (" w", "o")]

    func testEveryByteHasItsOwnPrintableSpellingThatMapsBack() {
        let scalars = ByteLevelAlphabet.scalarForByte
        XCTAssertEqual(Set(scalars).count, 256)
        for b in 0...255 {
            XCTAssertEqual(ByteLevelAlphabet.byte(for: scalars[b]), UInt8(b))
            XCTAssertFalse(scalars[b].properties.isWhitespace, "byte \(b) is spelled with whitespace")
        }
        XCTAssertEqual(scalars[0x20], "Ġ")
        XCTAssertEqual(scalars[0x0A], "Ċ")
        XCTAssertEqual(scalars[0x00], "Ā")
        XCTAssertEqual(scalars[0xAD], "Ń")
        XCTAssertEqual(scalars[0x41], "A")
        XCTAssertEqual(scalars[0xE9], "é")
    }

    func testWithoutMergesEveryByteOfUTF8TextIsItsOwnToken() throws {
        let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: []))
        let text = "A\u{0}\u{7F} é\n中😀\t\u{FEFF}"
        XCTAssertEqual(tokenizer.encode(text), text.utf8.map(Int.init))
        XCTAssertEqual(tokenizer.decode(Array(0..<128)), String(decoding: Array(0..<128) as [UInt8], as: UTF8.self))
        for b in 0...255 {
            XCTAssertEqual(tokenizer.decodedBytes(for: b), [UInt8(b)])
        }
    }

    func testDecodingACutCharacterGivesReplacementCharacters() throws {
        let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: []))
        XCTAssertEqual(tokenizer.decode([0xC3, 0xA9]), "é")
        XCTAssertEqual(tokenizer.decode([0xC3]), "\u{FFFD}")
        XCTAssertEqual(tokenizer.decode([0xF0, 0x9F, 0x98, 0x41]), "\u{FFFD}A")
        XCTAssertEqual(tokenizer.decode([0x41, 999_999, -1]), "A", "unknown ids are skipped")
    }

    func testMergesApplyInRankOrderNotLeftToRight() throws {
        let bcFirst = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: [("b", "c"), ("a", "b")]))
        XCTAssertEqual(bcFirst.encode("abc").map { bcFirst.token(for: $0)! }, ["a", "bc"])
        let abFirst = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: [("a", "b"), ("b", "c")]))
        XCTAssertEqual(abFirst.encode("abc").map { abFirst.token(for: $0)! }, ["ab", "c"])
    }

    func testEqualRanksMergeTheLeftmostPairFirst() throws {
        let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: [("a", "a")]))
        XCTAssertEqual(tokenizer.encode("aaa").map { tokenizer.token(for: $0)! }, ["aa", "a"])
        XCTAssertEqual(tokenizer.encode("aaaa").map { tokenizer.token(for: $0)! }, ["aa", "aa"])
    }

    func testMergeProductsKeepMergingAndSpacesAreSpelledG() throws {
        let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: helloMerges))
        XCTAssertEqual(tokenizer.encode("hello world").map { tokenizer.token(for: $0)! }, ["hello", "Ġwo", "r", "l", "d"])
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("hello world")), "hello world")
        XCTAssertEqual(tokenizer.tokenID(for: "hello"), 256 + 3)
    }

    func testMergesInArrayFormEncodeLikeTheStringForm() throws {
        let strings = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: helloMerges))
        let arrays = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: helloMerges, mergesAsArrays: true))
        let text = "hello world, hell owl"
        XCTAssertEqual(strings.encode(text), arrays.encode(text))
    }

    func testIgnoreMergesTakesAWholeVocabularyWordBeforeMerging() throws {
        let merged = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: [("a", "b")], extraVocab: ["abc"]))
        XCTAssertEqual(merged.encode("abc").map { merged.token(for: $0)! }, ["ab", "c"])
        let whole = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: [("a", "b")], extraVocab: ["abc"], ignoreMerges: true))
        XCTAssertEqual(whole.encode("abc").map { whole.token(for: $0)! }, ["abc"])
    }

    func testAddedTokensAreMatchedWholeLongestFirstBeforePreTokenization() throws {
        let added: [JSONValue] = [TokenizerFixture.addedToken("<|im_start|>", id: 300), TokenizerFixture.addedToken("<|im", id: 301, special: false)]
        let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: [], added: added))
        XCTAssertEqual(tokenizer.encode("x<|im_start|>y<|imz"), [0x78, 256, 0x79, 257, 0x7A],
                       "ids past the vocabulary are given in file order, as the reference does")
        XCTAssertEqual(tokenizer.tokenID(for: "<|im_start|>"), 256)
        XCTAssertEqual(tokenizer.vocabularySize, 258)
        XCTAssertEqual(tokenizer.specialTokens, ["<|im_start|>"])
    }

    func testAddedTokenAlreadyInTheVocabularyKeepsTheVocabularyID() throws {
        let tokenizer = try TokenizerFixture.tokenizer(
            TokenizerFixture.document(merges: [], extraVocab: ["<eos>"], added: [TokenizerFixture.addedToken("<eos>", id: 256)]))
        XCTAssertEqual(tokenizer.encode("a<eos>"), [0x61, 256])
        XCTAssertEqual(tokenizer.vocabularySize, 257)
    }

    func testLstripAndRstripSwallowTheWhitespaceBesideTheToken() throws {
        let plain = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: [], added: [TokenizerFixture.addedToken("<m>", id: 256)]))
        XCTAssertEqual(plain.encode("a <m> b"), [0x61, 0x20, 256, 0x20, 0x62])
        let stripped = try TokenizerFixture.tokenizer(TokenizerFixture.document(
            merges: [], added: [TokenizerFixture.addedToken("<m>", id: 256, lstrip: true, rstrip: true)]))
        XCTAssertEqual(stripped.encode("a  <m>\n b"), [0x61, 256, 0x62])
    }

    func testSingleWordTokenMatchesOnlyWhereNoWordCharacterTouchesIt() throws {
        let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(
            merges: [], added: [TokenizerFixture.addedToken("<w>", id: 256, singleWord: true)]))
        XCTAssertEqual(tokenizer.encode("x<w>"), "x<w>".utf8.map(Int.init))
        XCTAssertEqual(tokenizer.encode("é<w>"), "é<w>".utf8.map(Int.init), "é is a word character")
        XCTAssertEqual(tokenizer.encode("(<w>)"), [0x28, 256, 0x29])
    }

    func testDecodeSkipsSpecialTokensOnlyWhenAsked() throws {
        let added: [JSONValue] = [TokenizerFixture.addedToken("<s>", id: 256), TokenizerFixture.addedToken("<think>", id: 257, special: false)]
        let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: [], added: added))
        let ids = tokenizer.encode("<s>hi <think>")
        XCTAssertEqual(tokenizer.decode(ids), "<s>hi <think>")
        XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), "hi <think>")
        XCTAssertTrue(tokenizer.isSpecialToken(256))
        XCTAssertFalse(tokenizer.isSpecialToken(257))
    }

    func testTemplatePostProcessorAddsBOSAndEOSOnlyWithAddSpecialTokens() throws {
        let post: JSONValue = ["type": "Sequence", "processors": [
            ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true],
            ["type": "TemplateProcessing",
             "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]], ["SpecialToken": ["id": "</s>", "type_id": 0]]],
             "pair": [],
             "special_tokens": ["<s>": ["id": "<s>", "ids": [256], "tokens": ["<s>"]], "</s>": ["id": "</s>", "ids": [257], "tokens": ["</s>"]]]],
        ]]
        let added: [JSONValue] = [TokenizerFixture.addedToken("<s>", id: 256), TokenizerFixture.addedToken("</s>", id: 257)]
        let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: [], added: added, postProcessor: post))
        XCTAssertEqual(tokenizer.encode("hi"), [0x68, 0x69])
        XCTAssertEqual(tokenizer.encode("hi", addSpecialTokens: true), [256, 0x68, 0x69, 257])
        XCTAssertEqual(tokenizer.bosToken, "<s>", "without a config, BOS is the template's leading token")
        XCTAssertEqual(tokenizer.bosTokenID, 256)
    }

    func testNFCNormalizerComposesTextBeforeTokenizing() throws {
        let nfc = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: [], normalizer: ["type": "NFC"]))
        XCTAssertEqual(nfc.encode("e\u{301}"), [0xC3, 0xA9])
        let none = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: []))
        XCTAssertEqual(none.encode("e\u{301}"), [0x65, 0xCC, 0x81])
    }

    func testEncodeThenDecodeIsTheIdentityForAnyUTF8Text() throws {
        let merges: [(String, String)] = helloMerges + [("t", "h"), ("th", "e"), (" ", "c"), (" c", "a")]
        for preTokenizer in [TokenizerFixture.gpt2PreTokenizer, TokenizerFixture.llama3PreTokenizer] {
            let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(
                merges: merges, added: [TokenizerFixture.addedToken("<|eot|>", id: 0)], preTokenizer: preTokenizer))
            for seed in 1...200 {
                let text = TokenizerFixture.randomText(seed: UInt64(seed), length: seed % 40) + (seed % 7 == 0 ? "<|eot|>" : "")
                let ids = tokenizer.encode(text)
                XCTAssertEqual(tokenizer.decode(ids), text, "seed \(seed)")
                XCTAssertEqual(Array(tokenizer.decode(ids).utf8), Array(text.utf8), "seed \(seed): bytes differ")
            }
        }
    }

    func testStreamingDecoderPrintsOnlyWholeCharactersAndAddsUpToDecode() throws {
        let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: helloMerges))
        let text = "hello 😀 wörld 中"
        let ids = tokenizer.encode(text)
        var decoder = tokenizer.makeStreamingDecoder()
        var pieces: [String] = []
        for id in ids { pieces.append(decoder.append(id)) }
        pieces.append(decoder.finish())
        XCTAssertEqual(pieces.joined(), text)
        XCTAssertFalse(pieces.contains { $0.contains("\u{FFFD}") })
        XCTAssertTrue(pieces.contains("😀"), "the emoji comes out whole once its fourth byte arrives: \(pieces)")
    }

    func testStreamingDecoderReplacesBytesThatCanNeverBeACharacterLikeDecode() throws {
        let tokenizer = try TokenizerFixture.tokenizer(TokenizerFixture.document(merges: []))
        for ids in [[0xC3, 0x41], [0xE0, 0x80, 0x41], [0xF0, 0x9F, 0x98], [0x80, 0x80, 0xC3, 0xA9], [0xED, 0xA0, 0x80, 0x41]] {
            var decoder = tokenizer.makeStreamingDecoder()
            let streamed = ids.map { decoder.append($0) }.joined() + decoder.finish()
            XCTAssertEqual(streamed, tokenizer.decode(ids), "\(ids)")
        }
    }
}
