import Dispatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP request whose response arrives as events while it streams, on FoundationNetworking's
/// URLSession (libcurl on Linux: HTTP/1.1, HTTP/2 and TLS) with a data delegate.
///
/// URLSession's own timeouts are set out of the way (on Linux `timeoutInterval` also bounds the
/// whole transfer, which would cut a long reply); this class keeps its own two: `connectTimeout`
/// until the response headers arrive and `idleTimeout` between body bytes after that. `cancel`
/// ends the event stream at once and cancels the task, which closes the connection.
final class HTTPExchange: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    enum Event: Sendable {
        case head(status: Int, contentType: String)
        case body(Data)
    }

    enum Failure: Error, Sendable {
        case connectTimeout, idleTimeout, cancelled
        case transport(URLError.Code, String)
    }

    let events: AsyncThrowingStream<Event, Error>
    private let continuation: AsyncThrowingStream<Event, Error>.Continuation
    private let lock = NSLock()
    private var session: URLSession?
    private var task: URLSessionDataTask?
    private var finished = false
    private var wasCancelled = false
    private var timer: DispatchSourceTimer?
    private var timeoutFailure = Failure.connectTimeout
    private var deadline = DispatchTime.now()
    private let timerQueue = DispatchQueue(label: "nibble.remote.timeout")
    private let connectTimeout: Double
    private let idleTimeout: Double

    init(request: URLRequest, connectTimeout: Double, idleTimeout: Double) {
        (events, continuation) = AsyncThrowingStream.makeStream(of: Event.self, throwing: Error.self, bufferingPolicy: .unbounded)
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        super.init()
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 7 * 86400
        configuration.timeoutIntervalForResource = 7 * 86400
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: queue)
        var request = request
        request.timeoutInterval = 7 * 86400
        let task = session.dataTask(with: request)
        lock.withLock {
            self.session = session
            self.task = task
        }
        continuation.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.lock.withLock { self?.wasCancelled = true } }
            self?.close()
        }
        let timer = DispatchSource.makeTimerSource(queue: timerQueue)
        timer.setEventHandler { [weak self] in self?.timeoutFired() }
        lock.withLock { self.timer = timer }
        armTimer(after: connectTimeout, failure: .connectTimeout)
        timer.resume()
        task.resume()
    }

    /// Ends the event stream with `Failure.cancelled` now and closes the connection.
    func cancel() {
        lock.withLock { wasCancelled = true }
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
        close()
    }

    private func close() {
        let (session, task, timer): (URLSession?, URLSessionDataTask?, DispatchSourceTimer?) = lock.withLock {
            defer { self.session = nil; self.task = nil; self.timer = nil }
            return (self.session, self.task, self.timer)
        }
        timer?.cancel()
        task?.cancel()
        session?.invalidateAndCancel()
    }

    /// (Re)starts the one timeout: `failure` unless something arrives within `seconds`.
    private func armTimer(after seconds: Double, failure: Failure) {
        lock.withLock {
            guard let timer, !finished else { return }
            timeoutFailure = failure
            deadline = .now() + seconds
            timer.schedule(deadline: deadline)
        }
    }

    private func timeoutFired() {
        let failure: Failure? = lock.withLock { DispatchTime.now() >= deadline ? timeoutFailure : nil }
        if let failure { finish(throwing: failure) }  // else it was re-armed meanwhile
    }

    // MARK: URLSessionDataDelegate

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let http = response as? HTTPURLResponse
        armTimer(after: idleTimeout, failure: .idleTimeout)
        continuation.yield(.head(status: http?.statusCode ?? 0,
                                 contentType: http?.value(forHTTPHeaderField: "Content-Type") ?? ""))
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        armTimer(after: idleTimeout, failure: .idleTimeout)
        continuation.yield(.body(data))
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error = error as? URLError, error.code == .cancelled {
            finish(throwing: Failure.cancelled)
        } else if let error = error as? URLError {
            finish(throwing: Failure.transport(error.code, error.localizedDescription))
        } else if let error {
            finish(throwing: Failure.transport(.unknown, "\(error)"))
        } else {
            finish(throwing: nil)
        }
    }

    // Redirects are not followed: a chat endpoint that redirects a POST is misconfigured,
    // and a redirect to another host would carry the Authorization header there.
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}
