import Foundation
import Remote
import Testing

struct EndpointTests {
    @Test func urlsAndNamedURLs() throws {
        let plain = try ServerEndpoint.parse("http://127.0.0.1:8080")
        #expect(plain.name == nil && plain.displayURL == "http://127.0.0.1:8080" && plain.label == "http://127.0.0.1:8080")
        #expect(plain.url("v1/models").absoluteString == "http://127.0.0.1:8080/v1/models")
        let named = try ServerEndpoint.parse("big=https://gpu.example.com/openai/v1/")
        #expect(named.name == "big" && named.displayURL == "https://gpu.example.com/openai" && named.label == "big")
        #expect(named.url("v1/chat/completions").absoluteString == "https://gpu.example.com/openai/v1/chat/completions")
        #expect(named.description == "big=https://gpu.example.com/openai")
        #expect(try ServerEndpoint.parse("HTTP://Host:80/").displayURL == "http://Host:80")
        #expect(try ServerEndpoint.parse("v6=http://[::1]:9000").displayURL == "http://[::1]:9000")
    }

    @Test(arguments: ["ftp://host", "host:8080", "localhost", "http://", "bad name=http://h", "=http://h",
                      "http://h/?a=b", "http://h/#x"])
    func badServerValuesAreRefused(_ value: String) {
        #expect(throws: RemoteError.self) { try ServerEndpoint.parse(value) }
    }

    @Test func credentialsInTheURLAreRefusedWithoutRepeatingThem() throws {
        for value in ["http://alice:s3cr3t-pw@host:8080/v1", "big=https://s3cr3t-pw@host", "https://alice:s3cr3t-pw@"] {
            let error = try #require(throws: RemoteError.self) { try ServerEndpoint.parse(value) }
            #expect(!error.description.contains("s3cr3t-pw"), "\(error)")
            #expect(!error.description.contains("alice"), "\(error)")
            #expect(error.kind == .badArgument)
        }
        let error = try #require(throws: RemoteError.self) { try ServerEndpoint.parse("http://alice:s3cr3t-pw@host:8080/v1") }
        #expect(error.description == "--server http://host:8080: credentials in the URL are not accepted; "
            + "put the API key in an environment variable and name it with --api-key-env")
    }

    @Test func theAPIKeyComesFromTheNamedVariableAndIsNeverShown() throws {
        let key = try APIKey(environmentVariable: "NIBBLE_TEST_KEY", environment: ["NIBBLE_TEST_KEY": "sk-do-not-print-42\n"])
        #expect(key.variable == "NIBBLE_TEST_KEY")
        for shown in [key.description, key.debugDescription, "\(key)", String(reflecting: key), dumped(key)] {
            #expect(!shown.contains("sk-do-not-print-42"), "\(shown)")
        }
        let unset = try #require(throws: RemoteError.self) { try APIKey(environmentVariable: "NIBBLE_TEST_KEY", environment: [:]) }
        #expect(unset.description == "--api-key-env NIBBLE_TEST_KEY: the environment variable NIBBLE_TEST_KEY is not set or empty")
        // A key given where the variable's name belongs is refused and not repeated.
        let misused = try #require(throws: RemoteError.self) { try APIKey(environmentVariable: "sk-do-not-print-42", environment: [:]) }
        #expect(!misused.description.contains("sk-do-not-print-42"))
    }

    @Test func requestBodies() throws {
        let request = RemoteRequest(model: "m", messages: [RemoteMessage(role: "system", content: "be brief"),
                                                           RemoteMessage(role: "user", content: "hi \"there\"\n")],
                                    settings: RemoteSettings(temperature: 0.7, topP: 0.9, topK: 40, minP: 0.05,
                                                             repeatPenalty: 1.1, seed: 42, maxTokens: 128))
        #expect(request.body(stream: true).serialized == #"{"model":"m","messages":[{"role":"system","content":"be brief"},"#
            + #"{"role":"user","content":"hi \"there\"\n"}],"stream":true,"stream_options":{"include_usage":true},"#
            + #""temperature":0.7,"top_p":0.9,"max_tokens":128,"seed":42,"top_k":40,"min_p":0.05,"repeat_penalty":1.1}"#)
        #expect(RemoteRequest(model: "m", messages: []).body(stream: false).serialized
            == #"{"model":"m","messages":[],"stream":false}"#)
    }
}

private func dumped<T>(_ value: T) -> String {
    var out = ""
    dump(value, to: &out)
    return out
}
