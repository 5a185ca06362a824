import JSON
import Testing

struct JSONValueTests {
    @Test func objectsKeepMemberOrderAndDuplicates() throws {
        let value = try JSONValue.parse(#"{"z": 1, "a": {"y": [], "b": null}, "z": 2}"#)
        let members = try #require(value.members)
        #expect(members.map(\.key) == ["z", "a", "z"])
        #expect(value["z"] == .int(1))  // the first of a repeated key
        #expect(value["a"]?.members?.map(\.key) == ["y", "b"])
        #expect(value["a"]?["b"]?.isNull == true)
        #expect(value["missing"] == nil)
    }

    @Test func integersAndDoublesStayApart() throws {
        #expect(try JSONValue.parse("0") == .int(0))
        #expect(try JSONValue.parse("-0") == .int(0))
        let negativeZero = try JSONValue.parse("-0.0")
        guard case .double(let d) = negativeZero else { Issue.record("\(negativeZero)"); return }
        #expect(d == 0 && d.sign == .minus)
        #expect(try JSONValue.parse("9223372036854775807") == .int(Int.max))
        #expect(try JSONValue.parse("-9223372036854775808") == .int(Int.min))
        #expect(try JSONValue.parse("9223372036854775808") == .double(9223372036854775808))
        #expect(try JSONValue.parse("1.0") == .double(1))
        #expect(try JSONValue.parse("1e2") == .double(100))
        #expect(try JSONValue.parse("-2.5E-1") == .double(-0.25))
        #expect(try JSONValue.parse("1.0").int == 1)
        #expect(try JSONValue.parse("1.5").int == nil)
        #expect(try JSONValue.parse("12").typeName == "a number")
    }

    @Test func surrogatePairsAndLoneSurrogates() throws {
        #expect(try JSONValue.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSONValue.parse(#""\u00e9/\/\n""#) == .string("é//\n"))
        #expect(try JSONValue.parse(#""a\ud83db""#) == .string("a\u{FFFD}b"))       // lone high
        #expect(try JSONValue.parse(#""\ude00x""#) == .string("\u{FFFD}x"))         // lone low
        #expect(try JSONValue.parse(#""\ud83d\u0041""#) == .string("\u{FFFD}A"))    // high, then not a low
        // Strings keep their exact bytes (no Unicode normalisation): "é" composed and decomposed.
        let pair = try JSONValue.parse("[\"\u{E9}\", \"e\u{301}\"]")
        #expect(pair.array?.map { Array($0.string!.utf8) } == [[0xC3, 0xA9], [0x65, 0xCC, 0x81]])
    }

    @Test func nestingDeeperThanTheLimitIsAnError() throws {
        let depth = JSONValue.maxDepth
        #expect(throws: Never.self) { try JSONValue.parse(String(repeating: "[", count: depth) + String(repeating: "]", count: depth)) }
        do {
            _ = try JSONValue.parse(String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1))
            Issue.record("no error")
        } catch {
            #expect(error.message == "JSON nested too deeply")
            #expect(error.offset == depth)
        }
        // Far deeper than the limit: an error, not a stack overflow.
        #expect(throws: JSONError.self) { try JSONValue.parse(String(repeating: "{\"a\":", count: 100_000)) }
    }

    @Test func trailingDataAndBadSyntaxAreErrorsWithOffsets() throws {
        func failure(_ text: String) -> JSONError? {
            do { _ = try JSONValue.parse(text); return nil } catch { return error }
        }
        #expect(failure("[1] x")?.offset == 4)
        #expect(failure("[1] x")?.description == "unexpected data after the JSON value at byte 4")
        #expect(failure("1 2")?.offset == 2)
        for bad in ["", " ", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "01", "-", "1.", "1e", "+1", "1-2",
                    "\"a\u{1}b\"", "\"\\x\"", "\"\\u12\"", "{1: 2}", "[1 2]", "nul"] {
            #expect(failure(bad) != nil, "\(bad)")
        }
        #expect(try JSONValue.parse("\u{FEFF} [ ] ") == .array([]))  // byte order mark
    }
}

struct JSONWriterTests {
    @Test func writesCompactTextThatParsesBack() throws {
        let value = JSONValue.object([
            ("b", .string("quote \" backslash \\ newline \n tab \t bell \u{7} é 😀")),
            ("a", .array([.int(-3), .double(0.25), .double(2), .double(1e300), .bool(true), .bool(false), .null])),
            ("", .object([])),
        ])
        let text = value.serialized
        #expect(text == #"{"b":"quote \" backslash \\ newline \n tab \t bell \u0007 é 😀","a":[-3,0.25,2.0,1e+300,true,false,null],"":{}}"#)
        #expect(try JSONValue.parse(text) == value)
        #expect(JSONValue.double(.nan).serialized == "null")
        #expect(JSONValue.double(.infinity).serialized == "null")
    }
}
