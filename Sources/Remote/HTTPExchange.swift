import CHTTP
import Foundation

/// One HTTP request whose response arrives as events while it streams: libcurl (HTTP/1.1,
/// HTTP/2, TLS) through CHTTP, loaded only when the first request is made, on a thread of its
/// own that runs the transfer.
///
/// Two timeouts: `connectTimeout` until the response headers arrive and `idleTimeout` between
/// body bytes after that (no bound on the whole transfer, which would cut a long reply).
/// `cancel` ends the event stream at once and closes the connection.
final class HTTPExchange: @unchecked Sendable {
    enum Event: Sendable {
        case head(status: Int, contentType: String)
        case body(Data)
    }

    enum Failure: Error, Sendable {
        case connectTimeout, idleTimeout, cancelled
        case transport(Transport, String)
    }

    /// What broke, for the client's one-line message.
    enum Transport: Sendable {
        case cannotConnect, hostNotFound, connectionLost, tls, other
    }

    let events: AsyncThrowingStream<Event, Error>
    private let continuation: AsyncThrowingStream<Event, Error>.Continuation
    private let lock = NSLock()
    private var finished = false
    private var wasCancelled = false
    /// The request; nil when libcurl could not be loaded. Freed on deinit, after its transfer.
    private let handle: OpaquePointer?

    init(url: URL, method: String, headers: [(String, String)], body: Data?, connectTimeout: Double, idleTimeout: Double) {
        (events, continuation) = AsyncThrowingStream.makeStream(of: Event.self, throwing: Error.self, bufferingPolicy: .unbounded)
        var error = [CChar](repeating: 0, count: 512)
        let lines = headers.map { "\($0.0): \($0.1)" }
        let bytes = [UInt8](body ?? Data())
        handle = withCStrings(lines) { lines in
            nb_http_new(url.absoluteString, method, lines, Int32(lines.count), bytes, bytes.count,
                        connectTimeout, idleTimeout, &error, error.count)
        }
        continuation.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.cancel() }
        }
        guard handle != nil else {
            finish(throwing: Failure.transport(.other, string(error)))
            return
        }
        let thread = Thread { [self] in run() }  // holds self until the transfer ends
        thread.name = "nibble.http"
        thread.start()
    }

    deinit { nb_http_free(handle) }

    /// Ends the event stream with `Failure.cancelled` now and closes the connection.
    func cancel() {
        lock.withLock { wasCancelled = true }
        nb_http_cancel(handle)
        finish(throwing: Failure.cancelled)
    }

    /// Whether `cancel` was called or the task reading `events` was cancelled (which ends the
    /// iteration without an error).
    var isCancelled: Bool { lock.withLock { wasCancelled } }

    private func finish(throwing error: Error?) {
        let first: Bool = lock.withLock {
            defer { finished = true }
            return !finished
        }
        guard first else { return }
        if let error { continuation.finish(throwing: error) } else { continuation.finish() }
    }

    private func run() {
        guard let handle else { return }
        let callbacks = nb_http_callbacks(
            context: Unmanaged.passUnretained(self).toOpaque(),
            on_head: { context, status, contentType in
                let exchange = Unmanaged<HTTPExchange>.fromOpaque(context!).takeUnretainedValue()
                exchange.continuation.yield(.head(status: Int(status), contentType: String(cString: contentType!)))
            },
            on_body: { context, bytes, count in
                let exchange = Unmanaged<HTTPExchange>.fromOpaque(context!).takeUnretainedValue()
                exchange.continuation.yield(.body(Data(bytes: bytes!, count: count)))
            })
        var message = [CChar](repeating: 0, count: 512)
        let result = nb_http_perform(handle, callbacks, &message, message.count)
        let text = string(message)
        switch result {
        case NB_HTTP_DONE: finish(throwing: nil)
        case NB_HTTP_CANCELLED: finish(throwing: Failure.cancelled)
        case NB_HTTP_CONNECT_TIMEOUT: finish(throwing: Failure.connectTimeout)
        case NB_HTTP_IDLE_TIMEOUT: finish(throwing: Failure.idleTimeout)
        case NB_HTTP_CANNOT_CONNECT: finish(throwing: Failure.transport(.cannotConnect, text))
        case NB_HTTP_HOST_NOT_FOUND: finish(throwing: Failure.transport(.hostNotFound, text))
        case NB_HTTP_LOST: finish(throwing: Failure.transport(.connectionLost, text))
        case NB_HTTP_TLS: finish(throwing: Failure.transport(.tls, text))
        default: finish(throwing: Failure.transport(.other, text))
        }
    }
}

/// The NUL-terminated text in `buffer`.
private func string(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// `body` with `strings` as an array of C strings that lives for the call.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    return body(copies.map { UnsafePointer($0) })
}
