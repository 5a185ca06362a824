/// A failure talking to a server, as one line that names the server by its display URL
/// (never with credentials, and never with the API key: the client scrubs the key from
/// every message it builds, the server's own included).
public struct RemoteError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A `--server` or `--api-key-env` value that cannot be used.
        case badArgument
        /// Connection refused, host not found, network unreachable.
        case cannotConnect
        /// No response headers within the connect timeout, or silence longer than the idle timeout.
        case timedOut
        /// An HTTP status outside 2xx; the message is the server's own when it sent one.
        case httpStatus(Int)
        /// A 2xx response that is not what the protocol says (bad JSON, no choices, ...).
        case badResponse
        /// The event stream ended before `[DONE]` or a finish reason (the connection was lost).
        case truncated
        /// The request was cancelled (the task was cancelled: Ctrl-C).
        case cancelled
        /// Any other transport failure (TLS, protocol errors).
        case transport
    }

    public var kind: Kind
    /// The server's display URL ("" for argument errors that name no server).
    public var server: String
    /// What went wrong, one line.
    public var message: String

    public init(_ kind: Kind, server: String, _ message: String) {
        self.kind = kind
        self.server = server
        self.message = message
    }

    public var description: String { server.isEmpty ? message : "server \(server): \(message)" }
}
