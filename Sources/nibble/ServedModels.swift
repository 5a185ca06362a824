import Chat
import Foundation
import Remote

/// The servers named with `--server [NAME=]URL`, their models as `/model` lists them, and
/// the names the REPL takes for them: `NAME` (a server with one model), `NAME/MODEL`, or the
/// model id alone when one server lists it. An unnamed server's NAME is its URL.
final class ServedModels {
    let servers: [ServedEndpoint]
    /// Every server gets the same key (`--api-key-env VAR`), sent as a bearer token only.
    let apiKey: APIKey?

    init(arguments: [String], apiKeyVariable: String?) throws {
        var endpoints: [ServerEndpoint] = []
        for argument in arguments {
            let endpoint = try ServerEndpoint.parse(argument)
            if endpoints.contains(where: { $0.label == endpoint.label }) {
                throw CLIError("--server \(endpoint.label) is given twice: name them apart with --server NAME=URL")
            }
            endpoints.append(endpoint)
        }
        if apiKeyVariable != nil && endpoints.isEmpty { throw CLIError("--api-key-env is for --server: no server was given") }
        let key = try apiKeyVariable.map { try APIKey(environmentVariable: $0) }
        apiKey = key
        servers = endpoints.map { ServedEndpoint(client: RemoteClient(endpoint: $0, apiKey: key)) }
    }

    var isEmpty: Bool { servers.isEmpty }

    /// Asks every server for its models; returns the failures, one line each.
    @discardableResult
    func refreshAll(shouldStop: @escaping () -> Bool = { false }) -> [RemoteError] {
        servers.compactMap { server in
            if case let .failure(error) = server.refresh(shouldStop: shouldStop) { return error }
            return nil
        }
    }

    /// The first model of the first server that answered its last listing.
    var firstAvailable: RemoteGenerator? {
        for server in servers where server.failure == nil {
            if let model = server.models.first { return RemoteGenerator(client: server.client, model: model) }
        }
        return nil
    }

    /// What Tab completes after `/model`, `/compare` and `/replay --model`.
    var completionNames: [String] {
        servers.flatMap { server in [server.label] + server.models.map { server.label + "/" + $0 } }
    }

    /// The served model `name` means, asking its server for its models first (so a server
    /// that is gone says so now, in one line); nil when `name` names no server or served
    /// model (then it is a path). `notice` gets a line when the server does not list the model.
    func resolve(_ name: String, shouldStop: @escaping () -> Bool, notice: (String) -> Void) throws -> RemoteGenerator? {
        for server in servers {
            let prefixes = [server.label, server.endpoint.displayURL]
            if prefixes.contains(name) {
                let models = try server.refresh(shouldStop: shouldStop).get()
                guard !models.isEmpty else { throw ChatError("server \(server.endpoint.displayURL) lists no model") }
                guard models.count == 1 else {
                    throw ChatError("server \(server.label) serves \(models.count) models: /model \(server.label)/MODEL with one of "
                        + models.joined(separator: ", "))
                }
                return RemoteGenerator(client: server.client, model: models[0])
            }
            for prefix in prefixes where name.hasPrefix(prefix + "/") && name.count > prefix.count + 1 {
                let model = String(name.dropFirst(prefix.count + 1))
                let models = try server.refresh(shouldStop: shouldStop).get()
                if !models.contains(model) {
                    notice("note: server \(server.endpoint.displayURL) does not list \(model) (it lists: \(models.joined(separator: ", "))); asking for it anyway")
                }
                return RemoteGenerator(client: server.client, model: model)
            }
        }
        // A model id alone, when exactly one server listed it.
        let owners = servers.filter { $0.models.contains(name) }
        if owners.count == 1 {
            _ = try owners[0].refresh(shouldStop: shouldStop).get()
            return RemoteGenerator(client: owners[0].client, model: name)
        }
        if owners.count > 1 {
            throw ChatError("\(name) is served by \(owners.count) servers: say which with /model SERVER/\(name) ("
                + owners.map(\.label).joined(separator: ", ") + ")")
        }
        return nil
    }
}
