import Remote
import Testing

/// Feeds `text` to a fresh parser in chunks cut at `cuts` (byte offsets) and returns the events.
private func parse(_ bytes: [UInt8], cuts: [Int] = []) -> [ServerSentEvent] {
    var parser = EventStreamParser()
    var events: [ServerSentEvent] = []
    var start = 0
    for cut in cuts.sorted() + [bytes.count] where cut >= start {
        events += parser.feed(bytes[start..<cut])
        start = cut
    }
    parser.finish()
    return events
}

private func parse(_ text: String, cuts: [Int] = []) -> [ServerSentEvent] { parse(Array(text.utf8), cuts: cuts) }

struct EventStreamTests {
    @Test func dataLinesJoinWithNewlineAndBlankLinesDispatch() {
        let events = parse("data: one\ndata: two\n\ndata:three\n\n")
        #expect(events == [ServerSentEvent(data: "one\ntwo"), ServerSentEvent(data: "three")])
    }

    @Test func onlyOneLeadingSpaceIsRemoved() {
        #expect(parse("data:  two spaces \n\n") == [ServerSentEvent(data: " two spaces ")])
    }

    @Test func eventTypeIdAndRetry() {
        var parser = EventStreamParser()
        let events = parser.feed(Array("event: delta\nid: 7\nretry: 1500\ndata: x\n\ndata: y\n\nretry: 12a\nid\n\ndata: z\n\n".utf8))
        #expect(events == [ServerSentEvent(type: "delta", data: "x", id: "7"),
                           ServerSentEvent(type: "message", data: "y", id: "7"),  // the id persists, the type does not
                           ServerSentEvent(type: "message", data: "z", id: "")])  // "id" alone resets it
        #expect(parser.retryMilliseconds == 1500)  // "12a" is not all digits: ignored
    }

    @Test func anIdWithNulIsIgnored() {
        #expect(parse("id: 1\n\nid: a\u{0}b\ndata: x\n\n") == [ServerSentEvent(data: "x", id: "1")])
    }

    @Test func commentsAndUnknownFieldsAreIgnored() {
        #expect(parse(": keep-alive\nfoo: bar\ndata\n\n:\n\n") == [ServerSentEvent(data: "")])
    }

    @Test func anEventWithoutDataIsNotDispatched() {
        #expect(parse("event: ping\n\ndata: a\n\n") == [ServerSentEvent(data: "a")])
    }

    @Test func crLfAndCrLineEndsAllWork() {
        let expected = [ServerSentEvent(data: "a\nb"), ServerSentEvent(data: "c")]
        #expect(parse("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n") == expected)
        #expect(parse("data: a\rdata: b\r\rdata: c\r\r") == expected)
        #expect(parse("data: a\ndata: b\r\n\rdata: c\n\r\n") == expected)
    }

    @Test func aFinalEventWithoutABlankLineIsDropped() {
        var parser = EventStreamParser()
        #expect(parser.feed(Array("data: done\n\ndata: partial\n".utf8)) == [ServerSentEvent(data: "done")])
        #expect(parser.hasPendingEvent)
        parser.finish()
        #expect(!parser.hasPendingEvent)
        #expect(parse("data: partial") == [])
    }

    @Test func aByteOrderMarkAtTheStartIsSkipped() {
        #expect(parse([0xEF, 0xBB, 0xBF] + Array("data: x\n\n".utf8), cuts: [1, 2]) == [ServerSentEvent(data: "x")])
        #expect(parse(Array("data: x\n\n".utf8) + [0xEF, 0xBB, 0xBF] + Array("data: y\n\n".utf8))
            == [ServerSentEvent(data: "x")])  // "\u{FEFF}data" is an unknown field later on
    }

    @Test func chunksMaySplitAnywhere() {
        let text = "event: e\r\ndata: héllo 😀 wörld\r\ndata: {\"a\": 1}\r\n\r\n: comment\rdata: second\r\rdata: third\n\n"
        let bytes = Array(text.utf8)
        let whole = parse(bytes)
        #expect(whole == [ServerSentEvent(type: "e", data: "héllo 😀 wörld\n{\"a\": 1}"),
                          ServerSentEvent(data: "second"), ServerSentEvent(data: "third")])
        // Every single cut (inside UTF-8 sequences and between CR and LF included), and byte by byte.
        for cut in 0...bytes.count {
            #expect(parse(bytes, cuts: [cut]) == whole, "cut at \(cut)")
        }
        #expect(parse(bytes, cuts: Array(0...bytes.count)) == whole)
    }

    @Test func invalidUTF8BecomesReplacementCharacters() {
        #expect(parse([0x64, 0x61, 0x74, 0x61, 0x3A, 0x20, 0xFF, 0x61, 0x0A, 0x0A]) == [ServerSentEvent(data: "\u{FFFD}a")])
    }
}
