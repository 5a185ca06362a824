// libFuzzer target: any bytes as a chat template (a template is code that every GGUF
// ships): lexed, parsed and rendered on a small conversation under the interpreter's
// budget. Must never crash, overflow the stack, run away or allocate without bound.
import Foundation
import Templates

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let source = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let template = try? ChatTemplate(source: source, name: "fuzz") else { return 0 }
    let messages: [(role: String, content: String)] = [("system", "Be brief."), ("user", "Hello {{ x }}"), ("assistant", "Hi!"), ("user", "Bye")]
    _ = try? template.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>",
                             now: Date(timeIntervalSince1970: 1_795_000_000), timeZone: TimeZone(identifier: "UTC")!)
    return 0
}
