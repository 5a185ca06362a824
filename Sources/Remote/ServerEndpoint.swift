import Foundation

/// A server named on the command line: `--server URL` or `--server NAME=URL`.
///
/// The URL is the server's base: `http://host:8080` or `http://host:8080/v1` (a trailing
/// `/v1` is the API version and is dropped; requests go to `<base>/v1/...`), http or https
/// only. Credentials in the URL (`http://user:key@host`) are refused rather than stripped:
/// the key belongs in an environment variable (`--api-key-env`), and quietly dropping it would
/// send unauthenticated requests. Neither the refusal nor `displayURL` repeats them.
public struct ServerEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The name given as `NAME=URL`, if any.
    public private(set) var name: String?
    /// `scheme://host[:port][/path]`, without credentials, query or trailing slash.
    public private(set) var displayURL: String
    /// The base URL requests are built on (the same text as `displayURL`).
    public private(set) var baseURL: URL

    /// How the REPL refers to the server: its name, or its display URL.
    public var label: String { name ?? displayURL }
    public var description: String { name.map { "\($0)=\(displayURL)" } ?? displayURL }

    /// `path` below the base, e.g. `v1/models`.
    public func url(_ path: String) -> URL { URL(string: displayURL + "/" + path)! }

    /// Parses a `--server` value.
    public static func parse(_ argument: String) throws(RemoteError) -> ServerEndpoint {
        var name: String?
        var text = Substring(argument.trimmingCharacters(in: .whitespaces))
        if let equals = text.firstIndex(of: "="), !text[..<equals].contains(":"), !text[..<equals].contains("/") {
            let candidate = text[..<equals]
            guard !candidate.isEmpty, candidate.unicodeScalars.allSatisfy({ isNameScalar($0) }) else {
                throw RemoteError(.badArgument, server: "",
                                  "--server \(safeEcho(argument)): a server name has letters, digits, '-', '_' and '.' only")
            }
            name = String(candidate)
            text = text[text.index(after: equals)...]
        }
        guard let components = URLComponents(string: String(text)), let scheme = components.scheme?.lowercased() else {
            throw RemoteError(.badArgument, server: "", "--server \(safeEcho(argument)): not a URL (expected http://HOST:PORT or NAME=URL)")
        }
        guard scheme == "http" || scheme == "https" else {
            throw RemoteError(.badArgument, server: "", "--server \(safeEcho(argument)): only http and https URLs are supported")
        }
        guard let host = components.host, !host.isEmpty else {
            throw RemoteError(.badArgument, server: "", "--server \(safeEcho(argument)): the URL has no host")
        }
        var path = components.path
        while path.hasSuffix("/") { path.removeLast() }
        if path.hasSuffix("/v1") { path.removeLast(3) }
        var display = scheme + "://" + (host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host)
        if let port = components.port { display += ":\(port)" }
        display += path
        if components.user != nil || components.password != nil {
            throw RemoteError(.badArgument, server: "",
                              "--server \(display): credentials in the URL are not accepted; "
                              + "put the API key in an environment variable and name it with --api-key-env")
        }
        if components.query != nil || components.fragment != nil {
            throw RemoteError(.badArgument, server: "", "--server \(display): a query or fragment in the URL is not supported")
        }
        guard let base = URL(string: display) else {
            throw RemoteError(.badArgument, server: "", "--server \(display): not a valid URL")
        }
        return ServerEndpoint(name: name, displayURL: display, baseURL: base)
    }

    private static func isNameScalar(_ s: Unicode.Scalar) -> Bool {
        s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || s == "-" || s == "_" || s == ".")
    }

    /// The argument for an error message, unless it might carry credentials ('@' before the path).
    private static func safeEcho(_ argument: String) -> String {
        let authorityEnd = argument.range(of: "://").map { argument[$0.upperBound...] } ?? argument[...]
        let authority = authorityEnd.prefix { $0 != "/" }
        return authority.contains("@") ? "(a URL with credentials)" : "'\(argument)'"
    }
}

/// An API key, read from the environment variable the user names (`--api-key-env VAR`).
/// It is sent as `Authorization: Bearer KEY` and nowhere else: its description, debug
/// description and mirror show only the variable's name.
public struct APIKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The environment variable it came from.
    public let variable: String
    let value: String

    /// Reads the key from `variable`; an unset or empty variable is an error.
    public init(environmentVariable variable: String,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws(RemoteError) {
        guard !variable.isEmpty, variable.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }) else {
            throw RemoteError(.badArgument, server: "", "--api-key-env expects the NAME of an environment variable (letters, digits, '_'), not a key")
        }
        guard let value = environment[variable]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else {
            throw RemoteError(.badArgument, server: "", "--api-key-env \(variable): the environment variable \(variable) is not set or empty")
        }
        self.variable = variable
        self.value = value
    }

    public var description: String { "API key from $\(variable)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["variable": variable]) }

    /// `text` with every occurrence of the key replaced by `[API key]`.
    func scrub(_ text: String) -> String {
        text.replacingOccurrences(of: value, with: "[API key from $\(variable)]")
    }
}
