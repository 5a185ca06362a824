// A parser for server-sent events (text/event-stream), after the WHATWG HTML standard's
// "interpreting an event stream": lines end in CRLF, LF or CR; `data:` lines are joined with
// LF; `event:` names the type; `id:` sets the last event id (kept across events, ignored when
// it contains NUL); `retry:` takes ASCII digits only; lines starting with ':' are comments; a
// blank line dispatches; a final event without a blank line is dropped. The parser works on
// bytes: chunks may split anywhere, inside a UTF-8 sequence or between a CR and its LF.

/// One dispatched event.
public struct ServerSentEvent: Sendable, Equatable {
    /// The `event:` field, "message" when none was given.
    public var type: String
    /// The `data:` lines joined with LF.
    public var data: String
    /// The last event id seen so far in the stream ("" when none).
    public var id: String

    public init(type: String = "message", data: String, id: String = "") {
        self.type = type
        self.data = data
        self.id = id
    }
}

/// An incremental event-stream parser: `feed` chunks as they arrive, collect the events.
public struct EventStreamParser: Sendable {
    private var line: [UInt8] = []
    private var afterCR = false
    private var atStreamStart = true
    private var data: [UInt8] = []
    private var hasData = false
    private var eventType: [UInt8] = []
    private var lastEventID: [UInt8] = []
    /// The last valid `retry:` value, in milliseconds.
    public private(set) var retryMilliseconds: Int?
    /// Whether fields have been read since the last dispatch (an event that a missing blank
    /// line would drop at the end of the stream).
    public var hasPendingEvent: Bool { hasData || !eventType.isEmpty || !line.isEmpty }

    public init() {}

    /// Parses `bytes` and returns the events completed by them, in order.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) -> [ServerSentEvent] where Bytes.Element == UInt8 {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if afterCR {
                afterCR = false
                if byte == 0x0A { continue }  // the LF of a CRLF
            }
            switch byte {
            case 0x0D:
                afterCR = true
                if let event = endLine() { events.append(event) }
            case 0x0A:
                if let event = endLine() { events.append(event) }
            default:
                line.append(byte)
            }
        }
        return events
    }

    /// The stream ended: an event not yet dispatched by a blank line is discarded.
    public mutating func finish() {
        line.removeAll()
        data.removeAll()
        hasData = false
        eventType.removeAll()
        afterCR = false
    }

    private mutating func endLine() -> ServerSentEvent? {
        var bytes = line[...]
        line.removeAll(keepingCapacity: true)
        if atStreamStart {
            atStreamStart = false
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        }
        if bytes.isEmpty { return dispatch() }
        if bytes.first == UInt8(ascii: ":") { return nil }
        let field: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = bytes.firstIndex(of: UInt8(ascii: ":")) {
            field = bytes[..<colon]
            value = bytes[(colon + 1)...]
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        } else {
            field = bytes
            value = []
        }
        switch String(decoding: field, as: UTF8.self) {
        case "event":
            eventType = Array(value)
        case "data":
            data.append(contentsOf: value)
            data.append(0x0A)
            hasData = true
        case "id":
            if !value.contains(0) { lastEventID = Array(value) }
        case "retry":
            if !value.isEmpty, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                retryMilliseconds = Int(String(decoding: value, as: UTF8.self)) ?? retryMilliseconds
            }
        default:
            break
        }
        return nil
    }

    private mutating func dispatch() -> ServerSentEvent? {
        defer {
            data.removeAll(keepingCapacity: true)
            hasData = false
            eventType.removeAll()
        }
        guard hasData else { return nil }
        if data.last == 0x0A { data.removeLast() }
        let type = eventType.isEmpty ? "message" : String(decoding: eventType, as: UTF8.self)
        return ServerSentEvent(type: type, data: String(decoding: data, as: UTF8.self),
                               id: String(decoding: lastEventID, as: UTF8.self))
    }
}
